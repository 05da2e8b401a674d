"""Bridged messages/s and the latency the bridge adds: Celery `.delay()` to a confirmed Kafka write.

One `plane-workers celery bridge` process (as its pod runs it) reads queues of this run's own on
the machine's RabbitMQ and writes to the embedded broker. A Celery client calls a stub of Plane's
`issue_description_version_task` (Plane's name and signature) with `.delay()`; each call carries
its send time inside `updated_issue` (a JSON string the event keeps).

Throughput: N calls as fast as the client sends, from the first send until the bridge's own
counter (its /metrics: messages acked once Kafka confirmed their write) has all N; and a backlog
of N sent while the bridge is paused (SIGSTOP), from its SIGCONT to the last one confirmed (the
bridge's own rate, without the client in front of it). Latency: a Kafka reader notes when each
event arrives: one call at a time, `.delay()` to the event read (p50/p99), and the same for the
records of the throughput run that the tailing reader saw (latency under load). Prints JSON.

No baseline: Plane has no bridge; what a Celery worker does with these tasks is measured by the
benchmarks of each consumer. `limit` is the rate the client alone sends at.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

from celery import Celery
from confluent_kafka import Consumer, TopicPartition

from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack
from shared.settings import Settings
from tests.benchmarks.emit import emit, summary
from tests.integration.celery_bridge_world import (
    AMQP_URL,
    celery_client,
    delete_queues,
    rabbitmq_up,
    spawn_bridge,
)

TASK = "plane.bgtasks.issue_description_version_task.issue_description_version_task"
TOPIC = "issue-description-versions"


class Arrivals:
    """Reads the topic in a thread; per event id, when it arrived and when it was sent.

    The embedded broker can hand a tailing reader a later batch of a partition before an earlier
    one it is still appending, and the reader then never sees the earlier one. So when the count
    stalls, the topic is read again from the start and what the tail missed is counted then
    (`rescued`: those are in the throughput, not in the latency figures).
    """

    def __init__(self, s: Settings) -> None:
        self._s = s
        self._consumer = self._reader(fetch_wait_ms=1)
        self.arrived: dict[str, float] = {}
        self.latencies: list[float] = []
        self.rescued = 0
        self.last_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _reader(self, fetch_wait_ms: int) -> Consumer:
        topic = self._s.topic(TOPIC)
        consumer = Consumer(
            {
                "bootstrap.servers": self._s.kafka_bootstrap_servers,
                "group.id": uuid.uuid4().hex,
                "fetch.wait.max.ms": fetch_wait_ms,
            }
        )
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        return consumer

    def _run(self) -> None:
        while not self._stop.is_set():
            # poll, not consume: consume(n) waits out its timeout unless n arrive, which would
            # be counted as latency.
            msg = self._consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            now = time.time()
            event = json.loads(msg.value())
            with self._lock:
                if event["id"] in self.arrived:
                    continue
                self.arrived[event["id"]] = now
                self.latencies.append(now - json.loads(event["data"]["updated_issue"])["sent"])
                self.last_at = now

    def _rescan(self) -> None:
        reader = self._reader(fetch_wait_ms=10)
        idle = 0
        try:
            while idle < 10:
                batch = reader.consume(1000, timeout=0.2)
                idle = 0 if batch else idle + 1
                now = time.time()
                with self._lock:
                    for msg in batch:
                        if msg.error() is None:
                            event_id = json.loads(msg.value())["id"]
                            if event_id not in self.arrived:
                                self.arrived[event_id] = now
                                self.rescued += 1
                                self.last_at = max(self.last_at, now)
        finally:
            reader.close()

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        seen, progress_at = len(self.arrived), time.monotonic()
        while len(self.arrived) < count:
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"{len(self.arrived)} of {count} events within {timeout_s}s")
            if len(self.arrived) != seen:
                seen, progress_at = len(self.arrived), now
            elif now - progress_at > 3:
                self._rescan()
                progress_at = time.monotonic()
            time.sleep(0.0005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bridged:
    """The bridge's own count of messages acked after Kafka confirmed them (its /metrics)."""

    def __init__(self, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/metrics"

    def count(self) -> float:
        try:
            with urllib.request.urlopen(self._url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("plane_workers_celery_bridge_messages_total{") and 'outcome="bridged"' in line
        )

    def wait_for(self, count: int, timeout_s: float) -> float:
        """Until `count` are bridged; the time (Unix) it was first seen."""
        deadline = time.monotonic() + timeout_s
        while self.count() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.count():.0f} of {count} bridged within {timeout_s}s")
            time.sleep(0.02)
        return time.time()


