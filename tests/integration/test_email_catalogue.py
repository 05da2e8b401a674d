"""The e-mail catalogue against a real PostgreSQL with Plane's schema: each mail's recipient,
subject, links and both parts from Plane's rows; the invite `message` written (and undone with
the transaction); Plane's silent returns as NothingToSend; Plane's context handed to a stand-in
template folder, and the built-in mail when a template is missing or broken. Nothing is sent
here (the consumer's tests send over SMTP)."""

from __future__ import annotations

import html
import logging
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from services.emails.catalogue import Mail, NothingToSend, mail_type
from shared.db.engine import get_engine
from shared.db.plane import Project, ProjectMember, User, Webhook, Workspace
from shared.kafka.handler import PermanentError
from shared.settings import Settings
from shared.testing import plane_factory as pf
from shared.testing.plane_rows import insert_one

pytestmark = pytest.mark.timeout(120)
WEB = "https://web.example"
SITE = "https://plane.example"
OLD = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
STAND_INS = Path(__file__).resolve().parents[1] / "fixtures" / "plane_templates"


@dataclass
class World:
    engine: Engine
    settings: Settings
    inviter: User
    member: User
    workspace: Workspace
    project: Project
    project_member: ProjectMember
    webhook: Webhook
    ws_invite: uuid.UUID
    pj_invite: uuid.UUID
    ws_token: str
    pj_token: str
    guest: str = "guest@example.com"

    def build(self, name: str, data: Mapping[str, Any], settings: Settings | None = None) -> Mail:
        with self.engine.begin() as conn:
            return mail_type(f"plane.email.{name}.v1").build(conn, settings or self.settings, data)

    def sql(self, statement: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params)

    def invite(self, table: str, invite_id: uuid.UUID) -> Any:
        return self.sql(
            f"SELECT message, updated_at, created_by_id FROM {table} WHERE id = :id", id=invite_id
        ).one()

    # The events' data, as the Celery bridge would bind Plane's arguments.
    def ws_data(self, **more: Any) -> dict[str, Any]:
        return {"email": self.guest, "workspace_id": str(self.workspace.id), "token": self.ws_token,
                "current_site": SITE, "inviter": self.inviter.email, **more}  # fmt: skip

    def pj_data(self, **more: Any) -> dict[str, Any]:
        return {"email": self.guest, "project_id": str(self.project.id), "token": self.pj_token,
                "current_site": SITE, "invitor": self.inviter.email, **more}  # fmt: skip

    def add_data(self, **more: Any) -> dict[str, Any]:
        return {"current_site": SITE, "project_member_id": str(self.project_member.id),
                "invitor_id": str(self.inviter.id), **more}  # fmt: skip

    def hook_data(self, **more: Any) -> dict[str, Any]:
        return {"webhook_id": str(self.webhook.id), "receiver_id": str(self.inviter.id),
                "current_site": SITE, "reason": "5 retries failed: read timed out", **more}  # fmt: skip


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    engine = get_engine(database_url)
    settings = replace(
        Settings.from_env({}), database_url=database_url, web_url=WEB + "/", plane_templates_dir=""
    )
    with Session(engine, expire_on_commit=False) as session, session.begin():
        inviter = pf.user(1, first_name="Ada", display_name="ada")
        member = pf.user(2, first_name="Bob")
        session.add_all([inviter, member])
        session.flush()
        workspace = pf.workspace(inviter, slug=f"acme-{uuid.uuid4().hex[:6]}", name="Acme")
        session.add(workspace)
        session.flush()
        project = pf.project(workspace, name="Rockets")
        session.add(project)
        session.flush()
        project_member = pf.project_member(project, member)
        webhook = pf.webhook(workspace, "https://hooks.example/in")
        session.add_all([project_member, webhook])
    ws_token, pj_token = f"ws-{uuid.uuid4().hex}", f"pj-{uuid.uuid4().hex}"
    common = {"email": "guest@example.com", "role": 15, "accepted": False, "workspace_id": workspace.id,
              "created_by_id": inviter.id, "updated_by_id": inviter.id, "created_at": OLD,
              "updated_at": OLD}  # fmt: skip
    with engine.begin() as conn:
        ws_invite = insert_one(conn, "workspace_member_invites", token=ws_token, **common)
        pj_invite = insert_one(
            conn, "project_member_invites", token=pj_token, project_id=project.id, **common
        )
    yield World(engine, settings, inviter, member, workspace, project, project_member, webhook,
                ws_invite, pj_invite, ws_token, pj_token)  # fmt: skip


