"""The metrics the PrometheusRule and the dashboard read, produced for real: arroyo's own metrics
through the bridge, process metrics on a consumer's registry, consumer lag from librdkafka's
statistics, and the disabled-webhook counter."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from arroyo.backends.kafka import KafkaConsumer
from arroyo.backends.local.backend import LocalBroker
from arroyo.backends.local.storages.memory import MemoryMessageStorage
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import CommitOffsets, ProcessingStrategy, ProcessingStrategyFactory, RunTask
from arroyo.types import Commit, Partition, Topic
from arroyo.utils import metrics as arroyo_backend
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from shared import arroyo_metrics, metrics
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.stack import EMBEDDED_FETCH_WAIT_MAX_MS, EMBEDDED_SESSION_TIMEOUT_MS
from shared.kafka import lag_metrics
from tests.helpers import consumer_thread, wait_until

# The webhook tests' world (Plane rows, a workspace owner) and settings, as fixtures here too.
from tests.integration.conftest import hook_settings, world  # noqa: F401
from tests.integration.http_servers import HttpServer, send
from tests.integration.test_webhooks import DELIVERIES
from tests.integration.webhook_world import deliveries_for, produce


@pytest.fixture
def arroyo_reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """arroyo's process-wide backend and the bridge's, put back as they were after the test."""
    monkeypatch.setattr(arroyo_backend, "_metrics_backend", None)
    monkeypatch.setattr(arroyo_metrics, "_installed", None)
    yield


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


class Factory(ProcessingStrategyFactory[int]):
    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    def create_with_partitions(self, commit: Commit, partitions: object) -> ProcessingStrategy[int]:
        def handle(message):  # type: ignore[no-untyped-def]
            self.seen.append(message.payload)
            return message.payload

        return RunTask(handle, CommitOffsets(commit))


def test_arroyo_metrics_reach_prometheus_through_the_bridge(arroyo_reset):
    registry = CollectorRegistry()
    arroyo_backend.configure_metrics(arroyo_metrics.PrometheusMetrics(registry))
    broker: LocalBroker[int] = LocalBroker(MemoryMessageStorage())
    topic = Topic("events")
    broker.create_topic(topic, 1)
    seen: list[int] = []
    processor = StreamProcessor(broker.get_consumer("group"), topic, Factory(seen))
    producer = broker.get_producer()
    for n in range(5):
        producer.produce(Partition(topic, 0), n).result()
    thread = threading.Thread(target=processor.run)
    thread.start()
    deadline = time.monotonic() + 10
    while len(seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.1)  # arroyo sums its loop timings and reports them once a second
    processor.signal_shutdown()
    thread.join(10)
    assert seen == [0, 1, 2, 3, 4]

    assert value(registry, "arroyo_consumer_partitions_assigned_total") == 1
    assert value(registry, "arroyo_consumer_run_total") > 0
    assert value(registry, "arroyo_consumer_poll_seconds_total") > 0
    assert value(registry, "arroyo_consumer_processing_seconds_total") >= 0
    latency = value(registry, "arroyo_consumer_latency_seconds_count")
    assert latency is not None and latency >= 1
    callback = "on_partitions_assigned"
    assert value(registry, "arroyo_consumer_run_callback_seconds_count", callback_name=callback) == 1
    text = generate_latest(registry).decode()
    assert "# TYPE arroyo_consumer_poll_seconds_total counter" in text
    assert "# TYPE arroyo_consumer_latency_seconds histogram" in text


def test_bridge_names_labels_and_kinds():
    registry = CollectorRegistry()
    bridge = arroyo_metrics.PrometheusMetrics(registry)
    bridge.increment("arroyo.consumer.commit_status", tags={"status": "ok"})
    bridge.increment("arroyo.consumer.commit_status")  # a tag missing later: ""
    bridge.increment("arroyo.consumer.commit_status", tags={"status": "ok", "extra": "dropped"})
    bridge.gauge("arroyo.producer.librdkafka.broker_state", 1, tags={"state": "UP", "broker-id": "1"})
    bridge.timing("arroyo.strategies.run_task_with_multiprocessing.batch.size.msg", 12)
    bridge.timing("arroyo.consumer.backpressure.time", 0.5)
    bridge.timing("arroyo.consumer.backpressure.time", 0.25)
    bridge.increment("sigchld.detected")
    assert value(registry, "arroyo_consumer_commit_status_total", status="ok") == 2
    assert value(registry, "arroyo_consumer_commit_status_total", status="") == 1
    gauge = value(registry, "arroyo_producer_librdkafka_broker_state", broker_id="1", state="UP")
    assert gauge == 1
    assert value(registry, "arroyo_strategies_run_task_with_multiprocessing_batch_size_messages_sum") == 12
    assert value(registry, "arroyo_consumer_backpressure_seconds_total") == 0.75
    assert value(registry, "arroyo_sigchld_detected_total") == 1
    # A name reported as another kind than the first time is dropped, not a crash.
    bridge.gauge("arroyo.custom.size", 1)
    bridge.timing("arroyo.custom.size", 2)
    assert value(registry, "arroyo_custom_size") == 1
    assert value(registry, "arroyo_custom_size_count") is None


def test_serve_turns_on_process_metrics_and_arroyo(arroyo_reset, monkeypatch):
    monkeypatch.setattr(metrics, "_process_collectors", [])
    try:
        metrics.serve(0)
        metrics.serve(0)  # once per process, however often it is called
        text = generate_latest(metrics.REGISTRY).decode()
        assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text
        assert "python_info" in text and "python_gc_objects_collected_total" in text
        assert arroyo_backend.get_metrics() is arroyo_metrics._installed is not None
    finally:
        for collector in metrics._process_collectors:
            metrics.REGISTRY.unregister(collector)


def stats(name: str, partitions: dict[str, dict[str, dict]]) -> dict:
    return {"name": name, "type": "consumer", "topics": {t: {"partitions": p} for t, p in partitions.items()}}


def test_lag_from_statistics_follows_the_assignment():
    registry = CollectorRegistry()
    gauge = Gauge("lag", "lag", ["group", "topic", "partition"], registry=registry)
    report = stats(
        "c#1",
        {
            "t": {
                "0": {"consumer_lag": 7, "fetch_state": "active"},
                "1": {"consumer_lag": -1, "fetch_state": "active"},  # nothing committed yet
                "2": {"consumer_lag": 3, "fetch_state": "none"},  # not (or no longer) assigned
                "-1": {"consumer_lag": -1, "fetch_state": "none"},  # librdkafka's UA partition
            },
            "u": {"0": {"consumer_lag": 0, "fetch_state": "active"}},
        },
    )
    assert lag_metrics.record("g", report, gauge) == {("g", "t", "0"): 7, ("g", "u", "0"): 0}
    assert value(registry, "lag", group="g", topic="t", partition="0") == 7
    assert value(registry, "lag", group="g", topic="t", partition="1") is None
    # After a rebalance: t/0 went to another member, t/1 came with a committed offset.
    moved = stats("c#1", {"t": {"1": {"consumer_lag": 2, "fetch_state": "active"}}})
    lag_metrics.record("g", moved, gauge)
    assert value(registry, "lag", group="g", topic="t", partition="0") is None
    assert value(registry, "lag", group="g", topic="u", partition="0") is None
    assert value(registry, "lag", group="g", topic="t", partition="1") == 2
    # Another client of the process (a retry tier) keeps its own partitions.
    lag_metrics.record("g-retry-0", stats("c#2", {"t.retry.0": {"0": {"consumer_lag": 5}}}), gauge)
    assert value(registry, "lag", group="g", topic="t", partition="1") == 2
    # A broken report is logged, never raised into librdkafka's poll.
    lag_metrics.stats_callback("g", gauge)("not json")


def test_lag_of_a_real_consumer_on_a_broker(kafka: EmbeddedKafka):
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for n in range(14):
        producer.produce(topic, b"x", partition=0 if n < 10 else 1)
    producer.flush(30)
    registry = CollectorRegistry()
    gauge = Gauge("lag", "lag", ["group", "topic", "partition"], registry=registry)
    group = f"g-{uuid.uuid4().hex[:8]}"
    config = lag_metrics.with_lag_stats(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "session.timeout.ms": EMBEDDED_SESSION_TIMEOUT_MS,
            "fetch.wait.max.ms": EMBEDDED_FETCH_WAIT_MAX_MS,
            "statistics.interval.ms": 200,
        },
        gauge,
    )
    assert config["statistics.interval.ms"] == 200 and callable(config["stats_cb"])
    consumer = KafkaConsumer(config)  # arroyo's, as the runtime uses it
    try:
        consumer.subscribe([Topic(topic)])
        received = 0
        deadline = time.monotonic() + 60
        while received < 14 and time.monotonic() < deadline:
            received += consumer.poll(0.2) is not None
        assert received == 14
        consumer.stage_offsets({Partition(Topic(topic), 0): 6, Partition(Topic(topic), 1): 4})
        consumer.commit_offsets()

        def lags() -> dict[str, float]:
            return {s.labels["partition"]: s.value for f in registry.collect() for s in f.samples}

        deadline = time.monotonic() + 20
        while lags() != {"0": 4.0, "1": 0.0} and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert lags() == {"0": 4.0, "1": 0.0}, "10 - 6 behind on partition 0, none on 1"
        assert {s.labels["group"] for f in registry.collect() for s in f.samples} == {group}
    finally:
        consumer.close()


def test_the_process_lag_gauge_defaults_to_the_consumers_registry():
    config = lag_metrics.with_lag_stats({"group.id": "g", "statistics.interval.ms": 0})
    assert config["statistics.interval.ms"] == lag_metrics.STATS_INTERVAL_MS
    assert metrics.CONSUMER_LAG._name == "plane_workers_consumer_lag_messages"
    chained: list[str] = []
    config = lag_metrics.with_lag_stats({"group.id": "g", "stats_cb": chained.append})
    config["stats_cb"]('{"name": "c", "topics": {}}')
    assert chained == ['{"name": "c", "topics": {}}']


def test_a_410_counts_one_disabled_webhook(hook_settings, world):  # noqa: F811
    receiver = HttpServer()
    receiver.routes["/gone"] = lambda r: send(r, 410, b"gone")
    gone, _ = world.add_webhook(receiver.url("/gone"))
    before = value(metrics.REGISTRY, "plane_workers_webhook_endpoints_disabled_total")
    produce(hook_settings, "webhook-deliveries", deliveries_for(world, gone, 2), str(gone))
    try:
        with consumer_thread(DELIVERIES, replace(hook_settings, webhook_time_scale=1.0)):
            wait_until(lambda: world.webhook(gone)["is_active"] is False, 60)
            wait_until(lambda: world.deliveries(gone), 30)
    finally:
        receiver.close()
    # Counted once, after the transaction that disabled it committed.
    assert value(metrics.REGISTRY, "plane_workers_webhook_endpoints_disabled_total") == before + 1
