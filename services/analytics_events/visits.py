"""Plane's recent_visited_task on `user_recent_visits`: upsert the visit, keep 20 per user.

Plane: a live row for (entity_name, entity_identifier, user_id, project_id, workspace) gets
`visited_at = now`; otherwise, when the user has exactly 20 live rows in the workspace, the oldest
by `created_at` is soft-deleted, and a row is inserted with `created_by_id = updated_by_id = user`.

Here, in the batch's transaction and in the events' order:
- the visit's time is the event's time (when the API saw the GET), and an upsert never moves
  `visited_at` back, so a retried older event cannot undo a newer visit;
- the cap holds whatever happened before: with 20 or more live rows the oldest beyond 19 go,
  so the user ends with 20 (Plane trims only at exactly 20, so a race left it above for ever);
- each user's rows are changed under a transaction-level advisory lock (taken in id order for the
  whole batch), so two consumers overlapping during a rebalance cannot both insert the 21st;
- the inserted row's id is derived from the event id, inserted ON CONFLICT DO NOTHING;
- a visit whose workspace (by slug), user or project does not exist is skipped and counted:
  Plane's task fails on it and drops it (a dangling foreign key would fail the whole batch at
  commit here, as Plane's are deferred).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.events import Event

log = logging.getLogger(__name__)

KEEP = 20  # Plane's cap of live recent visits per user and workspace

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('plane-workers:recent-visits:' || :user_id, 0))")
_WORKSPACES = text("SELECT slug, id FROM workspaces WHERE slug = ANY(:slugs) AND deleted_at IS NULL")
_USERS = text("SELECT id FROM users WHERE id = ANY(:ids)")
_PROJECTS = text("SELECT id FROM projects WHERE id = ANY(:ids)")
_TOUCH = text(
    "UPDATE user_recent_visits"
    " SET visited_at = GREATEST(visited_at, :at), updated_at = GREATEST(updated_at, :at)"
    " WHERE deleted_at IS NULL AND entity_name = :entity_name"
    " AND entity_identifier IS NOT DISTINCT FROM :entity_identifier AND user_id = :user_id"
    " AND project_id IS NOT DISTINCT FROM :project_id AND workspace_id = :workspace_id"
)
_TRIM = text(
    "UPDATE user_recent_visits SET deleted_at = :at, updated_at = :at WHERE id IN ("
    " SELECT id FROM user_recent_visits WHERE user_id = :user_id AND workspace_id = :workspace_id"
    " AND deleted_at IS NULL ORDER BY created_at, id"
    " LIMIT GREATEST((SELECT count(*) FROM user_recent_visits WHERE user_id = :user_id"
    " AND workspace_id = :workspace_id AND deleted_at IS NULL) - :keep + 1, 0))"
)
_INSERT = text(
    "INSERT INTO user_recent_visits (id, created_at, updated_at, entity_identifier, entity_name, visited_at,"
    " created_by_id, project_id, updated_by_id, user_id, workspace_id, deleted_at)"
    " VALUES (:id, :at, :at, :entity_identifier, :entity_name, :at, :user_id, :project_id, :user_id,"
    " :user_id, :workspace_id, NULL) ON CONFLICT (id) DO NOTHING"
)


@dataclass(frozen=True)
class Outcomes:
    touched: int = 0
    inserted: int = 0
    trimmed: int = 0
    skipped: int = 0


def row_id(event_id: str) -> uuid.UUID:
    """A UUID v4 (the version Plane accepts) fixed by the event."""
    digest = hashlib.sha256(f"{event_id}:user_recent_visit".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def visit_time(event: Event) -> datetime:
    try:
        when = datetime.fromisoformat(event.time)
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _uuid(value: object) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def apply(session: Session, events: Sequence[Event]) -> Outcomes:
    """Every visit of the batch, in order, on the batch's transaction."""
    conn = session.connection()
    users = sorted({str(e.data["user_id"]) for e in events})
    for user in users:
        conn.execute(_LOCK, {"user_id": user})
    workspaces = {
        slug: ws_id
        for slug, ws_id in conn.execute(_WORKSPACES, {"slugs": sorted({e.data["slug"] for e in events})})
    }
    known_users = set(conn.scalars(_USERS, {"ids": [uuid.UUID(u) for u in users]}))
    project_ids = {_uuid(e.data.get("project_id")) for e in events} - {None}
    known_projects = set(conn.scalars(_PROJECTS, {"ids": list(project_ids)})) if project_ids else set()
    touched = inserted = trimmed = skipped = 0
    for event in events:
        data = event.data
        workspace_id = workspaces.get(data["slug"])
        user_id, project_id = uuid.UUID(str(data["user_id"])), _uuid(data.get("project_id"))
        if (
            workspace_id is None
            or user_id not in known_users
            or (project_id and project_id not in known_projects)
        ):
            log.warning(
                "recent visit skipped: %s",
                "no live workspace with its slug"
                if workspace_id is None
                else "its user or project does not exist",
            )
            skipped += 1
            continue
        params = {
            "at": visit_time(event),
            "entity_name": data["entity_name"],
            "entity_identifier": _uuid(data.get("entity_identifier")),
            "user_id": user_id,
            "project_id": project_id,
            "workspace_id": workspace_id,
        }
        if conn.execute(_TOUCH, params).rowcount:
            touched += 1
            continue
        trimmed += conn.execute(_TRIM, {**params, "keep": KEEP}).rowcount
        conn.execute(_INSERT, {**params, "id": row_id(event.id)})
        inserted += 1
    return Outcomes(touched, inserted, trimmed, skipped)
