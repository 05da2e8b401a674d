"""email-digest: 100,000 unprocessed e-mail logs for 2,000 receivers, ours against Plane's Celery tasks.

The world (Plane's schema, embedded PostgreSQL): 2,000 users in one workspace of 20 projects and
2,000 issues. Each user receives for 10 issues (each issue has 10 receivers) and each issue had 5
activities by two other members (state, priority, labels, assignees, due date, comments), which
notifications fanned out into one log per receiver, as ours writes them (`data` = Plane's issue
block with project and slug, and the activity with `issue_comment` and `activity_time`); in one
stack in ten the last log is a mention of the receiver instead. So: 20,000 (receiver, issue)
stacks of 5 logs = 100,000 logs and 20,000 mails; every issue has a stored origin (ours reads
plane_workers.issue_origins, Plane's task a Redis key that issue_activity set).

Ours: one `plane-workers job email-digest` process (as the CronJob runs it) and the worker process
it spawns (EMAIL_DIGEST_PROCESSES 2, its CPU counted with the job's), EMAIL_RATE_LIMIT_PER_S 0 (a
local sink has no provider limit; Plane has none). Celery: `celery_email`, Plane's beat task
`.delay()`ed once (a worker process runs it, as beat would have it) and one
`send_email_notification` per stack on a prefork worker with --concurrency = this machine's cores,
RabbitMQ on 127.0.0.1:5672, Redis on 127.0.0.1:6379 when one answers. Each side gets a fresh
database cloned from one seeded template; ours runs first, then Celery (after one warm-up mail per
pool process). Both mail from Plane's template when PLANE_TEMPLATES_DIR is set, else from the
built-in HTML (ours) and a Django template of the same content (Celery).

The SMTP server is aiosmtpd in a process of its own (`smtp_sink`, its MAIL, RCPT and DATA made cheap)
that only counts: mails, bytes, connections and each (recipient, subject) pair, so every mail is
checked: each side must deliver exactly one mail per stack, the same pairs on both sides
(asserted, and reported). Its CPU is reported on its own.

Wall time: ours, the job process from start to exit (imports included); Celery, from the beat
task's `.delay()` until the sink has every mail and every log is marked sent and processed. mails/s
= mails / wall time. CPU seconds per component over each phase (`cpu_accounting`). Target: ours
under 30 s at full size.

`python -m tests.benchmarks.bench_email_digest [RECEIVERS] [CELERY_PROCESSES]` prints JSON
(defaults 2,000 receivers and --concurrency = cores; `make bench-quick` runs 40).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from shared.db.engine import get_engine, normalise_url
from shared.db.migrate import upgrade
from shared.embedded.bootstrap import ensure_plane_tables
from shared.embedded.postgres import EmbeddedPostgres, with_database
from shared.embedded.stack import env_for
from shared.settings import Settings
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one, insert_select
from tests.benchmarks import celery_email
from tests.benchmarks.cpu_accounting import CpuMeter
from tests.benchmarks.emit import emit, summary
from tests.benchmarks.smtp_sink import Sink, Tally, head, unstuffed

TARGET_S = 30.0
ISSUES_PER_RECEIVER = 10
RECEIVERS_PER_ISSUE = 10
LOGS_PER_STACK = 5
ISSUES_PER_PROJECT = 100
MENTION_SHARE = 0.1
ORIGIN = "https://plane.example"
REDIS = "127.0.0.1:6379"
FIELDS = {
    "state": 0.3,
    "priority": 0.2,
    "labels": 0.15,
    "assignees": 0.1,
    "target_date": 0.05,
    "comment": 0.2,
}
EMAIL_FROM = "Team Plane <team@mailer.plane.so>"

# --- the world ---


@dataclass
class World:
    template_rows: list[Any]  # users, workspace, projects, issues (ORM rows)
    logs: list[tuple[Any, ...]]  # (id, receiver, actor, issue, data json, created_at)
    issues: list[Any]
    expected: set[tuple[str, str]]  # (recipient, subject) of every mail
    receivers: int


def _activity(rng: random.Random, field: str, actor: Any, users: list[Any], i: int, j: int) -> dict[str, Any]:
    old, new, old_id, new_id = "None", "None", None, None
    if field == "state":
        old, new = "Todo", rng.choice(["In Progress", "Done", "Cancelled"])
        old_id, new_id = str(uuid.uuid4()), str(uuid.uuid4())
    elif field == "priority":
        old, new = rng.choice([("none", "low"), ("low", "high"), ("high", "urgent")])
    elif field == "labels":
        old, new, new_id = "", rng.choice(["bug", "frontend", "regression"]), str(uuid.uuid4())
    elif field == "assignees":
        who = users[(i * 7 + j) % len(users)]
        old, new, new_id = "", who.display_name, str(who.id)
    elif field == "target_date":
        new = f"2026-02-{1 + (i + j) % 28:02d}"
    else:
        new = f"<p>Same here on Firefox: after a reload the card is back ({i}.{j}).</p>"
    verb = "created" if field == "comment" else "updated"
    comment = new.removeprefix("<p>").removesuffix("</p>") if field == "comment" else ""
    return {"id": str(uuid.uuid4()), "verb": verb, "field": field, "actor": str(actor.id), "new_value": new,
            "old_value": old, "old_identifier": old_id, "new_identifier": new_id,
            "issue_comment": comment}  # fmt: skip


def build_world(receivers: int, seed: int = 11) -> World:
    """`receivers` users (a multiple of RECEIVERS_PER_ISSUE), as many issues, 10 stacks each."""
    rng = random.Random(seed)
    users = [make.user(i) for i in range(receivers)]
    ws = make.workspace(users[0], slug=f"bench-{uuid.uuid4().hex[:8]}")
    n_issues = receivers * ISSUES_PER_RECEIVER // RECEIVERS_PER_ISSUE
    projects = [
        make.project(ws, identifier=f"P{k:02d}") for k in range(max(1, n_issues // ISSUES_PER_PROJECT))
    ]
    stride = n_issues // RECEIVERS_PER_ISSUE  # issue i's receivers: i, i - stride, i - 2 stride, ...
    issues = []
    for i in range(n_issues):
        project = projects[i % len(projects)]
        issues.append(
            make.issue(project, i // len(projects) + 1, name=f"Card moves are lost on reload ({i + 1})",
                       created_by_id=users[i].id, updated_by_id=users[i].id)
        )  # fmt: skip
    now = datetime.now(UTC)
    logs, expected = [], set()
    fields, weights = list(FIELDS), list(FIELDS.values())
    for i, issue in enumerate(issues):
        project = projects[i % len(projects)]
        block = {"id": str(issue.id), "name": issue.name, "identifier": project.identifier,
                 "sequence_id": issue.sequence_id, "state_name": "In Progress", "state_group": "started",
                 "project_id": str(project.id), "workspace_slug": ws.slug}  # fmt: skip
        # Two members who do not receive for this issue (actors are not notified of their own work).
        actors = (
            [users[(i + 1 + k) % receivers] for k in range(2)] if stride > 2 else [users[(i + 1) % receivers]]
        )
        activities = []
        for j in range(LOGS_PER_STACK):
            at = now - timedelta(minutes=LOGS_PER_STACK - j, seconds=rng.random())
            actor = actors[j % len(actors)]
            activity = _activity(rng, rng.choices(fields, weights)[0], actor, users, i, j)
            activity["activity_time"] = at.isoformat().replace("+00:00", "Z")
            activities.append((actor, at, json.dumps({"issue": block, "issue_activity": activity})))
        for k in range(RECEIVERS_PER_ISSUE):
            receiver = users[(i - k * stride) % receivers]
            expected.add((receiver.email, f"{project.identifier}-{issue.sequence_id} {issue.name}"))
            stack = list(activities)
            if rng.random() < MENTION_SHARE:
                actor, at, data = stack[-1]
                mention = json.loads(data)
                html = (f'<p>cc <mention-component entity_name="user_mention"'
                        f' entity_identifier="{receiver.id}" label="user"></mention-component>'
                        " can you look?</p>")  # fmt: skip
                mention["issue_activity"] |= {"field": "mention", "new_value": html, "issue_comment": ""}
                stack[-1] = (actor, at, json.dumps(mention))
            logs += [(uuid.uuid4(), receiver.id, actor.id, issue.id, data, at) for actor, at, data in stack]
    return World([*users, ws, *projects, *issues], logs, issues, expected, receivers)


STAGE = text(
    "CREATE TEMP TABLE stage (id uuid, receiver_id uuid, triggered_by_id uuid, entity_identifier uuid,"
    " data jsonb, created_at timestamptz) ON COMMIT DROP"
)
LOG_COLUMNS = {
    "id": "s.id", "receiver_id": "s.receiver_id", "triggered_by_id": "s.triggered_by_id",
    "entity_identifier": "s.entity_identifier", "entity_name": "'issue'", "entity": "''",
    "data": "s.data", "created_at": "s.created_at", "updated_at": "s.created_at",
}  # fmt: skip


def seed_template(url: str, world: World, smtp_port: int) -> float:
    started = time.perf_counter()
    ensure_plane_tables(url)
    upgrade(url)
    engine = get_engine(url)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(world.template_rows)
    with engine.begin() as conn:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(world.logs)
        buffer.seek(0)
        conn.execute(STAGE)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.copy_expert("COPY stage FROM STDIN WITH (FORMAT csv)", buffer)
        insert_select(conn, "email_notification_logs", LOG_COLUMNS, "stage s", {})
        conn.execute(
            text("INSERT INTO plane_workers.issue_origins (issue_id, origin) SELECT unnest(:ids), :o"),
            {"ids": [i.id for i in world.issues], "o": ORIGIN},
        )
        # Plane's instance configuration (SKIP_ENV_VAR=1): the SMTP server both sides use.
        smtp = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "EMAIL_HOST_USER": "",
                "EMAIL_HOST_PASSWORD": "", "EMAIL_USE_TLS": "0", "EMAIL_USE_SSL": "0",
                "EMAIL_FROM": EMAIL_FROM}  # fmt: skip
        for key, value in smtp.items():
            insert_one(
                conn, "instance_configurations", key=key, value=value, category="SMTP", is_encrypted=False
            )
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


# --- the SMTP sink ---


class DigestTally(Tally):
    """Also each (recipients, subject) pair: 'pairs' answers them, sorted."""

    def reset(self) -> None:
        super().reset()
        self.pairs: Counter[tuple[str, str]] = Counter()

    def count(self, rcpt_tos: list[str], message: bytes) -> None:
        content = unstuffed(message)
        found = SUBJECT.search(head(content))
        self.mails += 1
        self.bytes += len(content)
        self.pairs[(",".join(rcpt_tos), found.group(1).decode() if found else "")] += 1

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        return stats | {"distinct": len(self.pairs), "duplicates": stats["mails"] - len(self.pairs)}

    def answer(self, op: str) -> Any:
        return sorted(self.pairs) if op == "pairs" else self.stats()


SUBJECT = re.compile(rb"^Subject: ?(.*)$", re.MULTILINE)


# --- measuring ---

LOG_STATE = text(
    "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL), count(*) FILTER (WHERE processed_at IS NOT NULL),"
    " count(*) FROM email_notification_logs"
)


def log_state(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        sent, processed, total = conn.execute(LOG_STATE).one()
    return {"sent": sent, "processed": processed, "total": total}


def classifier(tag: str) -> Any:
    """Components by command line; PostgreSQL only this benchmark's server and backends (`tag`
    is in its data directory and database names), RabbitMQ and Redis whoever else uses them."""

    def component(name: str, exe: str, cmdline: str) -> str | None:
        if "job email-digest" in cmdline:
            return "email-digest job"
        if "celery_email" in cmdline and "celery" in cmdline:
            return "celery worker"
        if name in ("beam.smp", "epmd", "erl_child_setup", "inet_gethost"):
            return "rabbitmq"
        if name == "redis-server":
            return "redis"
        if name == "postgres" and tag in cmdline:
            return "postgresql"
        return None

    return component


def measured(meter: CpuMeter, sink: Sink) -> Any:
    """Start metering; the function returned stops it: CPU seconds per component, the sink's too."""
    meter.start()
    sink_before = sink.cpu_s()

    def stop() -> dict[str, float]:
        used = meter.stop() | {"smtp sink": sink.cpu_s() - sink_before}
        return {k: round(v, 2) for k, v in sorted(used.items(), key=lambda kv: -kv[1])}

    return stop


