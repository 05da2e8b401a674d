"""The loops the conformance suite runs on every registry entry: consumers as real processes,
killed, signalled and restarted, and the effects their samples read back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from confluent_kafka import Consumer, TopicPartition

from shared import registry
from shared.conformance import ConsumerSampler, ConsumerSamples, SampleWorld
from shared.embedded.stack import env_for
from shared.events import Event
from shared.events.producer import EventProducer
from shared.kafka.config import consumer_config
from shared.registry import ConsumerSpec
from shared.settings import Settings

GRACE_S = 30.0  # the pod's termination grace period leaves the runtime this much


def samples_of(spec: ConsumerSpec, world: SampleWorld) -> ConsumerSamples:
    assert spec.samples, f"consumer {spec.name} has no samples"
    return cast(ConsumerSampler, registry.load(spec.samples))(world)


def produce(settings: Settings, topic: str, events: Iterable[tuple[str | None, Event]]) -> None:
    producer = EventProducer(settings)
    producer.send_many(topic, events)
    producer.close()


class Incarnation:
    """One consumer process, exactly as a pod runs it, with a health file of its own."""

    def __init__(self, spec: ConsumerSpec, settings: Settings, env: dict[str, str], log_dir: Path) -> None:
        self.spec = spec
        self.health = log_dir / f"health-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"{spec.name}-{uuid.uuid4().hex[:8]}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.main", "consume", spec.name],
            env=env_for(settings) | {"LOG_LEVEL": "WARNING", "HEALTH_FILE": str(self.health)} | env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def wait_assigned(self, timeout_s: float = 60.0) -> None:
        """Until the loop runs with partitions (arroyo's Healthcheck touches the file on poll)."""
        deadline = time.monotonic() + timeout_s
        while not self.health.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.spec.name} exited {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.spec.name} got no partitions in {timeout_s}s: {self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the exit took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=GRACE_S + 15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.spec.name} ignored SIGTERM: {self.log()}") from None
        return code, time.monotonic() - started

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, tail: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-tail:].decode("utf-8", "replace")

    def close(self) -> None:
        if self.alive():
            self.kill()
        self._log.close()


def log_dir() -> Path:
    # Not pytest's tmp_path: a crash storm leaves logs worth reading after a failure.
    return Path(tempfile.mkdtemp(prefix="conformance-"))


def lag(settings: Settings, spec: ConsumerSpec) -> int:
    """Messages on the main topic past the group's committed offsets."""
    topic = settings.topic(spec.topic)
    probe = Consumer(consumer_config(settings, settings.group(spec.group)))
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        behind = 0
        for tp in committed:
            _low, high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            behind += high - max(tp.offset, 0)
        return behind
    finally:
        probe.close()


def settle(samples: ConsumerSamples, timeout_s: float, interval_s: float = 0.25) -> object:
    """Wait until the effects equal what the samples expect; the effects last seen either way."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = samples.effects()
        if seen == samples.expected or time.monotonic() > deadline:
            return seen
        time.sleep(interval_s)


def difference(seen: object, expected: object) -> str:
    """A short account of how effects differ, for assertion messages."""
    if isinstance(seen, list) and isinstance(expected, list):
        missing = [e for e in expected if e not in seen]
        extra = [s for s in seen if s not in expected]
        return f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})"
    return f"seen {seen!r:.300}, expected {expected!r:.300}"


def cores() -> int:
    return os.cpu_count() or 1