def _stub(app: Celery):  # type: ignore[no-untyped-def]
    @app.task(name=TASK)
    def issue_description_version_task(updated_issue, issue_id, user_id, is_creating=False):  # type: ignore[no-untyped-def]
        raise RuntimeError("a stub: the bridge, not a worker, takes these")

    return issue_description_version_task


def _call(task, issue: uuid.UUID, user: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    task.delay(updated_issue=json.dumps({"sent": time.time()}), issue_id=issue, user_id=user)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000, 2)


def main(n: int = 10_000, samples: int = 200) -> dict[str, object]:
    if not rabbitmq_up():
        raise SystemExit(f"no RabbitMQ at {AMQP_URL}: the bridge benchmark needs one")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    tag = uuid.uuid4().hex[:8]
    with EmbeddedStack(Settings.from_env(), state) as stack:
        s = replace(
            stack.settings,
            metrics_port=0,
            amqp_url=AMQP_URL,
            celery_bridge_queue=f"celery-bench-{tag}",
            celery_bridge_legacy_queue=f"celery-legacy-bench-{tag}",
        )
        prepare(s)
        app = celery_client(s)
        task = _stub(app)
        issues = [uuid.uuid4() for _ in range(64)]
        user = uuid.uuid4()
        arrivals = Arrivals(s)
        port = _free_port()
        bridged = Bridged(port)
        bridge = spawn_bridge(s, metrics_port=port)
        try:
            _call(task, issues[0], user)  # warm-up: connection, topic metadata
            arrivals.wait_for(1, 120)

            # Latency, one at a time.
            for i in range(samples):
                _call(task, issues[i % len(issues)], user)
                arrivals.wait_for(2 + i, 30)
            idle = arrivals.latencies[1:]

            # Throughput.
            first_latency = len(arrivals.latencies)
            done = bridged.count()
            start = time.time()
            for i in range(n):
                _call(task, issues[i % len(issues)], user)
            sent_s = time.time() - start
            elapsed = bridged.wait_for(done + n, 900) - start
            loaded = arrivals.latencies[first_latency:]

            # Backlog: the bridge paused (SIGSTOP) while N are sent, then let go: its own rate,
            # without the client's send rate in front of it.
            done = bridged.count()
            bridge.send_signal(signal.SIGSTOP)
            try:
                for i in range(n):
                    _call(task, issues[i % len(issues)], user)
            finally:
                resumed = time.time()
                bridge.send_signal(signal.SIGCONT)
            backlog_s = bridged.wait_for(done + n, 900) - resumed
        finally:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(timeout=60)
            arrivals.close()
            delete_queues(s)
    rate = round(n / elapsed, 1)
    backlog_rate = round(n / backlog_s, 1)
    return {
        "benchmark": "celery-bridge",
        **summary(rate, None, "messages/s", limit=round(n / sent_s, 1)),
        "messages": n,
        "seconds": round(elapsed, 3),
        "client_send_seconds": round(sent_s, 3),
        # The bridge's own ceiling here: a queued backlog drained into Kafka.
        "backlog_messages_per_s": backlog_rate,
        "latency_idle_ms": {"p50": _ms(idle, 0.5), "p99": _ms(idle, 0.99), "samples": len(idle)},
        "latency_loaded_ms": {
            "p50": _ms(loaded, 0.5),
            "p99": _ms(loaded, 0.99),
            "mean": round(statistics.fmean(loaded) * 1000, 2),
        },
        "measured": "throughput: first .delay() to the bridge's count of Kafka-confirmed acks; "
        "latency: .delay() to the event read back from Kafka by a tailing reader",
        # Found by re-reading the topic, not by the tailing reader (see Arrivals): not in latency.
        "rescued_from_rescan": arrivals.rescued,
        "bridge_processes": 1,
        "prefetch": s.celery_bridge_prefetch,
        "cpu_count": os.cpu_count(),
        "stack": "RabbitMQ (machine's), embedded tansu broker",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:3])
