"""Sign-in and account mails sent to an address the event names: password reset, login code,
e-mail change code and confirmation (Plane's forgot_password, magic_link and
user_email_update tasks). None reads the database: Plane's tasks did not either."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from services.emails.mails_common import Mail, MailType, e, finish, footer, link, site_of
from shared.settings import Settings

FORGOT_PASSWORD = "emails/auth/forgot_password.html"
MAGIC_SIGNIN = "emails/auth/magic_signin.html"
EMAIL_UPDATED = "emails/user/email_updated.html"


def forgot_password(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    email = data["email"]
    # As Plane builds it: the query values go in as they are, unencoded.
    url = (
        f"{site_of(settings, data)}/accounts/reset-password/"
        f"?uidb64={data['uidb64']}&token={data['token']}&email={email}"
    )
    context = {"first_name": data["first_name"], "forgot_password_url": url, "email": email}
    greeting = f"Hi {e(data['first_name'])}," if data["first_name"] else "Hi,"
    return finish(
        settings,
        email,
        "A new password to your Plane account has been requested",
        FORGOT_PASSWORD,
        context,
        [
            greeting,
            "Someone asked to reset the password of your Plane account. Choose a new password here:",
            link(url),
            footer(email, "If you did not ask for a new password, ignore this mail."),
        ],
    )


def _code_mail(settings: Settings, email: str, subject: str, code: str, purpose: str) -> Mail:
    return finish(
        settings,
        email,
        subject,
        MAGIC_SIGNIN,
        {"code": code, "email": email},
        [
            f"Your Plane code {purpose}:",
            f"<b>{e(code)}</b>",
            "It is valid for 10 minutes.",
            footer(email, "If you were not expecting this code, ignore this mail."),
        ],
    )


def magic_link(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    # `key` (Plane's Redis key of the code) is part of the task's arguments but not of the mail.
    token = data["token"]
    return _code_mail(
        settings, data["email"], f"Your unique Plane login code is {token}", token, "to sign in"
    )


def email_update_code(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    return _code_mail(
        settings,
        data["email"],
        "Verify your new email address",
        data["token"],
        "to confirm this new e-mail address",
    )


def email_updated(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    # Plane sends it twice, to the new address and to the old: each is one event with its `email`.
    email = data["email"]
    return finish(
        settings,
        email,
        "Plane email address successfully updated",
        EMAIL_UPDATED,
        {"email": email},
        [
            f"The e-mail address of your Plane account is now {e(email)}.",
            "You can log in with it from now on.",
            footer(email, "If you are not the intended recipient, delete this mail."),
        ],
    )


AUTH_MAILS = (
    MailType(
        name="forgot_password",
        plane_task="plane.bgtasks.forgot_password_task.forgot_password",
        plane_args=("first_name", "email", "uidb64", "token", "current_site"),
        template=FORGOT_PASSWORD,
        build=forgot_password,
        reads_database=False,
    ),
    MailType(
        name="magic_link",
        plane_task="plane.bgtasks.magic_link_code_task.magic_link",
        plane_args=("email", "key", "token"),
        template=MAGIC_SIGNIN,
        build=magic_link,
        reads_database=False,
    ),
    MailType(
        name="email_update_code",
        plane_task="plane.bgtasks.user_email_update_task.send_email_update_magic_code",
        plane_args=("email", "token"),
        template=MAGIC_SIGNIN,
        build=email_update_code,
        reads_database=False,
    ),
    MailType(
        name="email_updated",
        plane_task="plane.bgtasks.user_email_update_task.send_email_update_confirmation",
        plane_args=("email",),
        template=EMAIL_UPDATED,
        build=email_updated,
        reads_database=False,
    ),
)
