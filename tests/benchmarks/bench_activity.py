"""Issue activity events/s end to end, ours versus Plane's Celery tasks, same run, same data.

A mix of realistic `plane.issue_activity.v1` events (the kwargs of Plane's `issue_activity.delay`:
`current_instance` is the whole serialized issue, `requested_data` the fields changed) over a
project of 8 members, each issue with 4 subscribers (its creator among them) and 10 events:
state changes, an assignee swapped (two rows), a label added or removed, description edits that
mention a subscriber, comments (a third mention a subscriber); `notification` is true on 90%.

Ours: the events produced to topic `issue-activity`, consumed by one `issue-activity` and one
`notifications` process (real `plane-workers consume` processes, the batch consumers of
shared/registry.py); issue-activity hands `plane.notifications.v1` (and `plane.embed.v1`, read
by nobody here) on. Celery: `celery_activity`, Plane's two tasks one event per task, the second
chained with `.delay()`, on one prefork worker with --concurrency = this machine's cores,
RabbitMQ on 127.0.0.1:5672. Each side gets a fresh database cloned from one seeded template,
so both see the same rows; one embedded PostgreSQL and tansu broker serve both. Ours runs first,
then Celery, each after one warm-up event (ours: both consumer groups joined).

events/s = events / (time from the first event produced, or `.delay()`ed, until every expected
`issue_activities` and `notifications` row is committed: row counts polled). The expected
counts follow from the mix (the mix is built so they do not depend on the order Celery's
processes happen to run an issue's events in); both sides' final counts are reported beside
them. The phase is metered (`cpu_accounting`): CPU ms per event by component, our two consumer
processes against Celery's worker (main process and pool). Peak RSS (VmHWM) of every consumer
and worker process, and its RSS after the warm-up. Target: ours >= 10x Celery's events/s.

`python -m tests.benchmarks.bench_activity [EVENTS] [CELERY_PROCESSES]` prints JSON (defaults
5,000 events and --concurrency = cores; `make bench-quick` runs 300).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from shared.db.engine import get_engine, normalise_url
from shared.db.migrate import upgrade
from shared.db.plane import Issue, Label, User
from shared.embedded.bootstrap import ensure_plane_tables, prepare
from shared.embedded.postgres import with_database
from shared.embedded.stack import EmbeddedStack
from shared.events import new_event
from shared.settings import Settings
from shared.testing import plane_factory as make
from tests.benchmarks import celery_activity
from tests.benchmarks.celery_worker import worker_pids
from tests.benchmarks.cpu_accounting import CpuMeter, memory_mib, per_item_ms
from tests.benchmarks.emit import emit, summary
from tests.helpers import processed, spawn_consumer, stop_processes, wait_until

EVENT_TYPE = "plane.issue_activity.v1"
TARGET_RATIO = 10.0
MEMBERS = 8
SUBSCRIBERS_PER_ISSUE = 4
EVENTS_PER_ISSUE = 10
DESCRIPTIONS_PER_ISSUE = 2  # each by another subscriber: Plane's coalescing never applies
LABELS = 8
NOTIFY_SHARE = 0.9
# kind: share of events
MIX = {"state": 0.30, "assignees": 0.15, "labels": 0.15, "description": 0.15, "comment": 0.25}
STATES = [("Backlog", "backlog"), ("Todo", "unstarted"), ("In Progress", "started")]
STATES += [("Done", "completed"), ("Cancelled", "cancelled")]
ORIGIN = "https://plane.example"
WARMUP_NOTIFICATIONS = SUBSCRIBERS_PER_ISSUE - 1  # one state change: every subscriber but the actor
LOREM = (
    "Steps to reproduce: open the board, drag a card to another column and reload. The card goes "
    "back to where it was and the activity shows nothing. Expected: the move is kept."
)


def mention(user_id: uuid.UUID) -> str:
    return (
        f'<mention-component entity_name="user_mention" entity_identifier="{user_id}" '
        'label="user"></mention-component>'
    )


@dataclass
class IssueSim:
    """One issue's fields as Plane's API would serialize them, kept up to date by the generator."""

    row: Issue
    subscribers: list[User]
    state_id: str
    assignee_ids: list[str]
    label_ids: list[str]
    description_html: str
    descriptions: int = 0
    current: dict[str, Any] = field(default_factory=dict)

    def serialized(self, project_id: str, workspace_id: str) -> str:
        """IssueDetailSerializer(issue).data, as `current_instance`."""
        r = self.row
        return json.dumps(
            {
                "id": str(r.id),
                "name": r.name,
                "state_id": self.state_id,
                "sort_order": r.sort_order,
                "completed_at": None,
                "estimate_point": None,
                "priority": r.priority,
                "start_date": None,
                "target_date": None,
                "sequence_id": r.sequence_id,
                "project_id": project_id,
                "parent_id": None,
                "cycle_id": None,
                "module_ids": [],
                "label_ids": self.label_ids,
                "assignee_ids": self.assignee_ids,
                "sub_issues_count": 0,
                "created_at": "2026-01-05T09:30:00.123Z",
                "updated_at": "2026-01-05T09:30:00.123Z",
                "created_by": str(r.created_by_id),
                "updated_by": str(r.created_by_id),
                "attachment_count": 0,
                "link_count": 0,
                "is_draft": False,
                "archived_at": None,
                "workspace_id": workspace_id,
                "type_id": None,
                "description_html": self.description_html,
                "is_subscribed": True,
                "is_intake": False,
            }
        )


@dataclass
class World:
    users: list[User]
    rows: list[Any]  # every row to seed, in insert order
    project_id: str
    workspace_id: str
    states: list[str]
    labels: list[str]
    issues: list[IssueSim]
    warmup: IssueSim


def build_world(n_issues: int) -> World:
    users = [make.user(i) for i in range(MEMBERS)]
    ws = make.workspace(users[0], slug=f"bench-{uuid.uuid4().hex[:8]}")
    project = make.project(ws, identifier="BENCH")
    states = [make.state(project, name, group) for name, group in STATES]
    labels = [
        Label.new(
            name=f"label-{k}",
            description="",
            color="#60646C",
            sort_order=65535.0 * k,
            project_id=project.id,
            workspace_id=ws.id,
        )
        for k in range(LABELS)
    ]
    rows: list[Any] = [*users, ws, project, *states, *labels]
    rows += [make.project_member(project, u) for u in users]
    rows += [make.notification_preference(u) for u in users]
    sims = []
    for i in range(n_issues + 1):  # the last one takes the warm-up event
        subs = [users[(i + k) % MEMBERS] for k in range(SUBSCRIBERS_PER_ISSUE)]
        html = f"<p>Issue {i + 1}. {LOREM}</p>"
        issue = make.issue(
            project,
            i + 1,
            html=html,
            name=f"Card moves are lost on reload ({i + 1})",
            state_id=states[0].id,
            created_by_id=subs[0].id,
            updated_by_id=subs[0].id,
        )
        rows.append(issue)
        rows += [make.issue_subscriber(issue, u) for u in subs]
        rows.append(make.issue_assignee(issue, subs[0]))
        sims.append(
            IssueSim(issue, subs, str(states[0].id), [str(subs[0].id)], [str(labels[i % LABELS].id)], html)
        )
    return World(
        users=users,
        rows=rows,
        project_id=str(project.id),
        workspace_id=str(ws.id),
        states=[str(s.id) for s in states],
        labels=[str(label.id) for label in labels],
        issues=sims[:-1],
        warmup=sims[-1],
    )


@dataclass
class Mix:
    events: list[dict[str, Any]]  # the kwargs of issue_activity.delay
    kinds: Counter[str]
    activities: int
    notifications: int
    notified_events: int


def state_change(world: World, sim: IssueSim, rng: random.Random) -> tuple[dict[str, Any], int]:
    new = rng.choice([s for s in world.states if s != sim.state_id])
    sim.state_id = new
    return {"state_id": new}, 1


def generate(world: World, n: int, seed: int = 7) -> tuple[Mix, list[Any]]:
    """`n` events round-robin over the issues, and the comment rows the comment events need."""
    rng = random.Random(seed)
    kinds, comments = list(MIX), []
    weights = [MIX[k] for k in kinds]
    events, counts = [], Counter[str]()
    activities = notifications = notified = 0
    epoch = int(datetime.now(UTC).timestamp())
    for j in range(n):
        sim = world.issues[j % len(world.issues)]
        kind = rng.choices(kinds, weights)[0]
        if kind == "description" and sim.descriptions >= DESCRIPTIONS_PER_ISSUE:
            kind = "comment"
        actor = rng.choice(sim.subscribers)
        current: str | None = sim.serialized(world.project_id, world.workspace_id)
        event_type = "issue.activity.updated"
        if kind == "state":
            requested, rows = state_change(world, sim, rng)
            notes = rows * (SUBSCRIBERS_PER_ISSUE - 1)
        elif kind == "assignees":
            (old,) = sim.assignee_ids
            new = rng.choice([str(u.id) for u in sim.subscribers if str(u.id) != old])
            sim.assignee_ids = [new]
            requested, rows = {"assignee_ids": [new]}, 2
            notes = rows * (SUBSCRIBERS_PER_ISSUE - 1)
        elif kind == "labels":
            if len(sim.label_ids) < 3:
                sim.label_ids = [
                    *sim.label_ids,
                    rng.choice([x for x in world.labels if x not in sim.label_ids]),
                ]
            else:
                sim.label_ids = sim.label_ids[1:]
            requested, rows = {"label_ids": sim.label_ids}, 1
            notes = rows * (SUBSCRIBERS_PER_ISSUE - 1)
        elif kind == "description":
            # The k-th description of an issue by its k-th subscriber, mentioning a subscriber
            # not mentioned yet: one row, one mention notification, whatever the order.
            k = sim.descriptions
            sim.descriptions += 1
            actor, mentioned = sim.subscribers[k], sim.subscribers[k + 2]
            sim.description_html += f"<p>Update {k + 1}: still seen, cc {mention(mentioned.id)}</p>"
            requested, rows, notes = {"description_html": sim.description_html}, 1, 1
        else:  # comment
            others = [u for u in sim.subscribers if u is not actor]
            cc = f" cc {mention(rng.choice(others).id)}" if rng.random() < 1 / 3 else ""
            html = f"<p>Same here on Firefox, after a reload the card is back.{cc}</p>"
            comment = make.issue_comment(sim.row, actor, html, "Same here on Firefox, after a reload")
            comments.append(comment)
            event_type, current = "comment.activity.created", None
            requested = {
                "id": str(comment.id),
                "comment_html": html,
                "comment_stripped": comment.comment_stripped,
                "comment_json": {},
                "access": "INTERNAL",
                "issue": str(sim.row.id),
                "project": world.project_id,
                "workspace": world.workspace_id,
                "actor": str(actor.id),
                "attachments": [],
            }
            rows = 1
            notes = SUBSCRIBERS_PER_ISSUE - 1  # the mentioned one gets a mention notification instead
        notify = rng.random() < NOTIFY_SHARE
        counts[kind] += 1
        activities += rows
        if notify:
            notifications += notes
            notified += 1
        events.append(
            {
                "type": event_type,
                "requested_data": json.dumps(requested),
                "current_instance": current,
                "issue_id": str(sim.row.id),
                "actor_id": str(actor.id),
                "project_id": world.project_id,
                "epoch": epoch + j,
                "subscriber": True,
                "notification": notify,
                "origin": ORIGIN,
            }
        )
    return Mix(events, counts, activities, notifications, notified), comments


def warmup_event(world: World) -> dict[str, Any]:
    sim = world.warmup
    current = sim.serialized(world.project_id, world.workspace_id)
    requested, _ = state_change(world, sim, random.Random(1))
    return {
        "type": "issue.activity.updated",
        "requested_data": json.dumps(requested),
        "current_instance": current,
        "issue_id": str(sim.row.id),
        "actor_id": str(sim.subscribers[1].id),
        "project_id": world.project_id,
        "epoch": int(time.time()),
        "subscriber": True,
        "notification": True,
        "origin": ORIGIN,
    }


# --- measuring ---

COUNTS = text(
    "SELECT (SELECT count(*) FROM issue_activities), (SELECT count(*) FROM notifications), "
    "(SELECT count(*) FROM email_notification_logs), "
    "(SELECT count(*) FROM issue_subscribers WHERE deleted_at IS NULL), "
    "(SELECT count(*) FROM issue_mentions), (SELECT count(*) FROM issue_mentions WHERE deleted_at IS NULL)"
)
COUNT_NAMES = ("issue_activities", "notifications", "email_notification_logs")
COUNT_NAMES += ("live_issue_subscribers", "issue_mentions", "live_issue_mentions")


PROGRESS = text("SELECT (SELECT count(*) FROM issue_activities), (SELECT count(*) FROM notifications)")


def progress(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        activities, notifications = conn.execute(PROGRESS).one()
    return activities, notifications


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(zip(COUNT_NAMES, conn.execute(COUNTS).one(), strict=True))


def component(name: str, exe: str, cmdline: str) -> str | None:
    if "consume issue-activity" in cmdline:
        return "issue-activity"
    if "consume notifications" in cmdline:
        return "notifications"
    if "celery_activity" in cmdline and "celery" in cmdline:
        return "celery worker"
    if name in ("beam.smp", "epmd", "erl_child_setup", "inet_gethost"):
        return "rabbitmq"
    if "--advertised-listener-url" in cmdline:
        return "broker (tansu)"
    if name == "postgres" and "pgserver" in exe:
        return "postgresql"
    return None


def timed(
    engine: Engine, mix: Mix, base: dict[str, int], send: Any, meter: CpuMeter, timeout_s: float
) -> dict[str, Any]:
    """Send every event, then poll until the expected rows are committed."""
    want_activities = base["issue_activities"] + mix.activities
    want_notifications = base["notifications"] + mix.notifications
    meter.start()
    start = time.perf_counter()
    send(mix.events)
    sent_s = time.perf_counter() - start
    deadline = start + timeout_s
    while True:
        activities, notifications = progress(engine)
        if activities >= want_activities and notifications >= want_notifications:
            break
        if time.perf_counter() > deadline:
            meter.stop()
            raise RuntimeError(
                f"after {timeout_s:.0f} s: {activities}/{want_activities} activities, "
                f"{notifications}/{want_notifications} notifications"
            )
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    cpu = per_item_ms(meter.stop(), len(mix.events))
    return {
        "events_per_s": round(len(mix.events) / elapsed, 1),
        "seconds": round(elapsed, 3),
        "send_seconds": round(sent_s, 3),
        "cpu_ms_per_event": cpu,
    }


def settle(engine: Engine, base: dict[str, int]) -> dict[str, int]:
    """Counts once nothing has changed for a second (e-mail logs land just after notifications),
    less the warm-up's."""
    last = counts(engine)
    for _ in range(30):
        time.sleep(1)
        now = counts(engine)
        if now == last:
            break
        last = now
    return {k: last[k] - base[k] for k in last}