def check_mails(sink: Sink, world: World) -> dict[str, Any]:
    stats = sink.call("stats")
    pairs = {tuple(p) for p in sink.call("pairs")}
    return {
        "mails": stats["mails"],
        "duplicates": stats["duplicates"],
        "smtp_connections": stats["connections"],
        "mail_bytes": stats["bytes"],
        "pairs_as_expected": pairs == world.expected,
    }


def run_ours(url: str, settings: Settings, world: World, sink: Sink, meter: CpuMeter) -> dict[str, Any]:
    engine = get_engine(url)
    env = env_for(settings) | {"LOG_LEVEL": "WARNING"}
    sink.call("reset")
    stop_meter = measured(meter, sink)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "job", "email-digest"],
        env=env, stdout=subprocess.PIPE, stderr=None, timeout=1200, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    # The job has exited by now, so its CPU is the reaped child's, not a live process's.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    job_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    cpu = stop_meter() | {"email-digest job": round(job_cpu, 2)}
    if proc.returncode != 0:
        raise RuntimeError(f"email-digest exited {proc.returncode}")
    counts = json.loads(proc.stdout.splitlines()[-1])["counts"]
    with engine.connect() as conn:
        job_s = conn.scalar(
            text(
                "SELECT extract(epoch FROM finished_at - started_at) FROM plane_workers.job_runs"
                " WHERE job = 'email-digest' ORDER BY id DESC LIMIT 1"
            )
        )
        digests = dict(
            conn.execute(text("SELECT status, count(*) FROM plane_workers.email_digests GROUP BY 1")).all()
        )
    result = check_mails(sink, world)
    engine.dispose()
    return {
        "seconds": round(wall, 2),
        "job_seconds": round(float(job_s), 2),
        "mails_per_s": round(result["mails"] / wall, 1),
        **result,
        "job_counts": counts,
        "digests": digests,
        "logs": log_state(get_engine(url)),
        "cpu_s": cpu,
        "email_rate_limit_per_s": settings.email_rate_limit_per_s,
        "processes": f"job email-digest, EMAIL_DIGEST_PROCESSES={settings.email_digest_processes}",
    }


