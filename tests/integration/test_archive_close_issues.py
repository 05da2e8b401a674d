"""archive-close-issues on Plane's real schema and a real broker.

One workspace holds every case Plane's selection distinguishes (state groups, ages around the
cut-offs, active/finished cycles and modules, soft-deleted links, intake decisions, drafts,
deleted/archived issues, archived/deleted projects, a missing auto-close state). Exactly the
expected issues change, only in the expected columns, with one Plane-shaped event each.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import Connection, Engine, text

from cronjobs import archive_close_issues as job
from shared import registry
from shared.cron.runtime import EXIT_FAILED, EXIT_OK, JobContext, run_job
from shared.events import parse_event
from shared.events.producer import EventProducer
from shared.kafka.config import client_config
from shared.settings import Settings
from shared.testing.plane_rows import insert_many, insert_one, insert_user

SPEC = registry.job("archive-close-issues")
# The scheduled time: whole seconds, so the event epoch is exact.
NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
QUIET_S = 1.5
OLD = 100  # days: past both cut-offs (archive 1 month = 30 days, close 2 months = 60 days)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class World:
    archived: set[uuid.UUID] = field(default_factory=set)  # expected to be archived
    closed: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # issue -> expected state
    completed_target: set[uuid.UUID] = field(default_factory=set)  # closed into a 'completed' state
    actor: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # project -> created_by
    project_of: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # issue -> project


class Seeder:
    """Plane rows with the columns that matter named; the rest filled by plane_rows."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.owner = self.user()
        slug = f"acme-{uuid.uuid4().hex[:6]}"
        self.ws = insert_one(conn, "workspaces", name="Acme", slug=slug, owner_id=self.owner)
        self.seq = 0
        self.world = World()

    def user(self) -> uuid.UUID:
        return insert_user(self.conn)

    def row(self, table: str, project: uuid.UUID, **values: Any) -> uuid.UUID:
        scoped = {"project_id": project, "workspace_id": self.ws, "created_by_id": self.owner}
        return insert_one(self.conn, table, **scoped, **values)

    def project(self, ident: str, **values: Any) -> uuid.UUID:
        creator = self.user()  # the events' actor: not the workspace owner, to tell them apart
        project = insert_one(
            self.conn, "projects", name=ident, identifier=ident, network=2, workspace_id=self.ws,
            created_by_id=creator, **values,
        )  # fmt: skip
        self.world.actor[project] = creator
        return project

    def state(self, project: uuid.UUID, group: str, name: str | None = None, **values: Any) -> uuid.UUID:
        return self.row("states", project, name=name or group, group=group, **values)

    def issue(self, project: uuid.UUID, state: uuid.UUID | None, age_days: float, **values: Any) -> uuid.UUID:
        self.seq += 1
        issue = self.row(
            "issues", project, name=f"issue {self.seq}", sequence_id=self.seq, priority="none",
            state_id=state, created_at=ago(age_days + 1), updated_at=ago(age_days), **values,
        )  # fmt: skip
        self.world.project_of[issue] = project
        return issue

    def cycle(
        self, project: uuid.UUID, end: datetime | None, *issues: uuid.UUID, deleted: bool = False
    ) -> None:
        cycle = self.row("cycles", project, name=uuid.uuid4().hex[:8], owned_by_id=self.owner, end_date=end)
        for issue in issues:
            self.row(
                "cycle_issues",
                project,
                cycle_id=cycle,
                issue_id=issue,
                deleted_at=ago(3) if deleted else None,
            )

    def module(self, project: uuid.UUID, target: date | None, *issues: uuid.UUID) -> None:
        module = self.row("modules", project, name=uuid.uuid4().hex[:8], target_date=target, status="backlog")
        for issue in issues:
            self.row("module_issues", project, module_id=module, issue_id=issue)

    def intake(self, project: uuid.UUID, issue: uuid.UUID, status: int) -> None:
        intake = self.row("intakes", project, name=uuid.uuid4().hex[:8])
        self.row("intake_issues", project, intake_id=intake, issue_id=issue, status=status)

    def set_default_state(self, project: uuid.UUID, state: uuid.UUID) -> None:
        update = text("UPDATE projects SET default_state_id = :s WHERE id = :p")
        self.conn.execute(update, {"s": state, "p": project})