# --- the two sides ---


def run_ours(s: Settings, world: World, mix: Mix, meter: CpuMeter, log_dir: Path) -> dict[str, Any]:
    from shared.events.producer import EventProducer

    engine = get_engine(s.database_url)
    producer = EventProducer(s)

    def send(events: list[dict[str, Any]]) -> None:
        producer.send_many("issue-activity", [(e["issue_id"], new_event(EVENT_TYPE, e)) for e in events])

    names = ["issue-activity", "notifications"]
    procs = {}
    for name in names:
        with (log_dir / f"{name}.log").open("ab") as log:
            procs[name] = spawn_consumer(name, s, stderr=log)
    try:
        send([warmup_event(world)])  # both groups joined and a notification written
        wait_until(lambda: counts(engine)["notifications"] >= WARMUP_NOTIFICATIONS, timeout_s=180)
        time.sleep(1)
        base = counts(engine)
        claims_before = processed(engine, "issue-activity"), processed(engine, "notifications")
        after_warmup = {name: memory_mib(p.pid)["rss_mib"] for name, p in procs.items()}
        result = timed(engine, mix, base, send, meter, timeout_s=900)
        memory = {name: memory_mib(p.pid) for name, p in procs.items()}
        for name in names:
            memory[name]["rss_after_warmup_mib"] = after_warmup[name]
        result["rows"] = settle(engine, base)
        result["events_claimed"] = {
            "issue-activity": processed(engine, "issue-activity") - claims_before[0],
            "notifications": processed(engine, "notifications") - claims_before[1],
        }
    finally:
        stop_processes(list(procs.values()))
        producer.close()
    cpu = result["cpu_ms_per_event"]
    result["processes_cpu_ms_per_event"] = round(sum(cpu.get(n, 0.0) for n in names), 3)
    result["memory"] = memory
    result["processes"] = "issue-activity x1, notifications x1 (batch consumers)"
    engine.dispose()
    return result


