"""A user's account switched on or off (Plane's user_activation_email and user_deactivation_email):
the event names the user, the address is read from `users` as Plane's task read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from services.emails.mails_common import (
    Mail,
    MailType,
    address_of,
    called,
    finish,
    footer,
    link,
    site_of,
    user_by_id,
)
from shared.settings import Settings

USER_ACTIVATION = "emails/user/user_activation.html"
USER_DEACTIVATION = "emails/user/user_deactivation.html"


def user_activation(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    user = user_by_id(conn, data["user_id"], "activated")
    email = address_of(user, "activated")
    url = site_of(settings, data) + "/profile"
    return finish(
        settings,
        email,
        f"{called(user)} has been activated on Plane",
        USER_ACTIVATION,
        {"email": email, "profile_url": url},
        [
            "Your Plane account is active again: your workspaces, projects and work items are "
            "there for you wherever you are still a member.",
            link(url),
            footer(email, "If you are not the intended recipient, delete this mail."),
        ],
    )


def user_deactivation(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    user = user_by_id(conn, data["user_id"], "deactivated")
    email = address_of(user, "deactivated")
    url = site_of(settings, data) + "/login"
    return finish(
        settings,
        email,
        f"{called(user)} has been deactivated on Plane",
        USER_DEACTIVATION,
        {"email": email, "login_url": url},
        [
            "Your Plane account has been deactivated. Signing in again reactivates it:",
            link(url),
            footer(email, "If you are not the intended recipient, delete this mail."),
        ],
    )


USER_MAILS = (
    MailType(
        name="user_activation",
        plane_task="plane.bgtasks.user_activation_email_task.user_activation_email",
        plane_args=("current_site", "user_id"),
        template=USER_ACTIVATION,
        build=user_activation,
        recipient="user_id",
    ),
    MailType(
        name="user_deactivation",
        plane_task="plane.bgtasks.user_deactivation_email_task.user_deactivation_email",
        plane_args=("current_site", "user_id"),
        template=USER_DEACTIVATION,
        build=user_deactivation,
        recipient="user_id",
    ),
)
