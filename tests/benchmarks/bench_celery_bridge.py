"""Bridged messages/s and the latency the bridge adds: Celery `.delay()` to a confirmed Kafka write.

One `plane-workers celery bridge` process (as its pod runs it) reads queues of this run's own on
the machine's RabbitMQ and writes to the embedded broker. A Celery client calls a stub of Plane's
`issue_description_version_task` (Plane's name and signature) with `.delay()`; each call carries
its send time inside `updated_issue` (a JSON string the event keeps), and a Kafka reader notes
when each event arrives. Throughput: N calls as fast as the client sends, from the first send to
the last event read; and a backlog of N sent while the bridge is paused (SIGSTOP), from its
SIGCONT to the last event read (the bridge's own rate). Latency: one call at a time, `.delay()`
to the event read (p50/p99), and the same figures for the records of the throughput run (latency
under load). Prints JSON.

No baseline: Plane has no bridge; what a Celery worker does with these tasks is measured by the
benchmarks of each consumer. `limit` is the rate the client alone sends at.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
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
    """Reads the topic in a thread; per event, when it arrived and when it was sent."""

    def __init__(self, s: Settings) -> None:
        topic = s.topic(TOPIC)
        self._consumer = Consumer(
            {
                "bootstrap.servers": s.kafka_bootstrap_servers,
                "group.id": uuid.uuid4().hex,
                "fetch.wait.max.ms": 1,
            }
        )
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        self.latencies: list[float] = []
        self.last_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # poll, not consume: consume(n) waits out its timeout unless n arrive, which would
            # be counted as latency.
            msg = self._consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            now = time.time()
            data = json.loads(msg.value())["data"]
            self.latencies.append(now - json.loads(data["updated_issue"])["sent"])
            self.last_at = now

    def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.latencies) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(self.latencies)} of {count} events within {timeout_s}s")
            time.sleep(0.0005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


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
        bridge = spawn_bridge(s)
        try:
            _call(task, issues[0], user)  # warm-up: connection, topic metadata
            arrivals.wait_for(1, 120)

            # Latency, one at a time.
            for i in range(samples):
                _call(task, issues[i % len(issues)], user)
                arrivals.wait_for(2 + i, 30)
            idle = arrivals.latencies[1:]

            # Throughput.
            before = len(arrivals.latencies)
            start = time.time()
            for i in range(n):
                _call(task, issues[i % len(issues)], user)
            sent_s = time.time() - start
            arrivals.wait_for(before + n, 900)
            elapsed = arrivals.last_at - start
            loaded = arrivals.latencies[before:]

            # Backlog: the bridge paused (SIGSTOP) while N are sent, then let go: its own rate,
            # without the client's send rate in front of it.
            before = len(arrivals.latencies)
            bridge.send_signal(signal.SIGSTOP)
            try:
                for i in range(n):
                    _call(task, issues[i % len(issues)], user)
            finally:
                resumed = time.time()
                bridge.send_signal(signal.SIGCONT)
            arrivals.wait_for(before + n, 900)
            backlog_s = arrivals.last_at - resumed
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
        "measured": "Celery .delay() to the event read back from Kafka (write confirmed, then fetched)",
        "bridge_processes": 1,
        "prefetch": s.celery_bridge_prefetch,
        "cpu_count": os.cpu_count(),
        "stack": "RabbitMQ (machine's), embedded tansu broker",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:3])