def run_celery(url: str, world: World, mix: Mix, meter: CpuMeter, processes: int) -> dict[str, Any]:
    engine = get_engine(url)

    def send(events: list[dict[str, Any]]) -> None:
        for e in events:
            celery_activity.issue_activity.delay(**e)

    worker = celery_activity.start_worker(url, concurrency=processes)
    try:
        send([warmup_event(world)])
        wait_until(lambda: counts(engine)["notifications"] >= WARMUP_NOTIFICATIONS, timeout_s=120)
        time.sleep(1)
        base = counts(engine)
        pids = worker_pids(worker)
        after_warmup = {name: memory_mib(pid)["rss_mib"] for name, pid in pids.items()}
        result = timed(engine, mix, base, send, meter, timeout_s=1800)
        memory = {
            name: memory_mib(pid) | {"rss_after_warmup_mib": after_warmup[name]} for name, pid in pids.items()
        }
        result["rows"] = settle(engine, base)
    finally:
        celery_activity.stop_worker(worker)
    result["processes_cpu_ms_per_event"] = result["cpu_ms_per_event"].get("celery worker", 0.0)
    result["memory"] = memory
    result["processes"] = f"prefork --concurrency={processes}, RabbitMQ 127.0.0.1:5672"
    engine.dispose()
    return result


