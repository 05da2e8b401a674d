"""`plane-workers demo`: the whole path on the embedded stack, in one command.

Loads a small Plane workspace (Plane's schema), produces issue-description changes plus three
broken events, runs the `issue-description-versions` consumer as its own process, runs the
`cleanup-api-logs` job (dry run, then for real), and prints what happened.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared import registry
from shared.cli.dev import command
from shared.db.engine import get_engine
from shared.db.plane import APIActivityLog, Issue, IssueDescriptionVersion
from shared.db.state import ProcessedEvent
from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack, env_for
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.settings import Settings
from shared.testing import plane_factory as make

CONSUMER = registry.consumer("issue-description-versions")


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def run_demo(settings: Settings, n_events: int, state_dir: Path | None) -> int:
    state = Path(state_dir or Path(settings.plane_workers_state_dir) / "demo").resolve()
    shutil.rmtree(state, ignore_errors=True)  # the demo always starts from nothing
    t0 = time.monotonic()
    with EmbeddedStack(settings, state) as stack:
        s = stack.settings
        say(
            f"stack up in {time.monotonic() - t0:.1f}s: PostgreSQL, Kafka-protocol broker "
            f"{s.kafka_bootstrap_servers}, S3 {s.aws_s3_endpoint_url}, SMTP port {s.email_port}"
        )
        prepare(s)
        engine = get_engine(s.database_url)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            issues, users = _seed(session)
        say(
            f"loaded workspace 'demo': {len(users)} users, {len(issues)} issues, 60 API logs "
            "(50 older than the retention)"
        )

        consumer = subprocess.Popen(
            command("consume", CONSUMER.name), env=env_for(s) | {"METRICS_PORT": "0", "LOG_LEVEL": "WARNING"}
        )
        try:
            produced_at = time.monotonic()
            _produce(s, engine, issues, users, n_events)
            say(f"produced {n_events} description changes and 3 broken events")
            done = _wait_for(engine, n_events, timeout_s=120)
            elapsed = time.monotonic() - produced_at
            say(
                f"consumer processed {done}/{n_events} events in {elapsed:.1f}s "
                "(including the consumer group's first join)"
            )
            with Session(engine) as session:
                versions = session.scalar(select(func.count()).select_from(IssueDescriptionVersion))
            say(
                f"issue_description_versions rows: {versions} "
                "(edits by the same user within 10 minutes are coalesced, as Plane does)"
            )
            _show_dlq(s)
        finally:
            consumer.send_signal(signal.SIGTERM)
            code = consumer.wait(timeout=60)
            say(f"consumer stopped on SIGTERM with exit code {code}")

        env = env_for(s) | {"LOG_LEVEL": "WARNING"}
        for args in (["--dry-run"], []):
            out = subprocess.run(
                command("job", "cleanup-api-logs", *args), env=env, capture_output=True, text=True, check=True
            )
            say(f"job cleanup-api-logs {' '.join(args)}: {out.stdout.strip()}")
        with Session(engine) as session:
            left = session.scalar(select(func.count()).select_from(APIActivityLog))
        say(f"api_activity_logs left: {left} (the 10 recent ones)")
        engine.dispose()
    say(f"done in {time.monotonic() - t0:.1f}s; embedded servers stopped")
    return 0


def _seed(session: Session) -> tuple[list[Issue], list]:
    users = [make.user(i) for i in range(3)]
    session.add_all(users)
    session.flush()
    ws = make.workspace(users[0], slug="demo")
    session.add(ws)
    session.flush()
    proj = make.project(ws)
    session.add(proj)
    session.flush()
    issues = [make.issue(proj, i + 1, html=f"<p>first draft of issue {i + 1}</p>") for i in range(20)]
    session.add_all(issues)
    now = datetime.now(UTC)
    session.add_all(make.api_log(now - timedelta(days=90 + i)) for i in range(50))
    session.add_all(make.api_log(now - timedelta(hours=i)) for i in range(10))
    return issues, users


def _produce(s: Settings, engine, issues: list[Issue], users: list, n: int) -> None:  # type: ignore[no-untyped-def]
    """Change descriptions the way Plane's API does, then publish what its .delay() would."""
    rng = random.Random(7)
    producer = EventProducer(s)
    batch = []
    with engine.begin() as conn:
        for i in range(n):
            issue = rng.choice(issues)
            old_html, new_html = issue.description_html, f"<p>revision {i} of {issue.name}</p>"
            conn.execute(update(Issue).where(Issue.id == issue.id).values(description_html=new_html))
            issue.description_html = new_html
            data = {
                "updated_issue": json.dumps({"description_html": old_html}),
                "issue_id": str(issue.id),
                "user_id": str(rng.choice(users).id),
                "is_creating": False,
            }
            batch.append((str(issue.id), new_event(CONSUMER.event_types[0], data)))
    producer.send_many(CONSUMER.topic, batch)
    topic = s.topic(CONSUMER.topic)
    producer.send_raw(topic, b"{not json", key=b"broken-1")
    producer.send_raw(
        topic,
        new_event(CONSUMER.event_types[0], batch[0][1].data)
        .to_json()
        .replace(b"issue_description_version", b"no_such_type"),
        key=b"broken-2",
    )
    bad = json.loads(batch[0][1].to_json())
    bad["id"] = "00000000-0000-4000-8000-000000000000"
    bad["data"]["issue_id"] = "not-a-uuid"
    producer.send_raw(topic, json.dumps(bad).encode(), key=b"broken-3")
    producer.close()


def _wait_for(engine, n: int, timeout_s: float) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = (
                conn.scalar(
                    select(func.count())
                    .select_from(ProcessedEvent)
                    .where(ProcessedEvent.consumer == CONSUMER.name)
                )
                or 0
            )
        if done >= n:
            break
        time.sleep(0.2)
    return done


def _show_dlq(s: Settings) -> None:
    from shared.cli.dlq import show
    from shared.kafka import headers as h

    deadline = time.monotonic() + 30
    letters: list[dict] = []
    while time.monotonic() < deadline and len(letters) < 3:
        letters = list(show(s, CONSUMER.topic, limit=None))
        time.sleep(0.5)
    say(f"dead letters in {s.topic(CONSUMER.dlq_topic)}: {len(letters)}")
    for letter in letters:
        meta = letter["headers"]
        say(
            f"  offset {meta.get(h.ORIGINAL_OFFSET)} of {meta.get(h.ORIGINAL_TOPIC)}"
            f"[{meta.get(h.ORIGINAL_PARTITION)}]: {meta.get(h.ERROR_CLASS)}: "
            f"{meta.get(h.ERROR_MESSAGE)} (attempts {meta.get(h.ATTEMPTS)})"
        )
