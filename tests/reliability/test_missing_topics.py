"""A consumer started before its topics exist (a fresh install whose topics hook has not run yet,
or a broker that lost them) waits: alive, not ready, one clear log line, and consumes as soon as
the topics are created. Before, it exited 1 on UNKNOWN_TOPIC_OR_PART and crash-looped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from shared import registry
from shared.embedded.stack import env_for
from shared.events.producer import EventProducer
from shared.health import ready_file
from shared.kafka.topics import create_topics
from shared.settings import Settings
from tests.helpers import idv_event, processed, seed, spawn_consumer, wait_until

SPEC = registry.consumer("issue-description-versions")
WAITING_LINE = "waiting for topic(s) to be created"


def probe(settings: Settings, *args: str) -> bool:
    """`plane-workers healthcheck`, as the kubelet runs it."""
    command = [sys.executable, "-m", "shared.cli.main", "healthcheck", *args]
    return subprocess.run(command, env=env_for(settings), capture_output=True).returncode == 0


def test_consumer_waits_for_missing_topics_then_consumes(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The fixture created the topics of its own prefix; this prefix has none.
    bare = replace(settings, kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    (alice, _), issues = seed(engine, 3)
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        consumer = spawn_consumer(SPEC.name, bare, stderr=stderr)
        try:
            wait_until(lambda: WAITING_LINE in stderr_path.read_text(), 30)
            # The old runtime subscribed at once and died on UNKNOWN_TOPIC_OR_PART within about
            # a second (on tansu; on Kafka within topic.metadata.propagation.max.ms).
            time.sleep(8)
            assert consumer.poll() is None, stderr_path.read_text()[-3000:]
            assert probe(bare, "--max-age", "10"), "liveness must hold while waiting"
            assert not probe(bare, "--ready"), "a consumer without its topics is not ready"
            log = stderr_path.read_text()
            assert log.count(WAITING_LINE) == 1, log  # once, then at most once a minute
            assert f"{bare.topic(SPEC.topic)}" in log and "plane-workers topics create" in log

            create_topics(bare)
            producer = EventProducer(bare)
            producer.send_many(SPEC.topic, [(str(i.id), idv_event(i, alice, creating=True)) for i in issues])
            producer.close()
            wait_until(lambda: processed(engine, SPEC.name) == 3, 60)
            wait_until(lambda: probe(bare, "--ready"), 30, interval_s=0.5)
            assert Path(ready_file(bare.health_file)).exists()
        finally:
            consumer.send_signal(signal.SIGTERM)
            code = consumer.wait(60)
    assert code == 0, stderr_path.read_text()[-3000:]
    assert not Path(ready_file(bare.health_file)).exists(), "a stopped consumer is not ready"


def test_sigterm_while_waiting_exits_zero_at_once(settings: Settings, tmp_path: Path) -> None:
    bare = replace(settings, kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        consumer = spawn_consumer(SPEC.name, bare, stderr=stderr)
        try:
            wait_until(lambda: WAITING_LINE in stderr_path.read_text(), 30)
        finally:
            started = time.monotonic()
            consumer.send_signal(signal.SIGTERM)
            code = consumer.wait(30)
    assert code == 0, stderr_path.read_text()[-3000:]
    assert time.monotonic() - started < 5