def seed_template(url: str, world: World, comments: list[Any]) -> float:
    started = time.perf_counter()
    ensure_plane_tables(url)
    upgrade(url)
    engine = get_engine(url)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all([*world.rows, *comments])  # Plane's foreign keys are checked at commit
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def run_both(
    state: Path, world: World, mix: Mix, comments: list[Any], processes: int
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Seed one template, clone a database per side from it, run ours, then Celery."""
    with EmbeddedStack(Settings.from_env(), state) as stack:
        base_url = stack.settings.database_url
        template = f"bench_activity_{uuid.uuid4().hex[:6]}"
        admin = create_engine(normalise_url(base_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{template}"'))
        seed_s = seed_template(with_database(base_url, template), world, comments)
        urls = {}
        for side in ("ours", "celery"):
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{template}_{side}" TEMPLATE "{template}"'))
            urls[side] = with_database(base_url, f"{template}_{side}")
        admin.dispose()
        s = replace(stack.settings, database_url=urls["ours"], metrics_port=0, log_level="WARNING")
        prepare(s)  # the topics (the tables came with the clone)
        meter = CpuMeter(component)
        ours = run_ours(s, world, mix, meter, state)
        celery = run_celery(urls["celery"], world, mix, meter, processes)
    return ours, celery, seed_s


def main(n_events: int = 5_000, processes: int = 0) -> dict[str, Any]:
    processes = processes or os.cpu_count() or 2
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    n_issues = max(1, n_events // EVENTS_PER_ISSUE)
    world = build_world(n_issues)
    mix, comments = generate(world, n_events)
    try:
        ours, celery, seed_s = run_both(state, world, mix, comments, processes)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    expected = {"issue_activities": mix.activities, "notifications": mix.notifications}
    rate_ratio = ratio(ours["events_per_s"], celery["events_per_s"])
    cpu_ratio = ratio(ours["processes_cpu_ms_per_event"], celery["processes_cpu_ms_per_event"])
    return {
        "benchmark": "issue activity + notifications",
        **summary(ours["events_per_s"], celery["events_per_s"], "events/s"),
        "events": n_events,
        "issues": n_issues,
        "mix": dict(mix.kinds),
        "events_with_notification": mix.notified_events,
        "expected_rows": expected,
        "rows_match": all(side["rows"][k] == v for side in (ours, celery) for k, v in expected.items()),
        "ours_events_per_s": ours["events_per_s"],
        "celery_events_per_s": celery["events_per_s"],
        "events_per_s_ratio": rate_ratio,
        "target_ratio_min": TARGET_RATIO,
        "met": rate_ratio is not None and rate_ratio >= TARGET_RATIO,
        # Our two consumer processes against Celery's worker (main + pool), per event.
        "cpu_ms_per_event": {
            "ours_processes": ours["processes_cpu_ms_per_event"],
            "celery_worker": celery["processes_cpu_ms_per_event"],
            "ratio": cpu_ratio,
        },
        "plane_workers": ours,
        "celery": celery,
        "world": (
            f"{MEMBERS} project members, {SUBSCRIBERS_PER_ISSUE} subscribers per issue, "
            f"{EVENTS_PER_ISSUE} events per issue round-robin, notification on {NOTIFY_SHARE:.0%}"
        ),
        "celery_baseline": (
            "Plane's issue_activity + notifications tasks, one statement per ORM call (bulk_create as "
            "one multi-row INSERT, as Django does); optimistic stand-ins: one persistent psycopg2 "
            "connection per process (Plane: CONN_MAX_AGE 0), lexbor instead of BeautifulSoup, no Redis"
        ),
        "seed_seconds": round(seed_s, 1),
        "cpu_count": os.cpu_count(),
        "stack": "embedded (pgserver PostgreSQL, tansu); a database per side cloned from one template",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:])
