"""The version back-fills on real PostgreSQL with Plane's schema: Plane's rows, once, resumable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from cronjobs import backfill_versions
from shared.cron.runtime import EXIT_OK, run_job
from shared.embedded.stack import env_for
from shared.registry import JobSpec
from shared.testing.plane_rows import insert_many, insert_one, insert_user

ISSUE_JOB = JobSpec(
    name="backfill-issue-versions",
    entrypoint="cronjobs.backfill_versions:run_issue_versions",
    schedule="0 0 1 1 *",
    description="test",
)
DESCRIPTION_JOB = JobSpec(
    name="backfill-description-versions",
    entrypoint="cronjobs.backfill_versions:run_description_versions",
    schedule="0 0 1 1 *",
    description="test",
)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ordered_uuids(n: int) -> list[uuid.UUID]:
    """n uuids in ascending order: "first admin by id" must be checkable."""
    return sorted(uuid.uuid4() for _ in range(n))


def seed(conn: Connection) -> dict[str, Any]:
    """A mix of issues; returns their ids and what Plane's sync would write for each."""
    alice, bob, carol = insert_user(conn), insert_user(conn), insert_user(conn)
    ws = insert_one(conn, "workspaces", name="ws", slug=f"ws-{uuid.uuid4().hex[:8]}", owner_id=alice)

    def project(identifier: str) -> Any:
        return insert_one(
            conn, "projects", workspace_id=ws, name=identifier, identifier=identifier, network=2
        )

    p, orphan = project("P"), project("Q")
    low, high, gone = ordered_uuids(3)
    # Admins of P: the lowest live id (`high`'s member, bob) wins over a soft-deleted lower one.
    insert_one(conn, "project_members", id=gone, project_id=p, workspace_id=ws, member_id=alice, role=20,
               deleted_at=T0)  # fmt: skip
    insert_one(conn, "project_members", id=high, project_id=p, workspace_id=ws, member_id=carol, role=20)
    insert_one(conn, "project_members", id=low, project_id=p, workspace_id=ws, member_id=bob, role=15)
    state = insert_one(conn, "states", name="Todo", project_id=p, workspace_id=ws, group="unstarted")
    n = iter(range(1, 100))

    def issue(project_id: Any = p, **values: Any) -> Any:
        values = {"name": "i", "priority": "none", "description_html": "<p>d</p>", **values}
        return insert_one(
            conn, "issues", project_id=project_id, workspace_id=ws, sequence_id=next(n), **values
        )

    def link(table: str, issue_id: Any, **values: Any) -> Any:
        return insert_one(conn, table, issue_id=issue_id, project_id=p, workspace_id=ws, **values)

    parent = issue(created_by_id=alice, name="parent")  # no links at all
    full = issue(
        created_by_id=alice, updated_by_id=bob, parent_id=parent, state_id=state, name="full",
        priority="high", start_date=date(2024, 2, 1), target_date=date(2024, 3, 1), sort_order=12.5,
        external_source="github", external_id="42", description_html="<p>full</p>",
        description_stripped="full", description_json='{"type": "doc"}', description_binary=b"\x01\x02",
    )  # fmt: skip
    label_a = insert_one(conn, "labels", name="a", project_id=p, workspace_id=ws)
    label_b = insert_one(conn, "labels", name="b", project_id=p, workspace_id=ws)
    module = insert_one(conn, "modules", name="m", project_id=p, workspace_id=ws)
    cycle, old_cycle = (
        insert_one(conn, "cycles", name=c, project_id=p, workspace_id=ws, owned_by_id=alice) for c in "cd"
    )
    link("issue_assignees", full, assignee_id=alice, created_at=at(1))
    link("issue_assignees", full, assignee_id=bob, created_at=at(2))
    link("issue_assignees", full, assignee_id=carol, deleted_at=T0)  # soft-deleted: not listed
    link("issue_labels", full, label_id=label_a)
    link("issue_labels", full, label_id=label_b)
    link("module_issues", full, module_id=module)
    link("cycle_issues", full, cycle_id=cycle)
    link("cycle_issues", full, cycle_id=old_cycle, deleted_at=T0)
    link("issue_activities", full, verb="created", created_at=at(1))
    newest = link("issue_activities", full, verb="updated", created_at=at(5))
    link("issue_activities", full, verb="updated", created_at=at(9), deleted_at=T0)  # not live
    by_admin = issue()  # no creator, no updater: P's first live admin owns it
    ownerless = issue(orphan)  # no user and no admin: Plane skips it
    deleted = issue(created_by_id=alice, deleted_at=T0)  # soft-deleted: not in Issue.objects
    draft = issue(created_by_id=bob, is_draft=True, archived_at=date(2024, 5, 1))  # Issue.objects has it
    versioned = issue(created_by_id=alice)  # already has a live version: left alone
    revived = issue(created_by_id=alice)  # only a soft-deleted version: gets a new one
    for table in ("issue_versions", "issue_description_versions"):
        for issue_id, deleted_at in ((versioned, None), (revived, T0)):
            insert_one(conn, table, issue_id=issue_id, project_id=p, workspace_id=ws, owned_by_id=alice,
                       created_at=T0, updated_at=T0, last_saved_at=T0, deleted_at=deleted_at)  # fmt: skip
    owners = {parent: alice, full: bob, by_admin: carol, draft: bob, revived: alice}
    return {
        "ws": ws, "p": p, "owners": owners, "full": full, "parent": parent, "state": state,
        "assignees": [alice, bob], "labels": {label_a, label_b}, "module": module, "cycle": cycle,
        "activity": newest, "skipped": [ownerless, deleted, versioned], "alice": alice, "bob": bob,
    }  # fmt: skip


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    with engine.begin() as conn:
        return seed(conn)