def stand_in_context(mail_html: str) -> dict[str, str]:
    """What the stand-in template was given: its `key=[value]` lines, unescaped."""
    return {k: html.unescape(v) for k, v in re.findall(r"<p>(\w+)=\[(.*?)\]</p>", mail_html, re.S)}


def assert_built_in(mail: Mail, *shown: str) -> None:
    assert "stand-in" not in mail.html and mail.html.startswith("<html><body>")
    for value in shown:
        assert html.escape(value) in mail.html and value in mail.text, value
    assert "<" not in mail.text


# --- each mail from Plane's rows -------------------------------------------------------------------


def test_workspace_invitation_link_subject_and_the_message_plane_stores(world: World):
    mail = world.build("workspace_invitation", world.ws_data())
    url = (
        f"{SITE}/workspace-invitations/?invitation_id={world.ws_invite}"
        f"&slug={world.workspace.slug}&token={world.ws_token}"
    )
    assert mail.to == world.guest
    assert mail.subject == "Ada has invited you to join them in Acme on Plane"
    assert_built_in(mail, url, "Ada", "Acme", world.guest)
    stored = world.invite("workspace_member_invites", world.ws_invite)
    assert stored.message == mail.text
    assert stored.updated_at > OLD  # Django's auto_now on save()
    assert stored.created_by_id == world.inviter.id  # not nulled as Plane's worker save() did


def test_project_invitation_built_as_plane_s_unreachable_task_would(world: World):
    mail = world.build("project_invitation", world.pj_data(current_site=SITE + "/"))
    url = (
        f"{SITE}/project-invitations/?invitation_id={world.pj_invite}&email={world.guest}"
        f"&slug={world.workspace.slug}&project_id={world.project.id}"
    )
    assert (mail.to, mail.subject) == (world.guest, "Ada invited you to join Rockets on Plane")
    assert_built_in(mail, url, "Rockets")
    stored = world.invite("project_member_invites", world.pj_invite)
    assert stored.message == mail.text and stored.updated_at > OLD
    assert stored.created_by_id == world.inviter.id


def test_project_addition_goes_to_the_member_with_the_project_link(world: World):
    mail = world.build("project_addition", world.add_data(current_site=""))
    url = f"{WEB}/{world.workspace.slug}/projects/{world.project.id}/issues"
    assert (mail.to, mail.subject) == (world.member.email, "You have been invited to a Plane project")
    assert_built_in(mail, url, "Ada", "Rockets", "Acme")


def test_webhook_deactivation_tells_the_creator_why(world: World):
    mail = world.build("webhook_deactivation", world.hook_data())
    url = f"{SITE}/{world.workspace.slug}/settings/webhooks/{world.webhook.id}"
    assert (mail.to, mail.subject) == (world.inviter.email, "Webhook Deactivated")
    assert_built_in(
        mail,
        url,
        "Webhook https://hooks.example/in has been deactivated due to failed requests.",
        "5 retries failed: read timed out",
    )