def redis_available() -> bool:
    host, _, port = REDIS.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def run_celery(url: str, world: World, sink: Sink, meter: CpuMeter, processes: int) -> dict[str, Any]:
    engine = get_engine(url)
    redis = REDIS if redis_available() else ""
    if redis:  # the origins issue_activity would have left in Redis (600 s)
        client = celery_email._Redis(redis)
        for issue in world.issues:
            client.command("SET", str(issue.id), ORIGIN, "EX", "600")
    env = {"BENCH_REDIS": redis, "BENCH_ORIGIN": ORIGIN}
    if os.environ.get("PLANE_TEMPLATES_DIR"):
        env["PLANE_TEMPLATES_DIR"] = os.environ["PLANE_TEMPLATES_DIR"]
    worker = celery_email.start_worker(url, processes, env)
    try:
        warm_up(world, sink, processes)
        stop_meter = measured(meter, sink)
        started = time.perf_counter()
        celery_email.stack_email_notification.delay()
        picked_s = wait_celery(engine, sink, len(world.expected), started, timeout_s=3000)
        wall = time.perf_counter() - started
        cpu = stop_meter()
        time.sleep(2)  # a duplicate would land now
        stats = check_mails(sink, world)
    finally:
        celery_email.stop_worker(worker)
        if redis:
            for issue in world.issues:
                client.command("DEL", str(issue.id))
    engine.dispose()
    return {
        "seconds": round(wall, 2),
        "beat_task_done_s": round(picked_s, 2),
        "mails_per_s": round(stats["mails"] / wall, 1),
        **stats,
        "logs": log_state(get_engine(url)),
        "cpu_s": cpu,
        "processes": f"prefork --concurrency={processes}, RabbitMQ 127.0.0.1:5672",
        "redis": redis or "none answered at 127.0.0.1:6379: no lock, origin from the environment",
    }