def new_versions(engine: Engine, table: str) -> dict[Any, Any]:
    """The rows the run wrote (created after the seed's T0), by issue id."""
    with engine.connect() as conn:
        rows = (
            conn.execute(text(f"SELECT * FROM {table} WHERE created_at > :t0"), {"t0": T0}).mappings().all()
        )
    by_issue = {row["issue_id"]: row for row in rows}
    assert len(by_issue) == len(rows), "an issue got two versions"
    return by_issue


def test_issue_versions_are_plane_rows(settings, engine, world, capfd):  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    code, ctx = run_job(ISSUE_JOB, settings)
    assert code == EXIT_OK and ctx is not None
    rows = new_versions(engine, "issue_versions")
    owners = world["owners"]
    assert set(rows) == set(owners)
    for issue_id, row in rows.items():
        assert row["owned_by_id"] == owners[issue_id]
        assert row["workspace_id"] == world["ws"] and row["project_id"] == world["p"]
        assert row["deleted_at"] is None and row["last_saved_at"] >= started
        assert row["properties"] == {} and row["meta"] == {}
    full = rows[world["full"]]
    assert full["created_by_id"] == world["alice"] and full["updated_by_id"] == world["bob"]
    assert (full["parent"], full["state"]) == (world["parent"], world["state"])
    assert (full["name"], full["priority"], full["sort_order"]) == ("full", "high", 12.5)
    assert (full["start_date"], full["target_date"]) == (date(2024, 2, 1), date(2024, 3, 1))
    assert (full["external_source"], full["external_id"]) == ("github", "42")
    assert full["assignees"] == world["assignees"]
    assert set(full["labels"]) == world["labels"]
    assert full["modules"] == [world["module"]] and full["cycle"] == world["cycle"]
    assert full["activity_id"] == world["activity"]
    bare = rows[world["parent"]]
    assert (bare["assignees"], bare["labels"], bare["modules"]) == ([], [], [])
    assert bare["cycle"] is None and bare["activity_id"] is None and bare["parent"] is None
    assert rows[next(i for i, o in owners.items() if o == world["bob"] and i != world["full"])]["is_draft"]
    assert ctx.counts == {"created": 5}
    err = capfd.readouterr().err.splitlines()
    assert (
        err == [line for line in err if line.startswith("backfill-issue-versions: 7/7 issues ")]
        and len(err) == 1
    )

    # Twice: nothing more.
    code, again = run_job(ISSUE_JOB, settings)
    assert code == EXIT_OK and again is not None
    assert not any(again.counts.values())
    assert len(new_versions(engine, "issue_versions")) == 5


