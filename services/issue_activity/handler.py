"""issue-activity: Plane's `issue_activity` task as a batch consumer.

One transaction per batch (the runtime's, which also claims the event ids): translate every event
with a few lookups for the whole batch, write every row with one statement per kind, keep each
issue's request origin for the e-mail digest, then hand the activities on:
- `plane.notifications.v1` (topic `notifications`) when the event asks for notifications, with
  the activities it created, as Plane's task calls `notifications.delay` (not for the types that
  task ignores);
- `plane.embed.v1` (topic `embeddings`) when the issue's text may have changed or it was deleted,
  so Plane AI's vectors follow.
Both carry ids derived from the event id: a batch run again after a failure sends them again with
the same ids, and their consumers claim ids. Events of one issue keep their order even when one
fails (the registry entry sets `keep_key_order`: a failing event holds its issue's later events
instead of going through the retry topics, R14).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, text

from services.issue_activity import writer
from services.issue_activity.result import ActivityResult, ActivityRow, InvalidActivity
from services.issue_activity.translate import translate_with_db
from services.notifications.payload import SKIPPED_TYPES as NOTIFICATIONS_SKIP
from shared.events import Event
from shared.events.envelope import DEFAULT_SOURCE
from shared.kafka.handler import HandlerContext, PermanentError

log = logging.getLogger(__name__)

NOTIFICATIONS_TOPIC = "notifications"
EMBEDDINGS_TOPIC = "embeddings"
FOLLOW_UP_NAMESPACE = uuid.UUID("5b0f3f7e-0c44-5d0a-8f6e-9a1d2c3b4e5f")
# Activity types after which an issue's embedded text (name, description, comments) may differ.
EMBEDDED_TYPES = frozenset(
    {
        "issue.activity.created",
        "issue.activity.updated",
        "comment.activity.created",
        "comment.activity.updated",
        "comment.activity.deleted",
    }
)
EMBEDDED_FIELDS = frozenset({"name", "description", "comment", None})  # None: a created row
MAX_ORIGIN_CHARS = 2048

_ORIGINS = text(
    """
    INSERT INTO plane_workers.issue_origins (issue_id, origin, updated_at)
    SELECT DISTINCT ON (i) i, o, :now
    FROM unnest(CAST(:issues AS uuid[]), CAST(:origins AS text[])) WITH ORDINALITY AS u(i, o, n)
    ORDER BY i, n DESC
    ON CONFLICT (issue_id) DO UPDATE SET origin = excluded.origin, updated_at = excluded.updated_at
    """
)


def handle(events: Sequence[Event], ctx: HandlerContext) -> None:
    assert ctx.session is not None, "a batch handler runs in the batch's transaction"
    conn = ctx.session.connection()
    now = datetime.now(UTC)
    outcomes = translate_with_db(conn, [(e.id, e.data) for e in events], now=now)
    for event, outcome in zip(events, outcomes, strict=True):
        if isinstance(outcome, InvalidActivity):
            # The runtime rolls back and runs each event alone: this one is dead-lettered, the
            # others are applied.
            raise PermanentError(f"event {event.id}: {outcome}") from outcome
    results = [o for o in outcomes if isinstance(o, ActivityResult)]
    writer.write(conn, results, now)
    _keep_origins(conn, events, now)

    notifications, embeds = [], []
    for event, result in zip(events, results, strict=True):
        if result.skipped:
            continue
        data = event.data
        if _wants_notifications(data):  # even without rows: Plane's task still reads the mentions
            notifications.append((data["issue_id"], _notifications_event(event, result)))
        embed = _embed_event(event, result)
        if embed is not None:
            embeds.append((embed.data["entity_id"], embed))
    # Confirmed by the broker before the runtime commits the batch's claims.
    if notifications:
        ctx.producer.send_many(NOTIFICATIONS_TOPIC, notifications)
    if embeds:
        ctx.producer.send_many(EMBEDDINGS_TOPIC, embeds)


def origin_of(value: object) -> str | None:
    """scheme://host[:port] of an http(s) origin, or None: only that goes into mail links."""
    if not isinstance(value, str) or len(value) > MAX_ORIGIN_CHARS:
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _keep_origins(conn: Connection, events: Sequence[Event], now: datetime) -> None:
    kept = [(e.data.get("issue_id"), origin_of(e.data.get("origin"))) for e in events]
    kept = [(issue, origin) for issue, origin in kept if issue and origin]
    if kept:
        issues, origins = zip(*kept, strict=True)
        conn.execute(_ORIGINS, {"now": now, "issues": list(issues), "origins": list(origins)})