def build_world(conn: Connection) -> World:
    s = Seeder(conn)
    w = s.world

    # An unrelated project created first, whose cancelled state sorts first: Plane's unscoped
    # fallback `State.objects.filter(group="cancelled").first()` would pick it for other projects.
    other = s.project("OTHER")
    foreign_cancelled = s.state(other, "cancelled", "Foreign cancelled", sequence=0)
    s.issue(other, s.state(other, "completed"), OLD)  # archive_in = 0: never touched
    s.issue(other, s.state(other, "started"), OLD)

    # The main project: archive after 1 month, close after 2, into its auto-close state.
    auto = s.project("AUTO", archive_in=1, close_in=2)
    backlog, todo, doing = (s.state(auto, g) for g in ("backlog", "unstarted", "started"))
    done, cancelled = s.state(auto, "completed"), s.state(auto, "cancelled", sequence=50)
    bot_closed = s.state(auto, "cancelled", "Closed by bot", sequence=60)
    triage = s.state(auto, "triage", is_triage=True)
    s.set_default_state(auto, bot_closed)

    def archived(issue: uuid.UUID) -> uuid.UUID:
        w.archived.add(issue)
        return issue

    archived(s.issue(auto, done, OLD))
    archived(s.issue(auto, cancelled, OLD))
    archived(s.issue(auto, done, 30))  # updated_at == cut-off: `__lte`
    s.issue(auto, done, 29)  # too recent
    s.cycle(auto, ago(-5), s.issue(auto, done, OLD))  # cycle still running
    s.cycle(auto, ago(1), archived(s.issue(auto, done, OLD)))  # cycle finished
    s.cycle(auto, None, s.issue(auto, done, OLD))  # cycle without end date
    # Plane joins the raw link table: a soft-deleted link to a running cycle still blocks ...
    s.cycle(auto, ago(-5), s.issue(auto, done, OLD), deleted=True)
    # ... and any link row to a finished cycle lets it through, even next to a running one.
    moved = archived(s.issue(auto, done, OLD))
    s.cycle(auto, ago(-5), moved)
    s.cycle(auto, ago(2), moved, deleted=True)
    s.module(auto, TODAY + timedelta(days=10), s.issue(auto, done, OLD))  # module still open
    s.module(auto, TODAY, s.issue(auto, done, OLD))  # due today: not past
    s.module(auto, TODAY - timedelta(days=1), archived(s.issue(auto, done, OLD)))
    two_modules = archived(s.issue(auto, done, OLD))  # Plane's join lists it twice; archived once
    s.module(auto, TODAY - timedelta(days=3), two_modules)
    s.module(auto, TODAY - timedelta(days=4), two_modules)
    s.intake(auto, s.issue(auto, done, OLD), -2)  # pending
    s.intake(auto, archived(s.issue(auto, done, OLD)), 1)  # accepted
    s.issue(auto, done, OLD, is_draft=True)
    s.issue(auto, done, OLD, deleted_at=ago(5))
    s.issue(auto, done, OLD, archived_at=TODAY - timedelta(days=40))
    s.issue(auto, triage, OLD)
    s.issue(auto, None, OLD)

    def closed(issue: uuid.UUID, to: uuid.UUID = bot_closed) -> uuid.UUID:
        w.closed[issue] = to
        return issue

    closed(s.issue(auto, backlog, OLD))
    closed(s.issue(auto, todo, OLD))
    closed(s.issue(auto, doing, OLD, completed_at=ago(OLD)))  # stale completed_at: cleared
    s.cycle(auto, ago(1), closed(s.issue(auto, doing, OLD)))
    s.cycle(auto, ago(-5), s.issue(auto, doing, OLD))
    s.issue(auto, doing, 45)  # past the archive cut-off, not the close one
    s.intake(auto, closed(s.issue(auto, doing, OLD)), -1)  # rejected
    s.intake(auto, s.issue(auto, doing, OLD), 0)  # snoozed
    s.issue(auto, doing, OLD, is_draft=True)
    s.issue(auto, backlog, OLD, deleted_at=ago(5))

    # No auto-close state: the project's own first live cancelled state, not OTHER's.
    nodef = s.project("NODEF", close_in=1)
    s.state(nodef, "cancelled", "Deleted cancelled", sequence=1, deleted_at=ago(3))
    wont_fix = s.state(nodef, "cancelled", "Won't fix", sequence=20)
    s.state(nodef, "cancelled", "Duplicate", sequence=30)
    nodef_doing = s.state(nodef, "started")
    closed(s.issue(nodef, nodef_doing, OLD), wont_fix)
    s.issue(nodef, nodef_doing, 10)

    # Auto-close into a 'completed' state: completed_at is set, as Issue.save() does.
    complete = s.project("COMPLETE", close_in=1)
    shipped = s.state(complete, "completed", "Shipped")
    s.set_default_state(complete, shipped)
    w.completed_target.add(closed(s.issue(complete, s.state(complete, "unstarted"), OLD), shipped))

    # No cancelled state of its own (a deleted one; the default points at another project's):
    # skipped and counted, its issues untouched.
    nocancel = s.project("NOCANCEL", close_in=1, default_state_id=foreign_cancelled)
    s.state(nocancel, "cancelled", sequence=1, deleted_at=ago(3))
    s.issue(nocancel, s.state(nocancel, "started"), OLD)

    # Archived and deleted projects: nothing happens in them.
    for ident, values in (("ARCH", {"archived_at": ago(3)}), ("GONE", {"deleted_at": ago(3)})):
        p = s.project(ident, archive_in=1, close_in=1, **values)
        cancel = s.state(p, "cancelled")
        s.set_default_state(p, cancel)
        s.issue(p, s.state(p, "completed"), OLD)
        s.issue(p, s.state(p, "started"), OLD)
    return w


