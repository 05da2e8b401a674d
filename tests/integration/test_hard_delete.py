"""hard-delete on Plane's real schema: a dead workspace goes whole, nothing else is touched.

Plane's own job dies with an IntegrityError when an individually soft-deleted issue still has
activities (DO_NOTHING FKs); here that issue is purged and its activity kept, reference nulled.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text

from cronjobs import hard_delete
from shared import registry
from shared.cron.runtime import EXIT_OK, run_job
from shared.embedded.stack import env_for
from shared.testing.plane_rows import insert_many, insert_one, insert_select, insert_user

SPEC = registry.job("hard-delete")
NOW = datetime.now(UTC)
EXPIRED = NOW - timedelta(days=61)  # the test settings keep 60 days
RECENT = NOW - timedelta(days=10)

# Where a workspace's content lives: checked for leftovers of the dead workspace.
CONTENT = (
    "projects", "project_members", "states", "labels", "cycles", "modules", "issues",
    "issue_activities", "issue_comments", "issue_links", "file_assets", "issue_labels",
    "issue_assignees", "cycle_issues", "module_issues", "workspace_members",
)  # fmt: skip
# Rows hung off every issue of a project: table -> extra column expressions.
PER_ISSUE = {
    "issue_activities": {"verb": "'created'", "actor_id": ":u"},
    "issue_comments": {"actor_id": ":u", "comment_html": "'<p>c</p>'"},
    "issue_links": {"url": "'https://example.com'"},
    "file_assets": {"asset": "'att/' || i.id", "entity_type": "'ISSUE_ATTACHMENT'"},
    "issue_labels": {"label_id": ":label"},
    "issue_assignees": {"assignee_id": ":u"},
    "cycle_issues": {"cycle_id": ":cycle"},
    "module_issues": {"module_id": ":module"},
}


@dataclass
class World:
    dead_ws: uuid.UUID
    live_ws: uuid.UUID
    live_project: uuid.UUID
    crash_issue: uuid.UUID  # expired but still has a live activity: Plane's IntegrityError case
    crash_activity: uuid.UUID
    recent_issue: uuid.UUID  # soft-deleted within retention: kept
    expired_label: uuid.UUID  # expired, still attached to a live issue


def add_project(conn: Connection, ws: uuid.UUID, owner: uuid.UUID, name: str, issues: int, deleted_at):  # type: ignore[no-untyped-def]
    """A project with members, a state, a label, a cycle, a module and `issues` issues, each with an
    activity, a comment, a link, an attachment, a label, an assignee, a cycle and a module link."""
    scoped = {"workspace_id": ws, "deleted_at": deleted_at, "created_by_id": owner}
    proj = insert_one(conn, "projects", name=name, identifier=name.upper()[:12], network=2, **scoped)
    in_project = {"project_id": proj, **scoped}
    insert_one(conn, "project_members", member_id=owner, role=20, **in_project)
    state = insert_one(conn, "states", name="Todo", group="unstarted", **in_project)
    params = {
        "p": proj, "w": ws, "d": deleted_at, "u": owner, "s": state,
        "label": insert_one(conn, "labels", name="bug", **in_project),
        "cycle": insert_one(conn, "cycles", name="c", owned_by_id=owner, **in_project),
        "module": insert_one(conn, "modules", name="m", **in_project),
    }  # fmt: skip
    base = {"project_id": ":p", "workspace_id": ":w", "deleted_at": ":d", "created_by_id": ":u"}
    issue = {"name": "'issue ' || g", "sequence_id": "g", "state_id": ":s", "priority": "'none'"}
    insert_many(conn, "issues", issues, {**base, **issue}, params)
    for table, extra in PER_ISSUE.items():
        exprs = {**base, **extra, "issue_id": "i.id"}
        insert_select(conn, table, exprs, "issues i WHERE i.project_id = :p", params)
    return proj


def build_world(conn: Connection, issues_per_project: int = 30) -> World:
    owner = insert_user(conn)
    dead_ws = insert_one(conn, "workspaces", name="dead", slug=f"dead-{uuid.uuid4().hex[:6]}",
                         owner_id=owner, deleted_at=EXPIRED)  # fmt: skip
    insert_one(conn, "workspace_members", workspace_id=dead_ws, member_id=owner, role=20, deleted_at=EXPIRED)
    add_project(conn, dead_ws, owner, "gone", issues_per_project, EXPIRED)
    # Content Plane's soft-delete cascade never reached (a lost Celery task): live rows under a
    # dead workspace. Django's collector deletes them with it, so do we (and count them).
    add_project(conn, dead_ws, owner, "orphan", 5, None)

    live_ws = insert_one(conn, "workspaces", name="live", slug=f"live-{uuid.uuid4().hex[:6]}", owner_id=owner)
    insert_one(conn, "workspace_members", workspace_id=live_ws, member_id=owner, role=20)
    live_project = add_project(conn, live_ws, owner, "kept", issues_per_project, None)

    def one_issue(seq: int, deleted_at: datetime | None) -> uuid.UUID:
        return insert_one(conn, "issues", name=f"x{seq}", sequence_id=seq, priority="none",
                          project_id=live_project, workspace_id=live_ws, deleted_at=deleted_at)  # fmt: skip

    crash_issue = one_issue(1000, EXPIRED)
    comment = insert_one(conn, "issue_comments", issue_id=crash_issue, project_id=live_project,
                         workspace_id=live_ws, actor_id=owner)  # fmt: skip
    crash_activity = insert_one(conn, "issue_activities", issue_id=crash_issue, issue_comment_id=comment,
                                project_id=live_project, workspace_id=live_ws, verb="created")  # fmt: skip
    recent_issue = one_issue(1001, RECENT)
    expired_label = insert_one(conn, "labels", name="old", project_id=live_project, workspace_id=live_ws,
                               deleted_at=EXPIRED)  # fmt: skip
    some_live_issue = conn.scalar(
        text("SELECT id FROM issues WHERE project_id = :p AND deleted_at IS NULL LIMIT 1"),
        {"p": live_project},
    )
    insert_one(conn, "issue_labels", issue_id=some_live_issue, label_id=expired_label,
               project_id=live_project, workspace_id=live_ws)  # fmt: skip
    return World(dead_ws, live_ws, live_project, crash_issue, crash_activity, recent_issue, expired_label)


def snapshot(conn: Connection, ws: uuid.UUID) -> dict[str, int]:
    rows = {
        t: conn.scalar(text(f'SELECT count(*) FROM "{t}" WHERE workspace_id = :w'), {"w": ws})
        for t in CONTENT
    }
    rows["workspaces"] = conn.scalar(text("SELECT count(*) FROM workspaces WHERE id = :w"), {"w": ws})
    return rows


@pytest.fixture
def world(engine) -> World:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return build_world(conn)


def deleted_by_table(counts: dict[str, int], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in counts.items() if k.startswith(prefix)}


def test_dead_workspace_purged_whole_and_nothing_else_touched(settings, engine, world):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        live_before = snapshot(conn, world.live_ws)

    code, dry = run_job(SPEC, settings, dry_run=True)
    assert code == EXIT_OK and dry is not None
    code, real = run_job(SPEC, settings)
    assert code == EXIT_OK and real is not None

    # The dry run predicted exactly what the real run deleted, table by table.
    assert real.counts["deleted"] == dry.counts["deleted"] > 0
    assert deleted_by_table(real.counts, "deleted.") == deleted_by_table(dry.counts, "deleted.")
    assert real.counts["live_rows_cascaded"] > 0  # the orphaned live project went with its workspace
    # Both paths ran: unreferenced batches deleted outright, referenced ones (the crash issue's
    # live activity, the orphaned project) rolled back and collected.
    assert real.counts["tables_collecting"] > 0 and real.counts["deleted_outright"] > 0, real.counts

    with engine.connect() as conn:
        assert all(n == 0 for n in snapshot(conn, world.dead_ws).values()), snapshot(conn, world.dead_ws)
        after = snapshot(conn, world.live_ws)
        # In the live workspace only the crash issue, its comment and the expired label (with its
        # one issue_labels link) went; the crash issue's activity stays, unlinked.
        gone = {"issues": 1, "issue_comments": 1, "labels": 1, "issue_labels": 1}
        expected = {table: n - gone.get(table, 0) for table, n in live_before.items()}
        assert after == expected
        activity = conn.execute(
            text("SELECT issue_id, issue_comment_id FROM issue_activities WHERE id = :a"),
            {"a": world.crash_activity},
        ).one()
        assert tuple(activity) == (None, None)
        assert conn.scalar(text("SELECT count(*) FROM issues WHERE id = :i"), {"i": world.recent_issue}) == 1

    code, again = run_job(SPEC, settings)
    assert code == EXIT_OK and again is not None and again.counts.get("deleted", 0) == 0


@pytest.mark.parametrize("workers", [1, 3])
def test_small_transactions_split_big_subtrees_with_the_same_result(  # type: ignore[no-untyped-def]
    settings, engine, world, monkeypatch, workers
):
    """With a 40-row transaction cap a project (hundreds of rows) must be purged in pieces; with
    16-row batches every table has several, which run in parallel when there are workers for it."""
    monkeypatch.setattr(hard_delete, "MAX_ROWS_PER_TX", 40)
    monkeypatch.setattr(hard_delete, "ROOT_BATCH", 16)
    settings = replace(settings, hard_delete_workers=workers)
    _, dry = run_job(SPEC, settings, dry_run=True)
    code, real = run_job(SPEC, settings)
    assert code == EXIT_OK and real is not None and dry is not None
    assert deleted_by_table(real.counts, "deleted.") == deleted_by_table(dry.counts, "deleted.")
    with engine.connect() as conn:
        assert all(n == 0 for n in snapshot(conn, world.dead_ws).values())


def job_command() -> list[str]:
    return [sys.executable, "-m", "shared.cli.main", "job", SPEC.name]


def test_two_concurrent_runs_delete_each_row_once(settings, engine, world):  # type: ignore[no-untyped-def]
    _, dry = run_job(SPEC, settings, dry_run=True)
    assert dry is not None
    env = env_for(settings)
    runs = [subprocess.Popen(job_command(), env=env, stdout=subprocess.PIPE) for _ in range(2)]
    outs = [r.communicate(timeout=180)[0].decode() for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    with engine.connect() as conn:
        totals = conn.scalars(
            text("SELECT counts->>'deleted' FROM plane_workers.job_runs WHERE NOT dry_run")
        ).all()
    assert sum(int(t or 0) for t in totals) == dry.counts["deleted"]


def test_killed_run_is_finished_by_the_next_and_a_restored_workspace_survives(settings, engine, world):  # type: ignore[no-untyped-def]
    _, dry = run_job(SPEC, settings, dry_run=True)
    assert dry is not None
    env = env_for(settings) | {"JOB_BATCH_PAUSE_MS": "300"}
    run = subprocess.Popen(job_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with engine.connect() as conn:
        total = conn.scalar(text("SELECT count(*) FROM issue_activities"))
        deadline = time.monotonic() + 60
        while (
            conn.scalar(text("SELECT count(*) FROM issue_activities")) == total
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
            conn.rollback()
    run.send_signal(signal.SIGKILL)
    run.wait()
    # An operator restores the dead workspace between the two runs: the next run must keep it,
    # and with it the live content under it; its own expired content still goes.
    with engine.begin() as conn:
        conn.execute(text("UPDATE workspaces SET deleted_at = NULL WHERE id = :w"), {"w": world.dead_ws})
    code, ctx = run_job(SPEC, settings)
    assert code == EXIT_OK and ctx is not None
    with engine.connect() as conn:
        left = snapshot(conn, world.dead_ws)
        assert left["workspaces"] == 1
        assert left["projects"] == 1  # the live "orphan" project
        live_issues = conn.scalar(
            text("SELECT count(*) FROM issues WHERE workspace_id = :w AND deleted_at IS NULL"),
            {"w": world.dead_ws},
        )
        assert live_issues == 5 and left["issues"] == 5
        statuses = conn.scalars(text("SELECT status FROM plane_workers.job_runs ORDER BY id")).all()
    assert statuses == ["dry_run", "abandoned", "success"]  # the next run marked the killed one
