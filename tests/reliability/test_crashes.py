"""kill -9 and SIGTERM while events flow: every event's effect exists exactly once afterwards."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import registry
from shared.db.plane import IssueDescriptionVersion
from shared.events.producer import EventProducer
from tests.helpers import dead_letters, idv_event, processed, seed, spawn_consumer, wait_until

SPEC = registry.consumer("issue-description-versions")


def produce_creations(settings, users, issues):  # type: ignore[no-untyped-def]
    """One is_creating event per issue: exactly one version row each when processed once.

    A second processing of the same event would amend that row (same user, within 10 minutes),
    which `assert_exactly_once` detects as updated_at != created_at.
    """
    events = [(str(i.id), idv_event(i, users[n % len(users)], creating=True)) for n, i in enumerate(issues)]
    EventProducer(settings).send_many(SPEC.topic, events)


def finish_with_a_fresh_consumer(settings, engine, n: int, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """Start a consumer, let it process everything, then stop it: SIGTERM must exit 0."""
    consumer = spawn_consumer(SPEC.name, settings)
    try:
        wait_until(lambda: processed(engine, SPEC.name) >= n, timeout_s=timeout_s, interval_s=0.5)
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=60) == 0


def assert_exactly_once(engine, n: int) -> None:  # type: ignore[no-untyped-def]
    V = IssueDescriptionVersion
    with Session(engine) as session:
        rows, issues, amended = session.execute(
            select(
                func.count(),
                func.count(V.issue_id.distinct()),
                func.count().filter(V.updated_at != V.created_at),
            )
        ).one()
    assert (rows, issues, amended) == (n, n, 0)
    assert processed(engine, SPEC.name) == n


# 2,000 events in CI (four kills still land mid-stream); the 10,000-event storm runs under `chaos`.
@pytest.mark.parametrize("n", [2_000, pytest.param(10_000, marks=pytest.mark.chaos)])
def test_kill_minus_9_at_random_points_while_events_flow(settings, engine, n):  # type: ignore[no-untyped-def]
    users, issues = seed(engine, n, n_users=5)
    produce_creations(settings, users, issues)
    rng = random.Random(2026)
    kills_mid_stream = 0
    for _ in range(4):
        consumer = spawn_consumer(SPEC.name, settings)
        before = processed(engine, SPEC.name)
        # Wait for this incarnation to make progress, then kill it at a random moment.
        wait_until(lambda b=before: processed(engine, SPEC.name) > b, timeout_s=90)
        time.sleep(rng.uniform(0.05, 1.5))
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        done = processed(engine, SPEC.name)
        kills_mid_stream += 0 < done < n
    assert kills_mid_stream >= 1, "no kill happened while events were still flowing"

    finish_with_a_fresh_consumer(settings, engine, n, timeout_s=300)
    assert_exactly_once(engine, n)
    assert dead_letters(settings, SPEC.topic) == []


def test_sigterm_mid_batch_exits_cleanly_with_offsets_committed(settings, engine):  # type: ignore[no-untyped-def]
    n = 1500
    users, issues = seed(engine, n, n_users=3)
    produce_creations(settings, users, issues)
    consumer = spawn_consumer(SPEC.name, settings)
    wait_until(lambda: processed(engine, SPEC.name) > 100, timeout_s=90)
    started = time.monotonic()
    consumer.send_signal(signal.SIGTERM)
    try:
        code = consumer.wait(timeout=40)
    except subprocess.TimeoutExpired:
        consumer.kill()
        raise
    assert code == 0, consumer.stderr.read().decode()[-2000:]
    assert time.monotonic() - started < 30  # inside the pod's termination grace period
    stopped_at = processed(engine, SPEC.name)

    # The committed offsets cover what was done: a restart redoes nothing (no duplicates) and
    # finishes the rest.
    finish_with_a_fresh_consumer(settings, engine, n, timeout_s=240)
    assert stopped_at < n, "the consumer finished before SIGTERM; nothing was mid-batch"
    assert_exactly_once(engine, n)
