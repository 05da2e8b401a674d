"""The broker goes away: the consumer, idle or busy, exits 1 within a minute with one error line
naming the cause (not a hot loop, not a bare `processor failed: `), and Kubernetes restarts it."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from shared import registry
from shared.embedded.kafka import EmbeddedKafka
from shared.events.producer import EventProducer
from shared.kafka.topics import create_topics
from shared.settings import Settings
from tests.helpers import idv_event, processed, seed, spawn_consumer, wait_until

SPEC = registry.consumer("issue-description-versions")


def errors_logged(path: Path) -> list[str]:
    """Our JSON log lines at ERROR (librdkafka's own lines on stderr are not JSON)."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            entry = json.loads(raw)
            if entry["level"] == "error":
                lines.append(entry["message"])
    return lines


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_the_consumer_exits_with_a_clear_line_when_the_broker_is_gone(
    settings: Settings, engine, tmp_path: Path, busy: bool
) -> None:
    broker = EmbeddedKafka(tmp_path / "kafka")
    broker.start()
    try:
        # 8 s, not the production 30, of a broker gone before the consumer gives up.
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap, kafka_broker_down_exit_s=8.0)
        create_topics(settings)
        users, issues = seed(engine, 2000 if busy else 1, n_users=1)
        events = [(str(i.id), idv_event(i, users[0], creating=True)) for i in issues]
        EventProducer(settings).send_many(SPEC.topic, events)
        stderr_path = tmp_path / "stderr"
        with stderr_path.open("wb") as stderr:
            consumer = spawn_consumer(SPEC.name, settings, stderr=stderr)
            try:
                # Busy: killed while it processes and commits. Idle: everything done and committed.
                wait_until(lambda: processed(engine, SPEC.name) >= (200 if busy else 1), 60)
                if not busy:
                    time.sleep(3)
                process = psutil.Process(consumer.pid)
                broker.kill()
                killed_at = time.monotonic()
                cpu_before = sum(process.cpu_times()[:2])
                # Wait while sampling its CPU time: no hot loop while it waits to give up.
                while consumer.poll() is None and time.monotonic() - killed_at < 45:
                    cpu = sum(process.cpu_times()[:2]) - cpu_before
                    time.sleep(0.5)
                code = consumer.poll()
            finally:
                if consumer.poll() is None:
                    consumer.kill()
                    consumer.wait()
        elapsed = time.monotonic() - killed_at
        assert code == 1, f"still running {elapsed:.0f} s after the broker was killed"
        assert 8 <= elapsed < 30, (
            f"exited {elapsed:.0f} s after the broker was killed (KAFKA_BROKER_DOWN_EXIT_S 8)"
        )
        assert cpu < 0.25 * elapsed, f"{cpu:.1f} s CPU in {elapsed:.0f} s"
        if busy:
            assert processed(engine, SPEC.name) < 2000, "it finished before the broker was killed"
        errors = errors_logged(stderr_path)
        # One line says what happened, the class and librdkafka's error included; none ends at
        # "failed: " with nothing after it.
        ours = [e for e in errors if e.startswith(("processor for ", "no broker answered for "))]
        assert ours and "KafkaException: _" in ours[0], errors
        assert not [e for e in errors if e.rstrip().endswith("failed:")], errors
    finally:
        broker.stop()
