"""The loops the conformance suite runs on every registry entry: consumers as real processes,
killed, signalled and restarted, and the effects their samples read back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import cast

from confluent_kafka import Consumer, TopicPartition

from shared import registry
from shared.conformance import ConsumerSampler, ConsumerSamples, SampleWorld
from shared.embedded.stack import env_for
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.health import ready_file
from shared.kafka.config import consumer_config
from shared.registry import ConsumerSpec
from shared.settings import Settings
from shared.testing.topics import partition_ends

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

    @property
    def ready(self) -> Path:
        """The readiness file (shared/health.py): present while the consumer is ready."""
        return Path(ready_file(self.health))

    def wait_assigned(self, timeout_s: float = 60.0) -> None:
        """Until the consumer is ready: its topics exist and the group assigned its partitions."""
        deadline = time.monotonic() + timeout_s
        while not self.ready.exists():
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
    ends = partition_ends(settings, topic)
    probe = Consumer(consumer_config(settings, settings.group(spec.group)))
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    finally:
        probe.close()
    return sum(ends[tp.partition] - max(tp.offset, 0) for tp in committed)


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


class Feeder(threading.Thread):
    """Produces events in small batches spread over `over_s`, so that whenever a fault lands
    there is work in flight."""

    def __init__(
        self, settings: Settings, topic: str, events: Sequence[tuple[str | None, Event]], over_s: float
    ):
        super().__init__(daemon=True)
        self._settings, self._topic, self._events, self._over_s = settings, topic, list(events), over_s
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            producer = EventProducer(self._settings)
            batches = max(1, int(self._over_s / 0.05))
            step = max(1, -(-len(self._events) // batches))
            for start in range(0, len(self._events), step):
                producer.send_many(self._topic, self._events[start : start + step])
                time.sleep(0.05)
            producer.close()
        except BaseException as exc:
            self.errors.append(exc)

    def finish(self) -> None:
        self.join(timeout=self._over_s + 60)
        assert not self.is_alive() and not self.errors, f"feeding events failed: {self.errors}"


# A valid envelope of a type some other consumer takes: data that passes that type's schema.
FOREIGN_EVENTS = {
    "plane.issue_description_version.v1": lambda: {
        "issue_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
    },
    "plane.webhook_activity.v1": lambda: {
        "event": "issue",
        "verb": "updated",
        "actor_id": str(uuid.uuid4()),
        "slug": "x",
        "event_id": str(uuid.uuid4()),
    },
}


def poison(spec: ConsumerSpec, key: bytes, valid: Event, max_bytes: int) -> dict[str, tuple[bytes, bytes]]:
    """Bad messages of every kind, `kind -> (key, value)`; each must be dead-lettered at once."""
    own = valid.to_dict()
    foreign_type = next(t for t in FOREIGN_EVENTS if t not in spec.event_types)
    padding = "x" * (max_bytes + 1024)
    return {
        "not JSON": (key, b'{"specversion": "1.0", '),
        "unknown type": (key, _json(own | {"type": "plane.nothing_like_this.v1"})),
        "unknown version": (key, _json(own | {"type": own["type"].rsplit(".", 1)[0] + ".v99"})),
        "schema violation": (key, _json(own | {"data": {"__not_a_field__": True}})),
        "another consumer's type": (key, new_event(foreign_type, FOREIGN_EVENTS[foreign_type]()).to_json()),
        "oversize": (key, _json(own | {"padding": padding})),
        "over twice the size limit": (key, _json(own | {"padding": padding * 2 + "x" * 300_000})),
        "huge key": (b"k" * 200_000, b"not an event either"),
    }


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def reset_to_beginning(settings: Settings, spec: ConsumerSpec) -> None:
    """What an operator's `kafka-consumer-groups --reset-offsets --to-earliest` does (group empty)."""
    topic = settings.topic(spec.topic)
    probe = Consumer(consumer_config(settings, settings.group(spec.group)))
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        done = probe.commit(offsets=[TopicPartition(topic, p, 0) for p in partitions], asynchronous=False)
        failed = [tp for tp in done or () if tp.error is not None]
        assert not failed, f"offset reset refused: {failed}"
    finally:
        probe.close()


def retried(settings: Settings, spec: ConsumerSpec) -> int:
    """Messages ever sent to the consumer's retry tiers."""
    return sum(sum(partition_ends(settings, settings.topic(t)).values()) for t in spec.retry_topics)
