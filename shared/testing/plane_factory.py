"""Plane rows with every NOT NULL column filled the way Plane's models default them.

Plane's columns have no database defaults (Django fills them in Python), so anything writing
Plane rows outside Django must supply them. These builders are for the demo, tests and
benchmarks; the workers themselves only write the tables their tasks write.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from shared.db.plane import (
    APIActivityLog,
    Issue,
    IssueAssignee,
    IssueComment,
    IssueSubscriber,
    Project,
    ProjectMember,
    State,
    User,
    UserNotificationPreference,
    Webhook,
    Workspace,
)


def user(n: int = 0, **values: Any) -> User:
    uid = uuid.uuid4()
    return User.new(
        **{
            "id": uid,
            "password": "!",  # Django's unusable password
            "username": f"user-{uid.hex[:12]}",
            "email": f"user{n}-{uid.hex[:6]}@example.com",
            "first_name": f"User{n}",
            "last_name": "Demo",
            "avatar": "",
            "date_joined": datetime.now(UTC),
            "last_location": "",
            "created_location": "",
            "is_superuser": False,
            "is_managed": False,
            "is_password_expired": False,
            "is_active": True,
            "is_staff": False,
            "is_email_verified": True,
            "is_password_autoset": False,
            "token": uid.hex,
            "user_timezone": "UTC",
            "last_login_ip": "",
            "last_logout_ip": "",
            "last_login_medium": "email",
            "last_login_uagent": "",
            "is_bot": False,
            "display_name": f"user{n}",
            "is_email_valid": True,
            "is_password_reset_required": False,
            **values,
        }
    )


def workspace(owner: User, slug: str = "demo", **values: Any) -> Workspace:
    return Workspace.new(
        **{
            "name": slug.title(),
            "slug": slug,
            "owner_id": owner.id,
            "created_by_id": owner.id,
            "updated_by_id": owner.id,
            "timezone": "UTC",
            "background_color": "#3f76ff",
            **values,
        }
    )


def project(ws: Workspace, identifier: str = "DEMO", **values: Any) -> Project:
    return Project.new(
        **{
            "name": f"{identifier} project",
            "description": "",
            "network": 2,
            "identifier": identifier,
            "workspace_id": ws.id,
            "created_by_id": ws.owner_id,
            "updated_by_id": ws.owner_id,
            "cycle_view": True,
            "module_view": True,
            "issue_views_view": True,
            "page_view": True,
            "intake_view": False,
            "archive_in": 0,
            "close_in": 0,
            "logo_props": {},
            "is_time_tracking_enabled": False,
            "is_issue_type_enabled": False,
            "guest_view_all_features": False,
            "timezone": "UTC",
            **values,
        }
    )


def issue(proj: Project, sequence_id: int, html: str = "<p></p>", **values: Any) -> Issue:
    return Issue.new(
        **{
            "name": f"Issue {sequence_id}",
            "description_json": {"type": "doc", "content": []},
            "description_html": html,
            "description_stripped": html.replace("<p>", "").replace("</p>", ""),
            "priority": "none",
            "sequence_id": sequence_id,
            "project_id": proj.id,
            "workspace_id": proj.workspace_id,
            "created_by_id": proj.created_by_id,
            "updated_by_id": proj.created_by_id,
            "sort_order": 65535.0 * sequence_id,
            "is_draft": False,
            **values,
        }
    )


def api_log(created_at: datetime, **values: Any) -> APIActivityLog:
    return APIActivityLog.new(
        now=created_at,
        **{
            "token_identifier": "plane_api_" + uuid.uuid4().hex[:8],
            "path": "/api/v1/workspaces/demo/projects/",
            "method": "GET",
            "response_code": 200,
            "ip_address": "10.0.0.1",
            "user_agent": "demo",
            **values,
        },
    )


def webhook(ws: Workspace, url: str, **values: Any) -> Webhook:
    """An active webhook subscribed to every event kind, with a Plane-style secret."""
    return Webhook.new(
        **{
            "url": url,
            "is_active": True,
            "secret_key": f"plane_wh_{uuid.uuid4().hex}",
            "project": True,
            "issue": True,
            "module": True,
            "cycle": True,
            "issue_comment": True,
            "workspace_id": ws.id,
            "created_by_id": ws.owner_id,
            "updated_by_id": ws.owner_id,
            "is_internal": False,
            "version": "v1",
            **values,
        }
    )


def project_with_issues(
    engine: Engine, n_issues: int, n_users: int = 2, texts: Sequence[tuple[str, str]] = ()
) -> tuple[list[User], list[Issue]]:
    """`n_users` users, a workspace owned by the first, one project, `n_issues` issues in it, or
    one issue per (name, description) of `texts` when given."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        users = [user(i) for i in range(n_users)]
        session.add_all(users)
        session.flush()
        ws = workspace(users[0], slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        proj = project(ws)
        session.add(proj)
        session.flush()
        if texts:
            issues = [issue(proj, n + 1, html=f"<p>{d}</p>", name=name) for n, (name, d) in enumerate(texts)]
        else:
            issues = [issue(proj, i + 1, html=f"<p>issue {i + 1}</p>") for i in range(n_issues)]
        session.add_all(issues)
    return users, issues


def project_member(proj: Project, member: User, **values: Any) -> ProjectMember:
    """An active member (role 15, Plane's Member) with the JSON columns as Plane defaults them."""
    return ProjectMember.new(
        **{
            "project_id": proj.id,
            "workspace_id": proj.workspace_id,
            "member_id": member.id,
            "role": 15,
            "view_props": {},
            "default_props": {},
            "preferences": {},
            "sort_order": 65535.0,
            "is_active": True,
            "created_by_id": proj.created_by_id,
            "updated_by_id": proj.created_by_id,
            **values,
        }
    )


def state(proj: Project, name: str, group: str, **values: Any) -> State:
    return State.new(
        **{
            "name": name,
            "description": "",
            "color": "#60646C",
            "slug": name.lower().replace(" ", "-"),
            "project_id": proj.id,
            "workspace_id": proj.workspace_id,
            "sequence": 65535.0,
            "group": group,
            "default": False,
            "is_triage": group == "triage",
            "created_by_id": proj.created_by_id,
            "updated_by_id": proj.created_by_id,
            **values,
        }
    )


def issue_assignee(iss: Issue, assignee: User, **values: Any) -> IssueAssignee:
    return IssueAssignee.new(
        **{
            "issue_id": iss.id,
            "assignee_id": assignee.id,
            "project_id": iss.project_id,
            "workspace_id": iss.workspace_id,
            "created_by_id": iss.created_by_id,
            "updated_by_id": iss.created_by_id,
            **values,
        }
    )


def issue_comment(iss: Issue, actor: User, html: str, stripped: str = "", **values: Any) -> IssueComment:
    return IssueComment.new(
        **{
            "issue_id": iss.id,
            "project_id": iss.project_id,
            "workspace_id": iss.workspace_id,
            "actor_id": actor.id,
            "comment_html": html,
            "comment_stripped": stripped,
            "comment_json": {},
            "attachments": [],
            "access": "INTERNAL",
            "created_by_id": actor.id,
            "updated_by_id": actor.id,
            **values,
        }
    )


def issue_subscriber(iss: Issue, subscriber: User, **values: Any) -> IssueSubscriber:
    return IssueSubscriber.new(
        **{
            "issue_id": iss.id,
            "subscriber_id": subscriber.id,
            "project_id": iss.project_id,
            "workspace_id": iss.workspace_id,
            **values,
        }
    )


def notification_preference(member: User, **values: Any) -> UserNotificationPreference:
    """A user-wide preferences row with every flag on, as Plane creates one at sign-up."""
    flags = ("property_change", "state_change", "comment", "mention", "issue_completed")
    return UserNotificationPreference.new(**{**dict.fromkeys(flags, True), "user_id": member.id, **values})
