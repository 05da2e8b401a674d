"""From one event's `data` (Plane's `issue_activity.delay()` kwargs) to its `ActivityResult`."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from services.issue_activity.context import Context, Draft, log
from services.issue_activity.lookups import Kind, Lookups, ProjectRef, prefetch
from services.issue_activity.mapper import ACTIVITY_MAPPER
from services.issue_activity.payload import Payload, as_uuid, is_valid_uuid4
from services.issue_activity.result import ActivityResult, ActivityRow, InvalidActivity

# Rows of one event are a microsecond apart, in the order Plane appends them: Django stamps each
# object of a bulk_create with its own now(), and the web app sorts activities by created_at.
ROW_SPACING = timedelta(microseconds=1)
VARCHAR_255 = 255  # verb and field are varchar(255); longer would fail the whole batch's INSERT


def row_id(seed: str, index: int) -> uuid.UUID:
    """A UUID v4 derived from (seed, index): a replayed event writes the same ids again."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def translate(
    data: Mapping[str, Any], lookups: Lookups, *, now: datetime, id_seed: str | None = None
) -> ActivityResult:
    """The rows and side effects Plane's `issue_activity` task produces for `data`.

    Pure: every read goes through `lookups` (see lookups.prefetch). `now` is the processing time
    Plane's rows get; `id_seed` (the event id) makes row ids deterministic. Raises only
    InvalidActivity (bad input) or, outside recording, LookupNotLoaded (a caller bug).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    activity_type = data.get("type")
    project_raw = data.get("project_id")
    if not is_valid_uuid4(str(project_raw)):
        return _skip(f"project_id {project_raw!r} is not a UUID v4")  # Plane returns silently
    project_id = uuid.UUID(str(project_raw))
    actor_id = as_uuid(data.get("actor_id"), "actor_id")
    if actor_id is None:
        raise InvalidActivity("actor_id is required")
    issue_id = as_uuid(data.get("issue_id"), "issue_id")
    epoch = data.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int | float)):
        raise InvalidActivity(f"epoch {epoch!r} is not a number")

    project = lookups.get(Kind.PROJECT, project_id)
    lookups.get(Kind.USER, actor_id)  # asked up front so one prefetch round covers the checks
    if project is None:
        if not lookups.recording:
            return _skip(f"project {project_id} does not exist or is deleted")
        project = ProjectRef(project_id, project_id)  # keep recording what the handler needs
    ctx = Context(
        type=str(activity_type),
        issue_id=issue_id,
        actor_id=actor_id,
        project_id=project_id,
        workspace_id=project.workspace_id,
        epoch=float(epoch) if epoch is not None else None,
        payload=Payload(data.get("requested_data"), data.get("current_instance")),
        lookups=lookups,
        now=now,
    )
    ctx.touch(issue_id)
    handler = ACTIVITY_MAPPER.get(ctx.type)
    if handler is None:
        ctx.warn(f"unknown activity type {activity_type!r}: nothing to record")  # Plane: no-op
    else:
        handler(ctx)
    drafts = _writable(ctx)
    rows = [_row(ctx, draft, i, id_seed) for i, draft in enumerate(drafts)]
    return ActivityResult(
        rows=rows,
        subscribers=ctx.subscribers,
        description_bumps=ctx.bumps,
        touch_issue_ids=ctx.touched,
        warnings=ctx.warnings,
    )


def _skip(reason: str) -> ActivityResult:
    log.info("issue activity skipped: %s", reason)
    return ActivityResult(skipped=reason)


def _writable(ctx: Context) -> list[Draft]:
    """Drop rows whose foreign keys would fail at commit (Plane then lost the whole event)."""
    kept, missing_actor = [], None
    for draft in ctx.drafts:
        for name in ("verb", "field"):
            value = getattr(draft, name)
            if value is not None and len(value) > VARCHAR_255:
                raise InvalidActivity(f"{name} is longer than {VARCHAR_255} characters")
        # The FKs accept soft-deleted rows, so any existing issue or comment will do.
        if draft.issue_id is not None and ctx.get(Kind.ISSUE, draft.issue_id) is None:
            ctx.warn(
                f"issue {draft.issue_id} does not exist: its {draft.field or draft.verb} row is left out"
            )
            continue
        if draft.issue_comment_id is not None and ctx.get(Kind.COMMENT, draft.issue_comment_id) is None:
            ctx.warn(f"comment {draft.issue_comment_id} does not exist: its row is left out")
            continue
        if draft.actor_id is not None and ctx.get(Kind.USER, draft.actor_id) is None:
            missing_actor = draft.actor_id
        kept.append(draft)
    if missing_actor is not None:  # raised after the loop so that recording sees every key
        raise InvalidActivity(f"actor {missing_actor} does not exist")
    return kept


def _row(ctx: Context, draft: Draft, index: int, id_seed: str | None) -> ActivityRow:
    now = ctx.now + index * ROW_SPACING
    return ActivityRow(
        id=row_id(id_seed, index) if id_seed is not None else uuid.uuid4(),
        issue_id=draft.issue_id,
        project_id=ctx.project_id,
        workspace_id=ctx.workspace_id,
        actor_id=draft.actor_id,
        verb=draft.verb,
        field=draft.field,
        old_value=draft.old_value,
        new_value=draft.new_value,
        comment=draft.comment,
        old_identifier=draft.old_identifier,
        new_identifier=draft.new_identifier,
        issue_comment_id=draft.issue_comment_id,
        epoch=ctx.epoch,
        # The `created` row carries the issue's creation time; updated_at is still now.
        created_at=draft.created_at if draft.created_at is not None else now,
        updated_at=now,
    )


Outcome = ActivityResult | InvalidActivity


def translate_batch(
    events: Sequence[tuple[str | None, Mapping[str, Any]]], lookups: Lookups, *, now: datetime
) -> list[Outcome]:
    """Translate (event id, data) pairs in order, as consecutive Plane tasks would see them.

    Each event starts where the previous one's rows end, and sees them as the latest activity of
    its issue. A bad event yields its InvalidActivity in its place and does not stop the others.
    """
    outcomes: list[Outcome] = []
    at = now
    for event_id, data in events:
        try:
            result = translate(data, lookups, now=at, id_seed=event_id)
        except InvalidActivity as e:
            if not lookups.recording:
                log.warning("issue activity event %s is invalid: %s", event_id, e)
            outcomes.append(e)
            continue
        if not lookups.recording:
            lookups.note(result)
        at += ROW_SPACING * max(len(result.rows), 1)
        outcomes.append(result)
    return outcomes


def translate_with_db(
    conn: Connection, events: Sequence[tuple[str | None, Mapping[str, Any]]], *, now: datetime
) -> list[Outcome]:
    """Prefetch what `events` need (a few queries for the whole batch), then translate them."""
    lookups = prefetch(conn, lambda lk: translate_batch(events, lk, now=now))
    return translate_batch(events, lookups, now=now)
