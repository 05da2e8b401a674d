"""archive-close-issues: Plane's `archive_and_close_old_issues` (issue_automation_task.py), safe to re-run.

Selection is Plane's, per live, unarchived project with `archive_in`/`close_in` > 0: the
`Issue.issue_objects` rows (live, not draft, not archived, state group not triage) of the project,
`updated_at <= now - N*30 days`, in the state groups of the step, and for each of cycle, module and
intake link: no link row, or some link row to a finished cycle (`end_date < now`), a module past its
target date (`target_date < today`, Django compares a date with the UTC date of now), an intake
decision (accepted 1, rejected -1, duplicate 2). Plane joins the raw link tables, so soft-deleted
link rows count here too; its join can list an issue twice, EXISTS lists it once. "now" is the
scheduled time (`ctx.now`), so a re-run of a missed schedule computes the same cut-offs.

Writes (archive runs first, then close, as in Plane):
- archive: `archived_at = scheduled date (UTC)`; `updated_at` untouched, as Plane's `bulk_update`.
- close: `state_id = projects.default_state_id` if that state is live and of the project, else the
  project's first live `cancelled` state (Plane picks any project's); no such state: the project is
  skipped and counted. Unlike Plane's `bulk_update`, the write does what `Issue.save()` does:
  `completed_at` follows the target group (now if `completed`, else NULL) and `updated_at = now()`.
  The latter also makes "closed for N months" count from the close: otherwise the next run would
  archive an issue it closed the run before (its `updated_at` is still old), and a second run for
  the same scheduled time would not be a no-op.

Batches of BATCH_SIZE issues per transaction, keyset-ordered by id: one statement locks the rows
that still match the whole predicate (`FOR UPDATE SKIP LOCKED`: rows a user is editing are left for
the next run, never waited for or clobbered) and updates them. Changed rows no longer match, so a
second run, concurrent or not, changes nothing.

Events (at least once): one `plane.issue_activity.v1` per changed issue to `issue-activity`, key the
issue id, `data` = Plane's `issue_activity.delay()` kwargs; the actor is the project's creator, or
the workspace owner where that is NULL (Plane sends "None" there and its task fails). A batch's
events are acknowledged by the broker *before* the batch commits, so a crash in between rolls the
batch back and the next run emits them again. Event ids are uuid5(issue id, action, scheduled
date) and the payload comes from the same inputs (epoch = scheduled time): a retry for the same
date is the same event, dropped by the consumer's event-id dedupe. The price: events of a batch
whose commit then failed describe a change that did not happen until a later run makes it (under a
new id if that run is for another date). A transactional outbox would avoid that, at the cost of
our own table and a relay for one nightly job.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import TextClause, text

from shared.cron.runtime import JobContext
from shared.events import Event, new_event
from shared.events.producer import EventProducer

log = logging.getLogger(__name__)

BATCH_SIZE = 500
TOPIC = "issue-activity"
EVENT_TYPE = "plane.issue_activity.v1"
# Fixed forever: event ids of a retried batch must equal the first attempt's.
EVENT_ID_NAMESPACE = uuid.UUID("6c4d2d0e-5a52-4f43-9a0b-1f6a3c7f2e91")
ARCHIVE_GROUPS = ["completed", "cancelled"]
CLOSE_GROUPS = ["backlog", "unstarted", "started"]
NO_ID = uuid.UUID(int=0)

PROJECTS = text(
    """
    SELECT p.id, p.archive_in, p.close_in,
           COALESCE(p.created_by_id, w.owner_id) AS actor_id,
           target.id AS close_to, target."group" AS close_to_group
    FROM projects p
    JOIN workspaces w ON w.id = p.workspace_id
    LEFT JOIN LATERAL (
        SELECT s.id, s."group" FROM states s
        WHERE s.project_id = p.id AND s.deleted_at IS NULL
          AND (s.id = p.default_state_id OR s."group" = 'cancelled')
        -- the configured state first, else the first cancelled one (State's Meta.ordering: sequence)
        ORDER BY (s.id = p.default_state_id) IS TRUE DESC, s.sequence, s.created_at, s.id
        LIMIT 1
    ) target ON true
    WHERE p.deleted_at IS NULL AND p.archived_at IS NULL AND (p.archive_in > 0 OR p.close_in > 0)
    ORDER BY p.id
    """
)

# Issue.issue_objects of one project plus the automation's conditions. Expects :project, :cutoff,
# :groups, :now (timestamptz) and :today (date).
MATCHES = """
    FROM issues i
    JOIN states s ON s.id = i.state_id
    JOIN projects p ON p.id = i.project_id
    WHERE i.project_id = :project
      AND i.deleted_at IS NULL AND i.archived_at IS NULL AND NOT i.is_draft AND p.archived_at IS NULL
      AND s."group" = ANY(:groups)
      AND i.updated_at <= :cutoff
      AND (NOT EXISTS (SELECT 1 FROM cycle_issues ci WHERE ci.issue_id = i.id)
           OR EXISTS (SELECT 1 FROM cycle_issues ci JOIN cycles c ON c.id = ci.cycle_id
                      WHERE ci.issue_id = i.id AND c.end_date < :now))
      AND (NOT EXISTS (SELECT 1 FROM module_issues mi WHERE mi.issue_id = i.id)
           OR EXISTS (SELECT 1 FROM module_issues mi JOIN modules m ON m.id = mi.module_id
                      WHERE mi.issue_id = i.id AND m.target_date < :today))
      AND (NOT EXISTS (SELECT 1 FROM intake_issues ii WHERE ii.issue_id = i.id)
           OR EXISTS (SELECT 1 FROM intake_issues ii WHERE ii.issue_id = i.id AND ii.status IN (1, -1, 2)))
"""
NOT_IN_TARGET = "AND i.state_id <> :target"

COUNT_MATCHES = text(f"SELECT count(*) {MATCHES}")
COUNT_CLOSE_TO = text(f"SELECT count(*) {MATCHES} {NOT_IN_TARGET}")


def _locked_batch(extra: str = "") -> str:
    return (
        f"SELECT i.id {MATCHES} {extra} AND i.id > :after ORDER BY i.id LIMIT :n FOR UPDATE OF i SKIP LOCKED"
    )


ARCHIVE_BATCH = text(
    f"""
    WITH batch AS ({_locked_batch()})
    UPDATE issues u SET archived_at = :today FROM batch WHERE u.id = batch.id
    RETURNING u.id
    """
)
CLOSE_BATCH = text(
    f"""
    WITH batch AS ({_locked_batch(NOT_IN_TARGET)})
    UPDATE issues u
    SET state_id = :target,
        completed_at = CASE WHEN :target_group = 'completed' THEN now() END,
        updated_at = now()
    FROM batch WHERE u.id = batch.id
    RETURNING u.id
    """
)


@dataclass(frozen=True)
class Project:
    id: uuid.UUID
    archive_in: int
    close_in: int
    actor_id: uuid.UUID
    close_to: uuid.UUID | None
    close_to_group: str | None


def run(ctx: JobContext) -> None:
    now = ctx.now.astimezone(UTC)
    today = now.date()
    with ctx.engine.connect() as conn:
        projects = [Project(*row) for row in conn.execute(PROJECTS)]
    # A dry run records the keys and numbers a real run would: one event per changed issue.
    for action in ("archived", "closed", "events", "projects_skipped_no_cancelled_state"):
        ctx.count(action, 0)  # present in the run record even when zero
    if ctx.dry_run:
        _count_only(ctx, projects, now, today)
        return
    producer = EventProducer(ctx.settings)
    try:
        for project in projects:
            if project.archive_in > 0:
                _archive(ctx, producer, project, now, today)
        for project in projects:
            if project.close_in > 0:
                _close(ctx, producer, project, now, today)
    finally:
        producer.close()


def _params(project: Project, months: int, groups: list[str], now: datetime, today: date) -> dict[str, Any]:
    return {
        "project": project.id,
        "cutoff": now - timedelta(days=months * 30),
        "groups": groups,
        "now": now,
        "today": today,
    }


def _count_only(ctx: JobContext, projects: Sequence[Project], now: datetime, today: date) -> None:
    with ctx.engine.connect() as conn:
        for p in projects:
            if p.archive_in > 0:
                params = _params(p, p.archive_in, ARCHIVE_GROUPS, now, today)
                archived = conn.scalar(COUNT_MATCHES, params) or 0
                ctx.count("archived", archived)
                ctx.count("events", archived)
            if p.close_in > 0:
                params = _params(p, p.close_in, CLOSE_GROUPS, now, today)
                if p.close_to is None:
                    if conn.scalar(COUNT_MATCHES, params):
                        ctx.count("projects_skipped_no_cancelled_state")
                else:
                    closed = conn.scalar(COUNT_CLOSE_TO, {**params, "target": p.close_to}) or 0
                    ctx.count("closed", closed)
                    ctx.count("events", closed)


def _archive(ctx: JobContext, producer: EventProducer, p: Project, now: datetime, today: date) -> None:
    requested = json.dumps({"archived_at": str(today), "automation": True})
    current = json.dumps({"archived_at": None})

    def data(issue_id: uuid.UUID) -> dict[str, Any]:
        return _activity(p, issue_id, now, requested_data=requested, current_instance=current)

    params = _params(p, p.archive_in, ARCHIVE_GROUPS, now, today)
    _in_batches(ctx, producer, ARCHIVE_BATCH, params, "archive", "archived", today, data)


def _close(ctx: JobContext, producer: EventProducer, p: Project, now: datetime, today: date) -> None:
    params = _params(p, p.close_in, CLOSE_GROUPS, now, today)
    if p.close_to is None:
        with ctx.engine.connect() as conn:
            stale = conn.scalar(COUNT_MATCHES, params)
        if stale:
            log.warning(
                "project %s has no auto-close state and no cancelled state: %d issue(s) left open",
                p.id,
                stale,
            )
            ctx.count("projects_skipped_no_cancelled_state")
        return
    requested = json.dumps({"closed_to": str(p.close_to)})

    def data(issue_id: uuid.UUID) -> dict[str, Any]:
        return _activity(p, issue_id, now, requested_data=requested, current_instance=None)

    params |= {"target": p.close_to, "target_group": p.close_to_group}
    _in_batches(ctx, producer, CLOSE_BATCH, params, "close", "closed", today, data)


def _activity(
    p: Project, issue_id: uuid.UUID, now: datetime, *, requested_data: str, current_instance: str | None
) -> dict[str, Any]:
    """The kwargs of Plane's `issue_activity.delay()` in issue_automation_task.py, UUIDs as strings."""
    return {
        "type": "issue.activity.updated",
        "requested_data": requested_data,
        "actor_id": str(p.actor_id),
        "issue_id": str(issue_id),
        "project_id": str(p.id),
        "current_instance": current_instance,
        "subscriber": False,
        "epoch": int(now.timestamp()),
        "notification": True,
    }


def event_id(issue_id: uuid.UUID | str, action: str, scheduled: date) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{issue_id}:{action}:{scheduled.isoformat()}"))


def _in_batches(
    ctx: JobContext,
    producer: EventProducer,
    statement: TextClause,
    params: dict[str, Any],
    action: str,
    counter: str,
    today: date,
    data: Callable[[uuid.UUID], dict[str, Any]],
) -> None:
    after: uuid.UUID = NO_ID
    while True:
        with ctx.engine.begin() as conn:
            ids = sorted(conn.scalars(statement, {**params, "after": after, "n": BATCH_SIZE}))
            if ids:
                events: list[tuple[str | None, Event]] = [
                    (str(i), new_event(EVENT_TYPE, data(i), event_id=event_id(i, action, today))) for i in ids
                ]
                # Acknowledged before the commit: a crash in between re-sends, never loses.
                producer.send_many(TOPIC, events)
        if not ids:
            return
        ctx.count(counter, len(ids))
        ctx.count("events", len(ids))
        ctx.batch_done()
        if len(ids) < BATCH_SIZE:  # SKIP LOCKED scanned every remaining match
            return
        after = max(ids)