@pytest.mark.parametrize(
    ("first", "display", "expected"),
    [("Ada", "ada", "Ada"), ("", "ada", "ada"), ("", "", None)],  # None: the address
)
def test_activation_and_deactivation_name_the_user_as_plane_does(
    world: World, first: str, display: str, expected: str | None
):
    world.sql(
        "UPDATE users SET first_name = :f, display_name = :d WHERE id = :id",
        f=first, d=display, id=world.inviter.id,
    )  # fmt: skip
    who = expected or world.inviter.email
    data = {"current_site": None, "user_id": str(world.inviter.id)}
    on = world.build("user_activation", data)
    assert (on.to, on.subject) == (world.inviter.email, f"{who} has been activated on Plane")
    assert_built_in(on, f"{WEB}/profile")
    off = world.build("user_deactivation", {**data, "current_site": SITE})
    assert (off.to, off.subject) == (world.inviter.email, f"{who} has been deactivated on Plane")
    assert_built_in(off, f"{SITE}/login")


def test_hostile_names_from_plane_s_rows_are_escaped_and_kept_out_of_headers(world: World):
    world.sql(
        "UPDATE users SET first_name = :f WHERE id = :id",
        f="<script>x</script>\r\nBcc: victim@example.com", id=world.inviter.id,
    )  # fmt: skip
    world.sql("UPDATE workspaces SET name = :n WHERE id = :id", n="<b>Acme</b>\n", id=world.workspace.id)
    mail = world.build("workspace_invitation", world.ws_data())
    assert mail.subject == (
        "<script>x</script>Bcc: victim@example.com has invited you to join them in <b>Acme</b> on Plane"
    )
    assert "<script>" not in mail.html and "<b>Acme" not in mail.html
    assert "&lt;script&gt;x&lt;/script&gt;" in mail.html and "&lt;b&gt;Acme&lt;/b&gt;" in mail.html


def test_a_rolled_back_event_leaves_the_invite_message_as_it_was(world: World):
    with world.engine.connect() as conn:
        tx = conn.begin()
        mail_type("plane.email.workspace_invitation.v1").build(conn, world.settings, world.ws_data())
        tx.rollback()
    stored = world.invite("workspace_member_invites", world.ws_invite)
    assert stored.message is None and stored.updated_at == OLD


def test_a_workspace_soft_deleted_behind_a_project_is_still_read_as_plane_s_foreign_keys_do(
    world: World,
):
    world.sql("UPDATE workspaces SET deleted_at = now() WHERE id = :id", id=world.workspace.id)
    assert world.build("project_invitation", world.pj_data()).to == world.guest
    assert world.build("project_addition", world.add_data()).to == world.member.email
    with pytest.raises(NothingToSend):  # but Workspace.objects.get() hides it
        world.build("workspace_invitation", world.ws_data())


# --- Plane's silent returns --------------------------------------------------------------------------

NO_EMAIL = "UPDATE users SET email = NULL"
GONE: list[tuple[str, str, Any]] = [
    ("invite soft-deleted", "workspace_invitation",
     ("UPDATE workspace_member_invites SET deleted_at = now()", {})),
    ("invite deleted", "workspace_invitation", ("DELETE FROM workspace_member_invites", {})),
    ("another address", "workspace_invitation", (None, {"email": "other@example.com"})),
    ("unknown inviter", "workspace_invitation", (None, {"inviter": "nobody@example.com"})),
    ("inviter address differs in case", "workspace_invitation", ("UPPER", {})),
    ("workspace soft-deleted", "workspace_invitation", ("UPDATE workspaces SET deleted_at = now()", {})),
    ("project invite soft-deleted", "project_invitation",
     ("UPDATE project_member_invites SET deleted_at = now()", {})),
    ("project invite deleted", "project_invitation", ("DELETE FROM project_member_invites", {})),
    ("project soft-deleted", "project_invitation", ("UPDATE projects SET deleted_at = now()", {})),
    ("unknown project", "project_invitation", (None, {"project_id": str(uuid.uuid4())})),
    ("member soft-deleted", "project_addition", ("UPDATE project_members SET deleted_at = now()", {})),
    ("member without a user", "project_addition", ("UPDATE project_members SET member_id = NULL", {})),
    ("member without an address", "project_addition", (f"{NO_EMAIL} WHERE first_name = 'Bob'", {})),
    ("unknown adder", "project_addition", (None, {"invitor_id": str(uuid.uuid4())})),
    ("webhook soft-deleted", "webhook_deactivation", ("UPDATE webhooks SET deleted_at = now()", {})),
    ("webhook without creator", "webhook_deactivation", (None, {"receiver_id": None})),
    ("unknown user", "user_activation", (None, {"user_id": str(uuid.uuid4())})),
    ("user without an address", "user_deactivation", (NO_EMAIL, {})),
]  # fmt: skip


