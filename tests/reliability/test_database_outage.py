"""A database outage holds the consumer: no event spends a retry or is committed past, the
consumer is not ready (readiness probe) but stays alive (liveness probe: a restart would not bring
the database back), and everything is processed once the database is back."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine

from shared import registry
from shared.embedded.stack import env_for
from shared.events.producer import EventProducer
from shared.kafka.config import consumer_config
from shared.settings import Settings
from tests.helpers import (
    dead_letters,
    idv_event,
    processed,
    seed,
    set_database_up,
    spawn_consumer,
    wait_until,
)

SPEC = registry.consumer("issue-description-versions")


def offsets(settings: Settings, topic: str, group: str | None = None) -> dict[int, int]:
    """High watermarks of a logical topic's partitions, or `group`'s committed offsets.

    (tansu's high watermark counts a batch as one: good for "is it empty", not for counting.)"""
    physical = settings.topic(topic)
    consumer = Consumer(consumer_config(settings, group or f"probe-{uuid.uuid4().hex[:8]}"))
    try:
        parts = [
            TopicPartition(physical, p)
            for p in consumer.list_topics(physical, timeout=10).topics[physical].partitions
        ]
        if group is not None:
            return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)}
        return {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    finally:
        consumer.close()


def healthy(settings: Settings, max_age_s: float, *args: str) -> bool:
    """`plane-workers healthcheck`, as the liveness probe (or with --ready the readiness one) runs it."""
    probe = [sys.executable, "-m", "shared.cli.main", "healthcheck", "--max-age", str(max_age_s), *args]
    return subprocess.run(probe, env=env_for(settings), capture_output=True).returncode == 0


def test_an_outage_holds_without_retries_or_commits_and_the_consumer_is_not_ready(
    settings: Settings, engine: Engine, admin: Engine, tmp_path: Path
) -> None:
    users, issues = seed(engine, 40, n_users=1)
    producer = EventProducer(settings)
    before = [("one-partition", idv_event(i, users[0], creating=True)) for i in issues[:20]]
    during = [("one-partition", idv_event(i, users[0], creating=True)) for i in issues[20:]]
    producer.send_many(SPEC.topic, before)

    def committed() -> int:
        return sum(offsets(settings, SPEC.topic, settings.group(SPEC.group)).values())

    with (tmp_path / "stderr").open("wb") as stderr:
        consumer = spawn_consumer(SPEC.name, settings, stderr=stderr)
        try:
            wait_until(lambda: processed(engine, SPEC.name) == 20, 60)
            wait_until(lambda: committed() == 20, 30)
            assert healthy(settings, 5) and healthy(settings, 5, "--ready")
            set_database_up(admin, settings.database_url, up=False)
            try:
                producer.send_many(SPEC.topic, during)
                wait_until(lambda: not healthy(settings, 5, "--ready"), 30, interval_s=0.5)
                time.sleep(6)  # longer than the probes' max age below
                assert healthy(settings, 5), "liveness must hold while the consumer holds"
                assert not healthy(settings, 5, "--ready")
                assert consumer.poll() is None  # held, not dead
                assert committed() == 20  # nothing committed past the held event
                assert not any(sum(offsets(settings, t).values()) for t in SPEC.retry_topics)
            finally:
                set_database_up(admin, settings.database_url, up=True)
            wait_until(lambda: processed(engine, SPEC.name) == 40, 60)
            wait_until(lambda: healthy(settings, 2, "--ready"), 10, interval_s=0.5)
            assert not any(sum(offsets(settings, t).values()) for t in SPEC.retry_topics)
            assert not dead_letters(settings, SPEC.topic)
        finally:
            consumer.terminate()
            assert consumer.wait(60) == 0
    log = (tmp_path / "stderr").read_text()
    assert "dependency unavailable, holding the partitions: OperationalError" in log
    assert "dependency available again" in log