def wait_celery(engine: Engine, sink: Sink, mails: int, started: float, timeout_s: float) -> float:
    """Until the sink has `mails` mails and every log is marked sent and processed; returns when
    the beat task had marked them all processed (its last statement), seconds after `started`."""
    deadline, picked_s = started + timeout_s, None
    while True:
        state = log_state(engine)
        if picked_s is None and state["processed"] == state["total"]:
            picked_s = time.perf_counter() - started
        if sink.call("stats")["mails"] >= mails and picked_s is not None and state["sent"] == state["total"]:
            return picked_s
        if time.perf_counter() > deadline:
            raise RuntimeError(f"Celery after {timeout_s:.0f} s: {sink.call('stats')}, logs {state}")
        time.sleep(0.1)


def warm_up(world: World, sink: Sink, processes: int) -> None:
    """One mail per pool process (imports, Django's setup, its host name lookup), then reset."""
    sink.call("reset")
    issue = world.issues[0]
    receiver = world.template_rows[0]
    data = json.loads(world.logs[0][4])
    for _ in range(processes * 2):
        celery_email.send_email_notification.delay(
            issue_id=str(issue.id),
            notification_data={str(world.logs[0][2]): [data]},
            receiver_id=str(receiver.id),
            email_notification_ids=[str(uuid.uuid4())],  # no such log: nothing is marked
        )
    sink.wait(processes * 2, timeout_s=120)
    sink.call("reset")