@pytest.mark.parametrize(("why", "name", "change"), GONE, ids=[g[0] for g in GONE])
def test_what_plane_returned_silently_on_is_nothing_to_send(
    world: World, caplog: pytest.LogCaptureFixture, why: str, name: str, change: Any
):
    statement, more = change
    if statement == "UPPER":
        more = {"inviter": world.inviter.email.upper()}
    elif statement:
        world.sql(statement)
    data = {
        "workspace_invitation": world.ws_data,
        "project_invitation": world.pj_data,
        "project_addition": world.add_data,
        "webhook_deactivation": world.hook_data,
    }.get(name, lambda **m: {"current_site": SITE, "user_id": str(world.inviter.id), **m})(**more)
    with caplog.at_level(logging.DEBUG), pytest.raises(NothingToSend) as gone:
        world.build(name, data)
    reason = str(gone.value)
    # The reason is logged by the consumer: never a token or an address in it.
    for secret in (world.ws_token, world.pj_token, world.guest, world.inviter.email):
        assert secret not in reason and secret not in caplog.text
    invites = {"workspace_member_invites": world.ws_invite, "project_member_invites": world.pj_invite}
    for table, invite in invites.items():
        row = world.sql(f"SELECT message FROM {table} WHERE id = :id", id=invite).first()
        assert row is None or row.message is None


def test_two_invites_for_one_token_and_address_can_never_be_sent(world: World):
    """Plane's `.get()` raises MultipleObjectsReturned: no retry changes that."""
    with Session(world.engine, expire_on_commit=False) as session, session.begin():
        other = pf.workspace(world.inviter, slug=f"other-{uuid.uuid4().hex[:6]}")
        session.add(other)
    with world.engine.begin() as conn:
        insert_one(conn, "workspace_member_invites", email=world.guest, token=world.ws_token, role=5,
                   accepted=False, workspace_id=other.id)  # fmt: skip
    with pytest.raises(PermanentError, match="2 rows"):
        world.build("workspace_invitation", world.ws_data())


# --- Plane's templates (a stand-in folder), and the fall-back when one cannot be used -----------


