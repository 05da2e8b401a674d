"""Invitations into a workspace or a project, and the notice of being added to a project (Plane's
workspace_invitation, project_invitation and project_add_user_email tasks).

The two invitation mails store their text part in the invite's `message`, as Plane does; the
write goes through the caller's connection, so it is undone with the event's transaction. Plane
wrote it with a full save(), which also nulled created_by/updated_by (bug 8): only `message` and
`updated_at` (Django's auto_now) are written here.

Plane's project invitation could never be enqueued (bug 15: `.delay` on a list); it is built
here as its task would have built it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text

from services.emails.mails_common import (
    Mail,
    MailType,
    NothingToSend,
    called,
    e,
    finish,
    footer,
    link,
    one,
    site_of,
    user_by_email,
    user_by_id,
)
from shared.settings import Settings

WORKSPACE_INVITATION = "emails/invitations/workspace_invitation.html"
PROJECT_INVITATION = "emails/invitations/project_invitation.html"
PROJECT_ADDITION = "emails/notifications/project_addition.html"

# Plane's `objects` managers hide soft-deleted workspaces, projects, invites and members; the
# workspace reached through a foreign key (`project.workspace`) is read without that filter.
_WORKSPACE = text("SELECT id, slug, name FROM workspaces WHERE id = CAST(:id AS uuid) AND deleted_at IS NULL")
_PROJECT = text(
    """
    SELECT p.id, p.name, ws.slug FROM projects p JOIN workspaces ws ON ws.id = p.workspace_id
    WHERE p.id = CAST(:id AS uuid) AND p.deleted_at IS NULL
    """
)
# Looked up by token and address only, as Plane's `.get(token=token, email=email)`.
_WORKSPACE_INVITE = text(
    "SELECT id FROM workspace_member_invites WHERE token = :token AND email = :email AND deleted_at IS NULL"
)
_PROJECT_INVITE = text(
    "SELECT id FROM project_member_invites WHERE token = :token AND email = :email AND deleted_at IS NULL"
)
_SET_WORKSPACE_MESSAGE = text(
    "UPDATE workspace_member_invites SET message = :message, updated_at = now() WHERE id = :id"
)
_SET_PROJECT_MESSAGE = text(
    "UPDATE project_member_invites SET message = :message, updated_at = now() WHERE id = :id"
)
_MEMBER = text(
    """
    SELECT pm.project_id, p.name AS project_name, ws.slug, ws.name AS workspace_name,
           pm.member_id, u.email
    FROM project_members pm
    JOIN projects p ON p.id = pm.project_id
    JOIN workspaces ws ON ws.id = pm.workspace_id
    LEFT JOIN users u ON u.id = pm.member_id
    WHERE pm.id = CAST(:id AS uuid) AND pm.deleted_at IS NULL
    """
)


def workspace_invitation(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    email, token = data["email"], data["token"]
    inviter = user_by_email(conn, data["inviter"], "inviting")
    workspace = one(
        conn.execute(_WORKSPACE, {"id": data["workspace_id"]}).all(), f"workspace {data['workspace_id']}"
    )
    invite = one(
        conn.execute(_WORKSPACE_INVITE, {"token": token, "email": email}).all(),
        f"an invite to workspace {workspace.id} for this token and address",
    )
    url = (
        f"{site_of(settings, data)}/workspace-invitations/"
        f"?invitation_id={invite.id}&slug={workspace.slug}&token={token}"
    )
    name = called(inviter)
    context = {"email": email, "first_name": name, "workspace_name": workspace.name, "abs_url": url}
    mail = finish(
        settings,
        email,
        f"{name} has invited you to join them in {workspace.name} on Plane",
        WORKSPACE_INVITATION,
        context,
        [
            f"{e(name)} has invited you to join the workspace {e(workspace.name)} on Plane.",
            "Accept the invitation here:",
            link(url),
            footer(email, "If you were not expecting this invitation, ignore this mail."),
        ],
    )
    conn.execute(_SET_WORKSPACE_MESSAGE, {"message": mail.text, "id": invite.id})
    return mail


def project_invitation(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    email, token = data["email"], data["token"]
    inviter = user_by_email(conn, data["invitor"], "inviting")
    project_id = data["project_id"]
    project = one(conn.execute(_PROJECT, {"id": project_id}).all(), f"project {project_id}")
    invite = one(
        conn.execute(_PROJECT_INVITE, {"token": token, "email": email}).all(),
        f"an invite to project {project.id} for this token and address",
    )
    site = site_of(settings, data)
    url = (
        f"{site}/project-invitations/?invitation_id={invite.id}&email={email}"
        f"&slug={project.slug}&project_id={project.id}"
    )
    context = {
        "email": email,
        "first_name": inviter.first_name,  # Plane's context: the first name only, unlike the subject
        "project_name": project.name,
        "invitation_url": url,
        "current_site": site,
    }
    name = called(inviter)
    mail = finish(
        settings,
        email,
        f"{name} invited you to join {project.name} on Plane",
        PROJECT_INVITATION,
        context,
        [
            f"{e(name)} has invited you to join the project {e(project.name)} on Plane.",
            "Accept the invitation here:",
            link(url),
            footer(email, "If you were not expecting this invitation, ignore this mail."),
        ],
    )
    conn.execute(_SET_PROJECT_MESSAGE, {"message": mail.text, "id": invite.id})
    return mail


def project_addition(conn: Connection, settings: Settings, data: Mapping[str, Any]) -> Mail:
    inviter = user_by_id(conn, data["invitor_id"], "inviting")
    member_id = data["project_member_id"]
    member = one(conn.execute(_MEMBER, {"id": member_id}).all(), f"project member {member_id}")
    if member.member_id is None or not member.email:
        raise NothingToSend(f"project member {member_id} has no user with an e-mail address")
    email = str(member.email)
    url = f"{site_of(settings, data)}/{member.slug}/projects/{member.project_id}/issues"
    context = {
        "project_name": member.project_name,
        "workspace_name": member.workspace_name,
        "email": email,
        "inviter_first_name": inviter.first_name,
        "project_url": url,
    }
    who = e(inviter.first_name) if inviter.first_name else "Someone"
    return finish(
        settings,
        email,
        "You have been invited to a Plane project",
        PROJECT_ADDITION,
        context,
        [
            f"{who} has added you to the project {e(member.project_name)} "
            f"in the workspace {e(member.workspace_name)} on Plane.",
            "Open the project here:",
            link(url),
            footer(email, "If you were not expecting this, ignore this mail."),
        ],
    )


INVITATION_MAILS = (
    MailType(
        name="workspace_invitation",
        plane_task="plane.bgtasks.workspace_invitation_task.workspace_invitation",
        plane_args=("email", "workspace_id", "token", "current_site", "inviter"),
        template=WORKSPACE_INVITATION,
        build=workspace_invitation,
    ),
    MailType(
        name="project_invitation",
        plane_task="plane.bgtasks.project_invitation_task.project_invitation",
        plane_args=("email", "project_id", "token", "current_site", "invitor"),
        template=PROJECT_INVITATION,
        build=project_invitation,
    ),
    MailType(
        name="project_addition",
        plane_task="plane.bgtasks.project_add_user_email_task.project_add_user_email",
        plane_args=("current_site", "project_member_id", "invitor_id"),
        template=PROJECT_ADDITION,
        build=project_addition,
        recipient="project_member_id",
    ),
)