def _follow_up(event: Event, kind: str, event_type: str, data: dict[str, Any], subject: str) -> Event:
    return Event(
        id=str(uuid.uuid5(FOLLOW_UP_NAMESPACE, f"{event.id}:{kind}")),
        type=event_type,
        source=DEFAULT_SOURCE,
        time=event.time,
        data=data,
        subject=subject,
    )


def _wants_notifications(data: dict[str, Any]) -> bool:
    """Whether to hand the event on: asked for, about an issue, of a type `notifications` acts on.

    Plane's call sites pass notification=True for cycles, reactions and the rest too, and its task
    returns at once for those types (or, without an issue, finds none to notify about). Some come
    without an issue_id (cycles, comment reactions) or write a row without one (a deleted draft),
    which plane.notifications.v1 cannot carry: handed on, they would only be dead-lettered.
    """
    return (
        bool(data.get("notification"))
        and bool(data.get("issue_id"))
        and data["type"] not in NOTIFICATIONS_SKIP
    )


def _notifications_event(event: Event, result: ActivityResult) -> Event:
    data = event.data
    return _follow_up(
        event,
        "notifications",
        "plane.notifications.v1",
        {
            "type": data["type"],
            "issue_id": data["issue_id"],
            "project_id": data["project_id"],
            "actor_id": data["actor_id"],
            "subscriber": data.get("subscriber", True),
            "issue_activities_created": [_activity(row) for row in result.rows],
            "requested_data": data.get("requested_data"),
            "current_instance": data.get("current_instance"),
            "origin": origin_of(data.get("origin")),
        },
        data["issue_id"],
    )


def _activity(row: ActivityRow) -> dict[str, Any]:
    """A created activity as Plane's IssueActivitySerializer hands it to `notifications`."""
    return {
        "id": str(row.id),
        "verb": row.verb,
        "field": row.field,
        "old_value": row.old_value,
        "new_value": row.new_value,
        "old_identifier": _str(row.old_identifier),
        "new_identifier": _str(row.new_identifier),
        "comment": row.comment,
        "issue_comment": _str(row.issue_comment_id),
        "actor": _str(row.actor_id),
        "issue": _str(row.issue_id),
        # IssueFlatSerializer's block: null when the row has no issue.
        "issue_detail": None if row.issue_id is None else {"id": str(row.issue_id)},
        "project": str(row.project_id),
        "workspace": str(row.workspace_id),
        "epoch": row.epoch,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


def _embed_event(event: Event, result: ActivityResult) -> Event | None:
    data = event.data
    issue_id, kind = data.get("issue_id"), data["type"]
    if not issue_id:
        return None
    if kind == "issue.activity.deleted":
        action = "delete"
    elif kind in EMBEDDED_TYPES and any(row.field in EMBEDDED_FIELDS for row in result.rows):
        action = "upsert"
    else:
        return None
    row = result.rows[0] if result.rows else None
    return _follow_up(
        event,
        "embed",
        "plane.embed.v1",
        {
            "action": action,
            "entity_type": "issue",
            "entity_id": issue_id,
            "workspace_id": str(row.workspace_id) if row else None,
            "project_id": data["project_id"],
            "version": event.time,
            "reason": kind,
        },
        issue_id,
    )


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