def expected_contexts(world: World) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Per mail: its data and the context Plane's task would hand its template."""
    slug, guest = world.workspace.slug, world.guest
    reset = {"first_name": "Ada", "email": guest, "uidb64": "MTIz", "token": "tok",
             "current_site": SITE}  # fmt: skip
    return {
        "forgot_password": (reset, {
            "first_name": "Ada", "email": guest,
            "forgot_password_url": f"{SITE}/accounts/reset-password/?uidb64=MTIz&token=tok&email={guest}"}),
        "magic_link": ({"email": guest, "key": f"magic_{guest}", "token": "482913"},
                       {"code": "482913", "email": guest}),
        "email_update_code": ({"email": guest, "token": "730155"}, {"code": "730155", "email": guest}),
        "email_updated": ({"email": guest}, {"email": guest}),
        "user_activation": ({"current_site": SITE, "user_id": str(world.member.id)},
                            {"email": world.member.email, "profile_url": f"{SITE}/profile"}),
        "user_deactivation": ({"current_site": "", "user_id": str(world.member.id)},
                              {"email": world.member.email, "login_url": f"{WEB}/login"}),
        "workspace_invitation": (world.ws_data(), {
            "email": guest, "first_name": "Ada", "workspace_name": "Acme",
            "abs_url": f"{SITE}/workspace-invitations/?invitation_id={world.ws_invite}&slug={slug}"
                       f"&token={world.ws_token}"}),
        "project_invitation": (world.pj_data(), {
            "email": guest, "first_name": "Ada", "project_name": "Rockets", "current_site": SITE,
            "invitation_url": f"{SITE}/project-invitations/?invitation_id={world.pj_invite}"
                              f"&email={guest}&slug={slug}&project_id={world.project.id}"}),
        "project_addition": (world.add_data(), {
            "project_name": "Rockets", "workspace_name": "Acme", "email": world.member.email,
            "inviter_first_name": "Ada", "project_url": f"{SITE}/{slug}/projects/{world.project.id}/issues"}),
        "webhook_deactivation": (world.hook_data(), {
            "email": world.inviter.email, "reason": "",  # the reason is not in Plane's context
            "message": "Webhook https://hooks.example/in has been deactivated due to failed requests.",
            "webhook_url": f"{SITE}/{slug}/settings/webhooks/{world.webhook.id}"}),
    }  # fmt: skip


def test_plane_s_template_folder_renders_every_mail_from_plane_s_context(world: World):
    settings = replace(world.settings, plane_templates_dir=str(STAND_INS))
    for name, (data, context) in expected_contexts(world).items():
        kind = mail_type(f"plane.email.{name}.v1")
        mail = world.build(name, data, settings)
        stem = Path(kind.template).stem
        assert f"<h1>stand-in {stem}</h1>" in mail.html, name
        assert stand_in_context(mail.html) == context, name
        assert "p { margin" not in mail.text and f"stand-in {stem}" in mail.text  # <style> dropped
        for value in context.values():
            assert str(value) in mail.text, (name, value)
    stored = world.invite("workspace_member_invites", world.ws_invite)
    assert "stand-in workspace_invitation" in stored.message


def test_project_invitation_context_has_the_first_name_only_unlike_its_subject(world: World):
    world.sql("UPDATE users SET first_name = '' WHERE id = :id", id=world.inviter.id)
    settings = replace(world.settings, plane_templates_dir=str(STAND_INS))
    mail = world.build("project_invitation", world.pj_data(), settings)
    assert mail.subject == "ada invited you to join Rockets on Plane"
    assert stand_in_context(mail.html)["first_name"] == ""
    workspace = world.build("workspace_invitation", world.ws_data(), settings)
    assert stand_in_context(workspace.html)["first_name"] == "ada"  # there, the same fall-back


@pytest.mark.parametrize("broken", ["missing", "syntax"])
def test_a_missing_or_broken_template_falls_back_to_the_built_in_mail(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str
):
    folder = tmp_path / "templates"
    shutil.copytree(STAND_INS, folder)
    template = folder / mail_type("plane.email.workspace_invitation.v1").template
    if broken == "missing":
        template.unlink()
    else:
        template.write_text("<p>{% if %}{{ abs_url }}</p>")
    settings = replace(world.settings, plane_templates_dir=str(folder))
    with caplog.at_level(logging.ERROR, logger="shared.plane_templates"):
        mail = world.build("workspace_invitation", world.ws_data(), settings)
    assert "workspace_invitation.html" in caplog.text and world.ws_token not in caplog.text
    assert mail.subject == "Ada has invited you to join them in Acme on Plane"
    assert_built_in(mail, expected_contexts(world)["workspace_invitation"][1]["abs_url"])
    assert world.invite("workspace_member_invites", world.ws_invite).message == mail.text
    # The folder's other templates still render.
    other = world.build("project_invitation", world.pj_data(), settings)
    assert "stand-in project_invitation" in other.html
