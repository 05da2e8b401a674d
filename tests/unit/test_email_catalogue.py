"""The e-mail catalogue without a database: every type's schema and Plane arguments, and the mails
that read no table (password reset, login and e-mail change codes, change confirmation) rendered
with Plane's subjects, escaped built-in HTML, links as Plane builds them and the text part."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import fastjsonschema
import pytest
from sqlalchemy import Connection

from services.emails import catalogue
from services.emails.catalogue import MAIL_TYPES, mail_type
from shared.events.schemas import fast_validator_for, validator_for
from shared.settings import Settings

SETTINGS = replace(Settings.from_env({}), web_url="https://web.example/", plane_templates_dir="")
# These four mails read no table (Plane's tasks did not either): no connection is needed.
NO_DB = cast(Connection, None)
STAND_INS = Path(__file__).resolve().parents[1] / "fixtures" / "plane_templates"
U1, U2, U3 = (
    "0b7c5f8e-3a43-4d7e-9c1e-1f7f5e0a3b11",
    "6a1f2c3d-4b5e-4f60-8a7b-9c0d1e2f3a4b",
    "9e8d7c6b-5a49-4382-b716-a5f4e3d2c1b0",
)

# One valid `data` per type, as a Celery bridge would bind Plane's arguments.
SAMPLES: dict[str, dict[str, Any]] = {
    "forgot_password": {"first_name": "Ada", "email": "ada@example.com", "uidb64": "MTIz",
                        "token": "c4t-abc123", "current_site": "https://plane.example"},
    "magic_link": {"email": "ada@example.com", "key": "magic_ada@example.com", "token": "482913"},
    "email_update_code": {"email": "new@example.com", "token": "730155"},
    "email_updated": {"email": "old@example.com"},
    "user_activation": {"current_site": "https://plane.example", "user_id": U1},
    "user_deactivation": {"current_site": None, "user_id": U1},
    "workspace_invitation": {"email": "bob@example.com", "workspace_id": U1, "token": "t" * 30,
                             "current_site": "https://plane.example", "inviter": "ada@example.com"},
    "project_invitation": {"email": "bob@example.com", "project_id": U2, "token": "t" * 30,
                           "current_site": "", "invitor": "ada@example.com"},
    "project_addition": {"current_site": "https://plane.example", "project_member_id": U2,
                         "invitor_id": U3},
    "webhook_deactivation": {"webhook_id": U1, "receiver_id": None,
                             "current_site": "https://plane.example", "reason": "timed out"},
    "analytics_export": {"data": [{"0": "Todo", "1": 3}], "headers": ["X-Axis", "Issue Count"],
                         "keys": ["0", "1"], "email": "ada@example.com", "slug": "acme"},
}  # fmt: skip

CELERY_TASKS = {
    "forgot_password": "forgot_password_task.forgot_password",
    "magic_link": "magic_link_code_task.magic_link",
    "email_update_code": "user_email_update_task.send_email_update_magic_code",
    "email_updated": "user_email_update_task.send_email_update_confirmation",
    "user_activation": "user_activation_email_task.user_activation_email",
    "user_deactivation": "user_deactivation_email_task.user_deactivation_email",
    "workspace_invitation": "workspace_invitation_task.workspace_invitation",
    "project_invitation": "project_invitation_task.project_invitation",
    "project_addition": "project_add_user_email_task.project_add_user_email",
    "webhook_deactivation": "webhook_task.send_webhook_deactivation_email",
    "analytics_export": "analytic_plot_export.export_analytics_to_csv_email",
}


def build(name: str, **data: Any) -> catalogue.Mail:
    return mail_type(f"plane.email.{name}.v1").build(NO_DB, SETTINGS, {**SAMPLES[name], **data})


# --- the catalogue and its schemas ----------------------------------------------------------------


def test_the_catalogue_is_plane_s_ten_transactional_mails():
    assert {k.name: k.plane_task for k in MAIL_TYPES} == {
        name: f"plane.bgtasks.{task}" for name, task in CELERY_TASKS.items()
    }
    assert len({k.event_type for k in MAIL_TYPES}) == len(MAIL_TYPES)


@pytest.mark.parametrize("kind", MAIL_TYPES, ids=lambda k: k.name)
def test_schema_loads_and_its_properties_are_plane_s_arguments(kind: catalogue.MailType):
    assert kind.event_type == f"plane.email.{kind.name}.v1"
    assert mail_type(kind.event_type) is kind
    validator = validator_for(kind.event_type)
    schema = validator.schema
    assert tuple(schema["properties"]) == kind.plane_args
    assert set(schema["required"]) == set(kind.plane_args)  # all Plane's parameters are positional
    assert schema["additionalProperties"] is False
    assert schema["title"] == f"{kind.plane_task.rpartition('.')[2]}({', '.join(kind.plane_args)})"
    assert kind.key_field in schema["required"]
    assert (STAND_INS / kind.template).is_file(), "a stand-in for every Plane template"
    sample = SAMPLES[kind.name]
    assert validator.is_valid(sample)
    assert not validator.is_valid({**sample, "unexpected": 1})
    for arg in kind.plane_args:
        assert not validator.is_valid({k: v for k, v in sample.items() if k != arg}), arg
    # The consumer validates with the compiled validator: it must agree.
    fast = fast_validator_for(kind.event_type)
    fast(sample)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        fast({**sample, "unexpected": 1})


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("user_activation", "user_id", "not-a-uuid"),
        ("project_addition", "invitor_id", 42),
        ("magic_link", "email", ""),
        ("workspace_invitation", "email", "x" * 250 + "@e.xyz"),
        ("webhook_deactivation", "webhook_id", None),
    ],
)
def test_schemas_reject_what_plane_never_sends(name: str, field: str, value: Any):
    event_type, data = f"plane.email.{name}.v1", {**SAMPLES[name], field: value}
    assert not validator_for(event_type).is_valid(data)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        fast_validator_for(event_type)(data)


def test_an_unknown_type_names_the_known_ones():
    with pytest.raises(KeyError) as raised:
        mail_type("plane.email.analytics.v1")
    assert "plane.email.analytics.v1" in str(raised.value)
    assert "plane.email.magic_link.v1" in str(raised.value)


# --- the mails that read no table ------------------------------------------------------------------


def test_forgot_password_link_subject_and_both_parts():
    mail = build("forgot_password")
    url = "https://plane.example/accounts/reset-password/?uidb64=MTIz&token=c4t-abc123&email=ada@example.com"
    assert mail.to == "ada@example.com"
    assert mail.subject == "A new password to your Plane account has been requested"
    assert f'href="{url.replace("&", "&amp;")}"' in mail.html
    assert url in mail.text and "Ada" in mail.text
    assert "<" not in mail.text and mail.attachments == ()


def test_login_code_and_email_change_code_share_plane_s_template_with_their_own_subjects():
    login = build("magic_link")
    assert login.subject == "Your unique Plane login code is 482913"
    assert "482913" in login.html and "482913" in login.text
    assert "magic_ada" not in login.html  # the Redis key is an argument, not part of the mail
    change = build("email_update_code")
    assert (change.to, change.subject) == ("new@example.com", "Verify your new email address")
    assert "730155" in change.text
    assert mail_type("plane.email.magic_link.v1").template == "emails/auth/magic_signin.html"
    assert mail_type("plane.email.email_update_code.v1").template == "emails/auth/magic_signin.html"


def test_email_updated_goes_to_the_address_the_event_names():
    mail = build("email_updated")
    assert (mail.to, mail.subject) == ("old@example.com", "Plane email address successfully updated")
    assert "old@example.com" in mail.text


@pytest.mark.parametrize(
    "token",
    ["123456\r\nBcc: victim@example.com", "12\x003456\x1b[0m", "12\u20283456\x85"],
)
def test_control_characters_never_reach_the_subject(token: str):
    subject = build("magic_link", token=token).subject
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", subject)
    assert subject.startswith("Your unique Plane login code is 12")


def test_hostile_names_and_addresses_are_escaped_in_the_built_in_html():
    mail = build(
        "forgot_password",
        first_name="<script>alert(1)</script>",
        email='x"><script>@example.com',
        token="a<b>&c",
    )
    assert "<script>" not in mail.html and 'x"><' not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "token=a&lt;b&gt;&amp;c" in mail.html
    # The text part is plain text: the name as typed, never markup that a client would run.
    assert "<script>alert(1)</script>" in mail.text


def test_code_with_markup_is_escaped_and_still_shown():
    mail = build("magic_link", token="<img src=x>")
    assert "<img" not in mail.html and "&lt;img src=x&gt;" in mail.html
    assert "<img src=x>" in mail.text


@pytest.mark.parametrize(
    ("site", "base"),
    [
        ("", "https://web.example"),  # WEB_URL, its trailing slash dropped
        (None, "https://web.example"),
        ("https://plane.example/", "https://plane.example"),
        ("https://plane.example/app", "https://plane.example/app"),
    ],
)
def test_links_start_at_current_site_or_web_url_without_a_double_slash(site: str | None, base: str):
    mail = build("forgot_password", current_site=site)
    assert f"{base}/accounts/reset-password/?uidb64=MTIz&" in mail.text
    assert "//accounts" not in mail.text