@pytest.fixture
def activity_topic(settings: Settings) -> str:
    """The physical `issue-activity` topic, made with the others because the job's registry entry
    declares it (`produces`)."""
    name = settings.topic(job.TOPIC)
    assert name in AdminClient(client_config(settings)).list_topics(timeout=10).topics
    return name


def issues(engine: Engine) -> dict[uuid.UUID, dict[str, Any]]:
    with engine.connect() as conn:
        return {row["id"]: dict(row) for row in conn.execute(text("SELECT * FROM issues")).mappings()}


def messages(settings: Settings, topic: str, expected: int) -> list[tuple[str, dict[str, Any]]]:
    """Every message on the topic as (key, envelope), each parsed against its JSON Schema.

    Reads until `expected` arrived and then QUIET_S passed without more (tansu's watermarks count
    batches, not records, so they cannot say where the end is)."""
    consumer = Consumer(
        client_config(settings) | {"group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        last = time.monotonic()
        while time.monotonic() < deadline and (len(out) < expected or time.monotonic() - last < QUIET_S):
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            last = time.monotonic()
            event = parse_event(msg.value(), max_bytes=settings.event_max_bytes)  # schema-validated
            out.append((msg.key().decode(), {"id": event.id, "type": event.type, "data": event.data}))
        assert len(out) == expected
        return out
    finally:
        consumer.close()


def expected_data(w: World, issue: uuid.UUID) -> dict[str, Any]:
    project = w.project_of[issue]
    common = {
        "type": "issue.activity.updated",
        "actor_id": str(w.actor[project]),
        "issue_id": str(issue),
        "project_id": str(project),
        "subscriber": False,
        "epoch": int(NOW.timestamp()),
        "notification": True,
    }
    if issue in w.archived:
        return common | {
            "requested_data": json.dumps({"archived_at": TODAY.isoformat(), "automation": True}),
            "current_instance": json.dumps({"archived_at": None}),
        }
    return common | {
        "requested_data": json.dumps({"closed_to": str(w.closed[issue])}),
        "current_instance": None,
    }


def test_archives_and_closes_exactly_plane_selection_once(settings, engine, activity_topic):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        w = build_world(conn)
    before = issues(engine)

    code, dry = run_job(SPEC, settings, dry_run=True, scheduled_for=NOW)
    assert code == EXIT_OK and dry is not None
    assert messages(settings, activity_topic, expected=0) == []
    assert issues(engine) == before
    started = datetime.now(UTC)
    code, real = run_job(SPEC, settings, scheduled_for=NOW)
    assert code == EXIT_OK and real is not None

    expected_counts = {
        "archived": len(w.archived),
        "closed": len(w.closed),
        "projects_skipped_no_cancelled_state": 1,
    }
    assert len(w.archived) == 8 and len(w.closed) == 7
    assert {k: real.counts[k] for k in expected_counts} == expected_counts
    assert real.counts["events"] == len(w.archived) + len(w.closed)
    assert dry.counts == real.counts  # a dry run records what the real run then did

    after = issues(engine)
    assert after.keys() == before.keys()
    for issue, row in after.items():
        want = dict(before[issue])
        if issue in w.archived:
            want["archived_at"] = TODAY  # updated_at untouched, as Plane's bulk_update
        elif issue in w.closed:
            want["state_id"] = w.closed[issue]
            assert row["updated_at"] >= started  # as Issue.save(): "closed for N months" starts now
            want["updated_at"] = row["updated_at"]
            if issue in w.completed_target:
                assert row["completed_at"] is not None and row["completed_at"] >= started
                want["completed_at"] = row["completed_at"]
            else:
                want["completed_at"] = None
        assert row == want, issue

    got = messages(settings, activity_topic, expected=len(w.archived) + len(w.closed))
    assert sorted(key for key, _ in got) == sorted(str(i) for i in w.archived | w.closed.keys())
    for key, event in got:
        issue = uuid.UUID(key)
        action = "archive" if issue in w.archived else "close"
        assert event["type"] == "plane.issue_activity.v1"
        assert event["id"] == job.event_id(issue, action, TODAY)
        assert event["data"] == expected_data(w, issue)

    # The same scheduled time again: nothing matches any more (closed issues are not archived
    # on the re-run), no event is produced.
    code, again = run_job(SPEC, settings, scheduled_for=NOW)
    assert code == EXIT_OK and again is not None
    assert (again.counts["archived"], again.counts["closed"], again.counts["events"]) == (0, 0, 0)
    assert issues(engine) == after
    messages(settings, activity_topic, expected=len(got))


def seed_many(engine: Engine, n: int) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """One project with `n` archivable and `n` closable issues."""
    with engine.begin() as conn:
        s = Seeder(conn)
        project = s.project("BULK", archive_in=1, close_in=1)
        done, doing = s.state(project, "completed"), s.state(project, "started")
        s.state(project, "cancelled")
        params = {"p": project, "w": s.ws, "old": ago(OLD), "done": done, "doing": doing, "half": n}
        base = {
            "project_id": ":p", "workspace_id": ":w", "priority": "'none'", "name": "'bulk ' || g",
            "sequence_id": "g", "updated_at": ":old", "created_at": ":old",
            "state_id": "CASE WHEN g <= :half THEN CAST(:done AS uuid) ELSE CAST(:doing AS uuid) END",
        }  # fmt: skip
        insert_many(conn, "issues", 2 * n, base, params)
        rows = conn.execute(text("SELECT id, state_id FROM issues WHERE project_id = :p"), params).all()
    return {i for i, st in rows if st == done}, {i for i, st in rows if st == doing}


def test_two_concurrent_runs_change_each_issue_once(settings, engine, activity_topic, monkeypatch):  # type: ignore[no-untyped-def]
    """Both runs bypass the job lock (run() called directly): SKIP LOCKED plus the re-checked
    predicate alone must keep them from touching an issue twice."""
    to_archive, to_close = seed_many(engine, 150)
    monkeypatch.setattr(job, "BATCH_SIZE", 7)
    barrier = threading.Barrier(2)
    contexts = [
        JobContext(name=SPEC.name, settings=settings, engine=engine, dry_run=False, now=NOW) for _ in range(2)
    ]
    errors: list[BaseException] = []

    def go(ctx: JobContext) -> None:
        try:
            barrier.wait()
            job.run(ctx)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(ctx,)) for ctx in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert sum(c.counts["archived"] for c in contexts) == len(to_archive)
    assert sum(c.counts["closed"] for c in contexts) == len(to_close)
    assert all(c.counts["events"] > 0 for c in contexts), "the runs did not overlap"
    got = messages(settings, activity_topic, expected=len(to_archive) + len(to_close))
    assert sorted(k for k, _ in got) == sorted(str(i) for i in to_archive | to_close)  # once each
    with engine.connect() as conn:
        archived = text("SELECT count(*) FROM issues WHERE archived_at = :d")
        assert conn.scalar(archived, {"d": TODAY}) == len(to_archive)
        closed = text(
            "SELECT count(*) FROM issues i JOIN states s ON s.id = i.state_id WHERE s.group = 'cancelled'"
        )
        assert conn.scalar(closed) == len(to_close)


def test_crash_after_produce_before_commit_resends_same_events(settings, engine, activity_topic, monkeypatch):  # type: ignore[no-untyped-def]
    """The process dies after the broker acknowledged a batch's events but before the commit: the
    batch is rolled back, and the next run changes those issues and re-emits identical events."""
    to_archive, to_close = seed_many(engine, 10)
    monkeypatch.setattr(job, "BATCH_SIZE", 4)
    real_send = EventProducer.send_many
    calls = 0

    def send_then_die(self: EventProducer, topic: str, events: Any) -> int:
        nonlocal calls
        calls += 1
        sent = real_send(self, topic, events)
        if calls == 2:
            raise SystemExit("killed between the broker's ack and the commit")
        return sent

    monkeypatch.setattr(EventProducer, "send_many", send_then_die)
    with pytest.raises(SystemExit):
        run_job(SPEC, settings, scheduled_for=NOW)
    with engine.connect() as conn:
        assert (
            conn.scalar(text("SELECT count(*) FROM issues WHERE archived_at IS NOT NULL")) == 4
        )  # batch 1 only
    first = messages(settings, activity_topic, expected=8)

    monkeypatch.setattr(EventProducer, "send_many", real_send)
    code, ctx = run_job(SPEC, settings, scheduled_for=NOW)
    assert code == EXIT_OK and ctx is not None
    assert ctx.counts["archived"] == len(to_archive) - 4 and ctx.counts["closed"] == len(to_close)
    got = messages(settings, activity_topic, expected=8 + ctx.counts["events"])
    by_id: dict[str, set[str]] = {}
    for _, event in got:
        by_id.setdefault(event["id"], set()).add(json.dumps(event, sort_keys=True))
    # The rolled-back batch's 4 events were sent twice, byte-for-byte the same (dedupe by id).
    assert len(by_id) == len(to_archive) + len(to_close)
    assert all(len(versions) == 1 for versions in by_id.values())
    assert {e["id"] for _, e in first} <= by_id.keys()
    assert sorted({k for k, _ in got}) == sorted(str(i) for i in to_archive | to_close)


def test_failed_delivery_fails_the_run_and_changes_nothing(settings, engine, activity_topic, monkeypatch):  # type: ignore[no-untyped-def]
    """A batch whose events the broker did not take is rolled back: nothing changes, run fails."""
    seed_many(engine, 3)
    before = issues(engine)

    def refuse(self: EventProducer, topic: str, events: Any) -> int:
        raise RuntimeError("broker down")

    monkeypatch.setattr(EventProducer, "send_many", refuse)
    code, _ = run_job(SPEC, settings, scheduled_for=NOW)
    assert code == EXIT_FAILED
    assert issues(engine) == before
