"""Seed a new workspace with Plane's demo project, as Plane's workspace_seed task does.

Plane (bgtasks/workspace_seed_task.py) creates a bot user and its workspace membership, then from
its seed files one project named after the workspace (identifier: the name's first five letters
or digits) with a member and user-properties row for every workspace member, its states, labels,
cycles, modules, work items (with activity, labels, cycle and module links), a view and pages.

Here all of it is one transaction, the one that also claims the event id (idempotency
"transaction"), so a crash seeds nothing and a replay seeds nothing twice. Two events for one
workspace processed at once are serialised by a workspace advisory lock; the second sees the bot
user and stops. Work items take Plane's per-project advisory lock and number themselves from
issue_sequences as Issue.save() does, so the API creating items meanwhile cannot share a number.

Differences from Plane: a missing workspace is retried, then dead-lettered (Plane raises once);
each item gets one issue_sequences row (Plane adds a second, stray row with sequence 1); the bot's
password is Django's unusable form ("!" + random), as nobody signs in as it; pages get the
seed's description_json (Plane's seed names it `description`, so Plane stores {}); the project
has no cover image (Plane's seed links a stock photo).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.workspace_seed.rows import insert
from shared.db.issue_numbers import advisory_key, numbering
from shared.events import Event
from shared.kafka.handler import HandlerContext

SEEDS = Path(__file__).parent / "seeds"
BOT_TYPE = "WORKSPACE_SEED"
ROLE_ADMIN = 20

# ProjectUserProperty values Plane's task sets for every member of the seeded project.
DISPLAY_FILTERS = {
    "layout": "list",
    "calendar": {"layout": "month", "show_weekends": False},
    "group_by": "state",
    "order_by": "sort_order",
    "sub_issue": True,
    "sub_group_by": None,
    "show_empty_groups": True,
}
_SHOWN = {"key", "link", "state", "assignee", "estimate", "priority", "created_on", "issue_type"}
_SHOWN |= {"updated_on", "customer_count", "customer_request_count"}
DISPLAY_PROPERTIES = {
    name: name in _SHOWN
    for name in [
        "key",
        "link",
        "cycle",
        "state",
        "labels",
        "modules",
        "assignee",
        "due_date",
        "estimate",
        "priority",
        "created_on",
        "issue_type",
        "start_date",
        "updated_on",
        "customer_count",
        "sub_issue_count",
        "attachment_count",
        "customer_request_count",
    ]
}


class WorkspaceNotFound(LookupError):
    """Retried: the API publishes right after creating the workspace, maybe before it commits."""


@cache
def seed(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((SEEDS / f"{name}.json").read_text(encoding="utf-8")))


def handle(event: Event, ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with idempotency='transaction'"
    workspace_id = uuid.UUID(event.data["workspace_id"])
    # Not Plane's key space for projects: a prefix keeps the two from meeting.
    session.execute(
        text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(f"workspace-seed:{workspace_id}")}
    )
    workspace = session.execute(
        text("SELECT id, name, timezone FROM workspaces WHERE id = :id AND deleted_at IS NULL"),
        {"id": workspace_id},
    ).one_or_none()
    if workspace is None:
        raise WorkspaceNotFound(f"workspace {workspace_id} does not exist or is deleted")
    username = f"bot_user_{workspace_id}"
    if session.scalar(text("SELECT 1 FROM users WHERE username = :u"), {"u": username}):
        return  # seeded already
    seed_workspace(session, workspace_id, workspace.name, workspace.timezone, username, datetime.now(UTC))


def seed_workspace(
    session: Session, workspace_id: uuid.UUID, name: str, timezone: str, username: str, now: datetime
) -> None:
    bot = insert(
        session,
        "users",
        now,
        username=username,
        email=f"{username}@plane.so",
        password="!" + secrets.token_urlsafe(30),
        display_name="Plane",
        first_name="Plane",
        last_name="",
        is_bot=True,
        bot_type=BOT_TYPE,
        is_password_autoset=True,
        is_active=True,
        date_joined=now,
        last_login_medium="email",
        user_timezone="UTC",
        token=uuid.uuid4().hex,
    )
    insert(
        session,
        "workspace_members",
        now,
        workspace_id=workspace_id,
        member_id=bot,
        role=ROLE_ADMIN,
        company_role="",
        is_active=True,
        view_props=_member_props(),
        default_props=_member_props(),
        issue_props={"subscribed": True, "assigned": True, "created": True, "all_issues": True},
    )
    by = {"workspace_id": workspace_id, "created_by_id": bot}
    projects = _projects(session, now, workspace_id, name, timezone, by)
    # The project is new and unseen by others until commit, so the orderings Plane's save()
    # methods read back from the table (max + step, min - step) are computed here as it goes.
    states = {}
    sequence: float | None = None
    for row in seed("states"):
        sequence = row["sequence"] if sequence is None else sequence + 15000  # State.save()
        states[row["id"]] = (
            insert(
                session,
                "states",
                now,
                **by,
                project_id=projects[row["project_id"]],
                name=row["name"],
                color=row["color"],
                sequence=sequence,
                group=row["group"],
                default=row["default"],
                slug=_slug(row["name"]),
            ),
            row["group"],
        )
    labels = {}
    label_order: float | None = None
    for row in seed("labels"):
        label_order = row["sort_order"] if label_order is None else label_order + 10000  # Label.save()
        labels[row["id"]] = insert(
            session,
            "labels",
            now,
            **by,
            project_id=projects[row["project_id"]],
            name=row["name"],
            color=row["color"],
            sort_order=label_order,
        )
    cycles = _cycles(session, now, projects, by)
    modules = {}
    module_order: float | None = None
    for index, row in enumerate(seed("modules")):
        start = (now + timedelta(days=2 * index)).date()
        module_order = row["sort_order"] if module_order is None else module_order - 10000  # Module.save()
        modules[row["id"]] = insert(
            session,
            "modules",
            now,
            **by,
            project_id=projects[row["project_id"]],
            name=row["name"],
            description=row["description"],
            status=row["status"],
            sort_order=module_order,
            start_date=start,
            target_date=start + timedelta(days=14),
        )
    for row in seed("issues"):
        _issue(session, now, row, projects, states, labels, cycles, modules, bot, by)
    view_order: float | None = None
    for row in seed("views"):
        view_order = row["sort_order"] if view_order is None else view_order + 10000  # IssueView.save()
        insert(
            session,
            "issue_views",
            now,
            **by,
            project_id=projects[row["project_id"]],
            owned_by_id=bot,
            name=row["name"],
            description=row["description"],
            access=row["access"],
            filters=row["filters"],
            rich_filters=row["rich_filters"],
            display_filters=row["display_filters"],
            display_properties=row["display_properties"],
            sort_order=view_order,
            query={},  # IssueView.save(): issue_filters(filters), {} for the seed's empty filters
        )
    for row in seed("pages"):
        page = insert(
            session,
            "pages",
            now,
            **by,
            updated_by_id=bot,
            owned_by_id=bot,
            name=row["name"],
            access=row["access"],
            is_global=False,
            description_json=row.get("description_json", {}),
            description_html=row.get("description_html", "<p></p>"),
            description_stripped=_strip_tags(row.get("description_html") or "") or None,  # Page.save()
            view_props={"full_width": False},
            sort_order=65535,
        )
        if row.get("project_id") and row.get("type") == "PROJECT":
            insert(
                session,
                "project_pages",
                now,
                **by,
                updated_by_id=bot,
                project_id=projects[row["project_id"]],
                page_id=page,
            )


def _projects(
    session: Session, now: datetime, workspace_id: uuid.UUID, name: str, timezone: str, by: dict
) -> dict[int, uuid.UUID]:
    # Project.save() strips and upper-cases the identifier.
    identifier = "".join(ch for ch in name if ch.isalnum())[:5].strip().upper()
    members = session.execute(
        text("SELECT member_id, role FROM workspace_members WHERE workspace_id = :w AND deleted_at IS NULL"),
        {"w": workspace_id},
    ).all()
    projects = {}
    for row in seed("projects"):
        project = insert(
            session,
            "projects",
            now,
            **by,
            name=name,
            identifier=identifier,
            description=row["description"],
            network=row["network"],
            logo_props=row["logo_props"],
            cycle_view=True,
            module_view=True,
            issue_views_view=True,
            page_view=True,
            timezone=timezone,  # Project.save(): the workspace's when none is given
        )
        for member_id, role in members:
            insert(
                session,
                "project_members",
                now,
                **by,
                project_id=project,
                member_id=member_id,
                role=role,
                is_active=True,
                sort_order=65535,
                view_props=_member_props(),
                default_props=_member_props(),
                preferences={"pages": {"block_display": True}},
            )
            insert(
                session,
                "project_user_properties",
                now,
                **by,
                project_id=project,
                user_id=member_id,
                display_filters=DISPLAY_FILTERS,
                display_properties=DISPLAY_PROPERTIES,
                preferences={"pages": {"block_display": True}},
                sort_order=65535,
            )
        projects[row["id"]] = project
    return projects


def _cycles(session: Session, now: datetime, projects: dict, by: dict) -> dict[int, uuid.UUID]:
    cycles: dict[int, uuid.UUID] = {}
    order: float | None = None
    ends: dict[uuid.UUID, datetime] = {}  # latest end per project, as Plane's query finds it
    for row in seed("cycles"):
        project = projects[row["project_id"]]
        if row["type"] == "CURRENT":
            start = now
        elif project in ends:
            start = ends[project] + timedelta(days=1)
        else:
            start = now + timedelta(days=14)
        end = start + timedelta(days=14)
        ends[project] = max(end, ends.get(project, end))
        order = row["sort_order"] if order is None else order - 10000  # Cycle.save()
        cycles[row["id"]] = insert(
            session,
            "cycles",
            now,
            **by,
            project_id=project,
            owned_by_id=by["created_by_id"],
            name=row["name"],
            sort_order=order,
            timezone=row["timezone"],
            start_date=start,
            end_date=end,
            version=1,
        )
    return cycles


def _issue(session, now, row, projects, states, labels, cycles, modules, bot, by) -> None:  # type: ignore[no-untyped-def]
    project = projects[row["project_id"]]
    state, group = states[row["state_id"]]
    # Issue.save(): the project's lock, then the next number and the sort order under it.
    sequence, sort_order = numbering(session, project).take(session, project, state, row["sort_order"])
    html = row.get("description_html", "<p></p>")
    issue = insert(
        session,
        "issues",
        now,
        **by,
        project_id=project,
        state_id=state,
        name=row["name"],
        priority=row["priority"],
        description_html=html,
        description_json={},
        description_stripped=_strip_tags(html) or None,
        sequence_id=sequence,
        sort_order=sort_order,
        completed_at=now if group == "completed" else None,
    )
    link = {"issue_id": issue, **by, "project_id": project}
    insert(session, "issue_sequences", now, **link, sequence=sequence, deleted=False)
    insert(
        session,
        "issue_activities",
        now,
        issue_id=issue,
        project_id=project,
        workspace_id=by["workspace_id"],
        actor_id=bot,
        verb="created",
        comment="created the issue",
        epoch=time.time(),
    )
    for label in row.get("labels", ()):
        insert(session, "issue_labels", now, **link, label_id=labels[label])
    if row.get("cycle_id"):
        insert(session, "cycle_issues", now, **link, cycle_id=cycles[row["cycle_id"]])
    for module in row.get("module_ids") or ():
        insert(session, "module_issues", now, **link, module_id=modules[module])


def _member_props() -> dict[str, Any]:
    return {
        "filters": {"priority": None, "state": None, "state_group": None, "assignees": None},
        "display_filters": {"group_by": None, "order_by": "-created_at", "type": None, "sub_issue": True},
        "display_properties": {
            "assignee": True,
            "due_date": True,
            "key": True,
            "labels": True,
            "priority": True,
        },
    }


def _slug(name: str) -> str:
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", name.lower())).strip("-_")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _strip_tags(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts)