def main(receivers: int = 2_000, processes: int = 0) -> dict[str, Any]:
    processes = processes or os.cpu_count() or 2
    receivers = max(RECEIVERS_PER_ISSUE, receivers - receivers % RECEIVERS_PER_ISSUE)
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    tag = f"bench_email_{uuid.uuid4().hex[:6]}"
    state = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    world = build_world(receivers)
    sink = Sink(DigestTally())
    pg = EmbeddedPostgres(state / "data")
    pg.start()
    try:
        template = pg.create_database(tag)
        seed_s = seed_template(template, world, sink.port)
        admin = create_engine(normalise_url(pg.url), isolation_level="AUTOCOMMIT")
        urls = {}
        for side in ("ours", "celery"):
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{tag}_{side}" TEMPLATE "{tag}"'))
            urls[side] = with_database(pg.url, f"{tag}_{side}")
        admin.dispose()
        settings = replace(
            Settings.from_env({}),
            database_url=urls["ours"],
            email_host="127.0.0.1",
            email_port=sink.port,
            email_use_tls=False,
            email_rate_limit_per_s=0,
            email_from=EMAIL_FROM,
            web_url=ORIGIN,
            plane_templates_dir=os.environ.get("PLANE_TEMPLATES_DIR", ""),
            metrics_port=0,
        )
        meter = CpuMeter(classifier(tag))
        ours = run_ours(urls["ours"], settings, world, sink, meter)
        celery = run_celery(urls["celery"], world, sink, meter, processes)
    finally:
        sink.close()
        pg.stop()
        shutil.rmtree(state, ignore_errors=True)
    mails = len(world.expected)
    same = (
        ours["mails"] == celery["mails"] == mails
        and ours["pairs_as_expected"]
        and celery["pairs_as_expected"]
    )
    report = {
        "benchmark": "email digest",
        **summary(ours["mails_per_s"], celery["mails_per_s"], "mails/s"),
        "receivers": receivers,
        "issues": len(world.issues),
        "logs": len(world.logs),
        "mails_expected": mails,
        "mails": {"ours": ours["mails"], "celery": celery["mails"]},
        "mails_match": same,
        "seconds": {"ours": ours["seconds"], "celery": celery["seconds"]},
        "speedup": round(celery["seconds"] / ours["seconds"], 2),
        "target_seconds": TARGET_S,
        "met": ours["seconds"] < TARGET_S,
        "plane_workers": ours,
        "celery": celery,
        "template": "Plane's (PLANE_TEMPLATES_DIR)" if settings.plane_templates_dir else "built-in",
        "world": (
            f"{receivers} receivers x {ISSUES_PER_RECEIVER} issues, {LOGS_PER_STACK} logs per stack, "
            f"{RECEIVERS_PER_ISSUE} receivers per issue, a mention in {MENTION_SHARE:.0%} of stacks"
        ),
        "seed_seconds": round(seed_s, 1),
        "cpu_count": os.cpu_count(),
        "stack": "embedded PostgreSQL (pgserver), a database per side cloned from one template; aiosmtpd",
    }
    if not same:
        print(json.dumps(report, indent=2), file=sys.stderr)
        raise AssertionError(
            f"mails differ: {json.dumps(report['mails'])}, pairs {ours['pairs_as_expected']}"
        )
    return report


if __name__ == "__main__":
    emit(main, sys.argv[1:])
