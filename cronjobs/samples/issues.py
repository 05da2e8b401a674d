"""Samples of the jobs that act on issues: hard-delete and archive-close-issues."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, text

from cronjobs import archive_close_issues as automation
from cronjobs import hard_delete as purge
from cronjobs.samples._seed import PAUSE_ENV, ids, rows_to_act_on, scheduled_time, scope
from shared.conformance import JobSamples, SampleWorld
from shared.events import parse_event
from shared.testing.plane_rows import insert_many, insert_one, insert_select
from shared.testing.topics import read_topic

KEPT = 50
ISSUE = {"name": "'issue ' || g", "sequence_id": "g + :seq", "priority": "'none'", "project_id": ":p",
         "workspace_id": ":w", "created_by_id": ":u"}  # fmt: skip
GROUPS = ("completed", "cancelled", "started")
ON_EVERY_ISSUE = {"project_id": ":p", "workspace_id": ":w", "actor_id": ":u"}


def add_issues(conn: Connection, n: int, params: dict[str, Any], **columns: str) -> list[str]:
    """Insert `n` issues (extra column expressions over `g`) and return their ids."""
    before = set(ids(conn, "SELECT id FROM issues"))
    seq = conn.scalar(text("SELECT count(*) FROM issues"))
    insert_many(conn, "issues", n, {**ISSUE, **columns}, {**params, "seq": seq})
    return sorted(set(ids(conn, "SELECT id FROM issues")) - before)


def hard_delete(world: SampleWorld) -> JobSamples:
    """Issues soft-deleted past HARD_DELETE_AFTER_DAYS go, and their comments with them (CASCADE);
    their activities stay with the reference nulled (DO_NOTHING: Plane's own job dies there). Live
    issues, one soft-deleted within retention, and the comments and activities of both stay.

    The comments make the issues' batches take the collecting path (one at a time, each committed).
    """
    at = scheduled_time()
    days = world.settings.hard_delete_after_days
    with world.engine.begin() as conn:
        s = scope(conn)
        params = {**s.params, "expired": at - timedelta(days=days + 1), "recent": at - timedelta(days=1)}
        add_issues(conn, rows_to_act_on(world, purge.FIRST_BATCH), params, deleted_at=":expired")
        kept = add_issues(conn, KEPT, params) + add_issues(conn, 1, params, deleted_at=":recent")
        insert_select(conn, "issue_comments", {**ON_EVERY_ISSUE, "issue_id": "i.id"}, "issues i", params)
        insert_select(conn, "issue_activities", {**ON_EVERY_ISSUE, "issue_id": "i.id", "verb": "'created'"},
                      "issues i", params)  # fmt: skip
        expected = {
            "issues": sorted(kept),
            "comments": ids(conn, "SELECT id FROM issue_comments WHERE issue_id::text = ANY(:k)", k=kept),
            "activities": _activities(conn, keep=set(kept)),
        }

    def effects() -> dict[str, list[Any]]:
        with world.engine.connect() as conn:
            return {
                "issues": ids(conn, "SELECT id FROM issues"),
                "comments": ids(conn, "SELECT id FROM issue_comments"),
                "activities": _activities(conn),
            }

    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV, scheduled_for=at)


def _activities(conn: Connection, keep: set[str] | None = None) -> list[tuple[str, str]]:
    """(activity, its issue or "" once nulled); `keep`: the issues whose references survive."""
    rows = conn.execute(text("SELECT id, issue_id FROM issue_activities")).all()
    return sorted(
        (str(a), str(i) if i is not None and (keep is None or str(i) in keep) else "") for a, i in rows
    )


def archive_close_issues(world: SampleWorld) -> JobSamples:
    """A project archiving after 1 month and closing after 2 (into its default cancelled state):
    old completed issues are archived, old started ones closed, one `issue_activity` event each.
    Recent issues, started ones past only the archive cut-off, drafts, soft-deleted issues and a
    project without automation stay as they are. Events are read deduplicated by event id (sent at
    least once: a batch killed between send and commit is sent again, under the same id)."""
    at = scheduled_time()
    today = at.date()
    with world.engine.begin() as conn:
        s = scope(conn, archive_in=1, close_in=2)
        params = {**s.params, "at": at}
        in_project = {"project_id": s.project, "workspace_id": s.workspace}
        state = {g: insert_one(conn, "states", name=g, group=g, **in_project) for g in GROUPS}
        set_default = text("UPDATE projects SET default_state_id = :s WHERE id = :p")
        conn.execute(set_default, {**params, "s": state["cancelled"]})

        def issues(n: int, group: str, days: int, **columns: str) -> list[str]:
            aged = "CAST(:at AS timestamptz) - interval '1 day' * :days"
            return add_issues(conn, n, {**params, "days": days, "st": state[group]},
                              state_id=":st", updated_at=aged, created_at=aged, **columns)  # fmt: skip

        archived = issues(rows_to_act_on(world, automation.BATCH_SIZE), "completed", 100)
        closed = issues(KEPT * 2, "started", 100)
        issues(KEPT, "completed", 10)  # too recent
        issues(KEPT, "started", 45)  # past the archive cut-off, not the close one
        issues(10, "completed", 100, is_draft="true")
        issues(10, "completed", 100, deleted_at=":at")
        _without_automation(conn)
        before = _issues(conn)
    cancelled, to_archive, to_close = str(state["cancelled"]), set(archived), set(closed)
    expected_issues = sorted((i, i in to_archive, cancelled if i in to_close else st) for i, _, st in before)
    epoch = int(at.timestamp())
    archive_data = json.dumps({"archived_at": str(today), "automation": True})
    close_data = json.dumps({"closed_to": cancelled})
    expected_events = sorted(
        [(automation.event_id(i, "archive", today), i, archive_data, epoch) for i in archived]
        + [(automation.event_id(i, "close", today), i, close_data, epoch) for i in closed]
    )

    def effects() -> dict[str, list[Any]]:
        with world.engine.connect() as conn:
            seen = _issues(conn)
        events = set()
        for message in read_topic(world.settings, world.settings.topic(automation.TOPIC)):
            event = parse_event(message.value(), max_bytes=world.settings.event_max_bytes)
            key = (message.key() or b"").decode()
            events.add((event.id, key, event.data["requested_data"], event.data["epoch"]))
        return {"issues": seen, "events": sorted(events)}

    return JobSamples(
        effects=effects,
        expected={"issues": expected_issues, "events": expected_events},
        # Its effects take ~0.3 s to read (the topic to its end, then a quiet): batches further apart
        # than that, or a kill seen half-way would land after the last one.
        env={"JOB_BATCH_PAUSE_MS": "500"},
        scheduled_for=at,
    )


def _without_automation(conn: Connection) -> None:
    s = scope(conn)  # archive_in = close_in = 0
    state = insert_one(conn, "states", name="done", group="completed", project_id=s.project,
                       workspace_id=s.workspace)  # fmt: skip
    old = "now() - interval '200 days'"
    add_issues(conn, 5, {**s.params, "st": state}, state_id=":st", updated_at=old, created_at=old)


def _issues(conn: Connection) -> list[tuple[str, bool, str]]:
    """(issue, archived, state) of every issue."""
    rows = conn.execute(text("SELECT id, archived_at IS NOT NULL, state_id FROM issues")).all()
    return sorted((str(i), bool(a), str(st)) for i, a, st in rows)
