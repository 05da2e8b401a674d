"""What the Celery bridge tests share: the machine's RabbitMQ (never restarted: each test has queues
of its own), a real Celery client as Plane configures it, the bridge in a thread or a process, and
a reader of what reached Kafka."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from celery import Celery
from confluent_kafka import Consumer, TopicPartition
from kombu import Connection

from services.celery_bridge.bridge import Bridge
from shared.embedded.stack import env_for
from shared.settings import Settings

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
AMQP_URL = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}//"


def rabbitmq_up() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=1):
        return True
    return False


needs_rabbitmq = pytest.mark.skipif(
    not rabbitmq_up(), reason=f"no RabbitMQ on {AMQP_HOST}:{AMQP_PORT} (the build machine runs one)"
)


def bridge_settings(settings: Settings, amqp_url: str = AMQP_URL, **overrides: Any) -> Settings:
    """`settings` with queues of this test's own on the shared RabbitMQ."""
    tag = uuid.uuid4().hex[:10]
    return replace(
        settings,
        amqp_url=amqp_url,
        celery_bridge_queue=f"celery-t{tag}",
        celery_bridge_legacy_queue=f"celery-legacy-t{tag}",
        **overrides,
    )


def celery_client(settings: Settings, amqp_url: str = AMQP_URL) -> Celery:
    """Plane's Celery settings (JSON, no result backend) sending to this test's queue."""
    app = Celery("plane", broker=amqp_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["application/json"],
        task_default_queue=settings.celery_bridge_queue,
        broker_connection_retry_on_startup=True,
    )
    return app


def delete_queues(s: Settings) -> None:
    names = [s.celery_bridge_queue, s.celery_bridge_legacy_queue]
    names.append(f"{s.celery_bridge_queue}.bridge-delay.{max(int(s.celery_bridge_hold_max_s), 1)}s")
    with Connection(AMQP_URL) as conn:
        for name in names:
            with contextlib.suppress(Exception):
                conn.default_channel.queue_delete(name)
            with contextlib.suppress(Exception):
                conn.default_channel.exchange_delete(name)


@contextlib.contextmanager
def bridge_thread(s: Settings) -> Iterator[Bridge]:
    stop = threading.Event()
    bridge = Bridge(s, stop=stop)
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    try:
        yield bridge
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "bridge did not stop"


def spawn_bridge(s: Settings, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    """The bridge as its own process, as its pod runs it."""
    env = env_for(s) | {
        "LOG_LEVEL": "WARNING",
        "AMQP_URL": s.amqp_url,
        "CELERY_BRIDGE_QUEUE": s.celery_bridge_queue,
        "CELERY_BRIDGE_LEGACY_QUEUE": s.celery_bridge_legacy_queue,
        "METRICS_PORT": str(metrics_port),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "celery", "bridge"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@dataclass
class Record:
    key: str | None
    value: bytes
    headers: dict[str, bytes]


def read_topic(s: Settings, logical: str, count: int, timeout_s: float = 60) -> list[Record]:
    """At least `count` records of a topic (from the start, every partition), or fail."""
    topic = s.topic(logical)
    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka_bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.2):
                if msg.error() is None:
                    key = msg.key()
                    found.append(
                        Record(key.decode() if key else None, msg.value(), dict(msg.headers() or []))
                    )
        assert len(found) >= count, f"{topic}: {len(found)} of {count} records within {timeout_s}s"
        return found
    finally:
        consumer.close()


def queue_messages(name: str, count: int, timeout_s: float = 30) -> list[Any]:
    """`count` messages taken (and acked) from an AMQP queue, or fail."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    with Connection(AMQP_URL) as conn:
        queue = conn.SimpleQueue(name, no_ack=False)
        try:
            while len(got) < count and time.monotonic() < deadline:
                try:
                    msg = queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                got.append(msg)
                msg.ack()
        finally:
            queue.close()
    assert len(got) >= count, f"{name}: {len(got)} of {count} messages within {timeout_s}s"
    return got