def test_description_versions_are_plane_rows(settings, engine, world):  # type: ignore[no-untyped-def]
    _, dry = run_job(DESCRIPTION_JOB, settings, dry_run=True)
    assert dry is not None and dry.counts["created"] == 5
    assert new_versions(engine, "issue_description_versions") == {}
    code, ctx = run_job(DESCRIPTION_JOB, settings)
    assert code == EXIT_OK and ctx is not None and ctx.counts["created"] == 5
    rows = new_versions(engine, "issue_description_versions")
    assert {i: r["owned_by_id"] for i, r in rows.items()} == world["owners"]
    full = rows[world["full"]]
    assert (full["description_html"], full["description_stripped"]) == ("<p>full</p>", "full")
    assert full["description_json"] == {"type": "doc"} and bytes(full["description_binary"]) == b"\x01\x02"
    assert full["created_by_id"] == world["alice"] and full["updated_by_id"] == world["bob"]
    assert rows[world["parent"]]["description_html"] == "<p>d</p>"
    # The issue-versions table is the other job's: untouched.
    assert new_versions(engine, "issue_versions") == {}
    _, again = run_job(DESCRIPTION_JOB, settings)
    assert again is not None and again.counts["created"] == 0
    assert len(new_versions(engine, "issue_description_versions")) == 5


def job_command(name: str) -> list[str]:
    return [sys.executable, "-m", "shared.cli.main", "job", name]


@pytest.mark.parametrize("table", ["issue_versions", "issue_description_versions"])
def test_killed_run_is_finished_by_the_next_with_nothing_twice(settings, engine, table):  # type: ignore[no-untyped-def]
    n = int(backfill_versions.BATCH_SIZE * 2.5)
    with engine.begin() as conn:
        user = insert_user(conn)
        ws = insert_one(conn, "workspaces", name="ws", slug=f"ws-{uuid.uuid4().hex[:8]}", owner_id=user)
        p = insert_one(conn, "projects", workspace_id=ws, name="p", identifier="P", network=2)
        insert_many(conn, "issues", n, {"name": "'i' || g", "priority": "'none'", "sequence_id": "g",
                                        "project_id": ":p", "workspace_id": ":w", "created_by_id": ":u"},
                    {"p": p, "w": ws, "u": user})  # fmt: skip
    job = "backfill-issue-versions" if table == "issue_versions" else "backfill-description-versions"
    env = env_for(settings) | {"JOB_BATCH_PAUSE_MS": "2000"}
    run = subprocess.Popen(job_command(job), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def count() -> int:
        with engine.connect() as conn:
            return conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0

    deadline = time.monotonic() + 60
    while count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    _, err = run.communicate(timeout=30)
    written = count()
    assert 0 < written < n, err.decode()
    again = subprocess.run(job_command(job), env=env_for(settings), capture_output=True, timeout=180)
    assert again.returncode == 0, again.stderr.decode()
    assert f"{job}: {n}/{n} issues" in again.stderr.decode()
    with engine.connect() as conn:
        per_issue = conn.execute(text(f"SELECT count(*), count(DISTINCT issue_id) FROM {table}")).one()
        statuses = conn.scalars(text("SELECT status FROM plane_workers.job_runs ORDER BY id")).all()
    assert tuple(per_issue) == (n, n)
    assert statuses == ["abandoned", "success"]
