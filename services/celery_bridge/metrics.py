"""The bridge's Prometheus metrics, on the registry every consumer serves (shared.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import REGISTRY

MESSAGES = Counter(
    "plane_workers_celery_bridge_messages_total",
    "AMQP messages the bridge acked, by outcome (bridged: confirmed on Kafka; passed_through: "
    "re-published to the legacy queue; dead_lettered: confirmed on the DLQ topic; deferred: moved "
    "to the delay queue until nearer their eta). `task` is Plane's task name, `other` if unmapped.",
    ["queue", "task", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "plane_workers_celery_bridge_queue_messages",
    "Messages ready in an AMQP queue the bridge reads or feeds (the bridge's lag), by queue.",
    ["queue"],
    registry=REGISTRY,
)
HELD = Gauge(
    "plane_workers_celery_bridge_held_messages",
    "Messages held unacked until their eta (countdown) is due.",
    ["queue"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "plane_workers_celery_bridge_in_flight_messages",
    "Messages produced to Kafka and not yet confirmed (their AMQP ack waits).",
    ["queue"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "plane_workers_celery_bridge_reconnects_total",
    "Times the bridge lost its AMQP connection and connected again.",
    ["queue"],
    registry=REGISTRY,
)
PRODUCE_RETRIES = Counter(
    "plane_workers_celery_bridge_produce_retries_total",
    "Kafka writes the broker did not confirm, retried (the AMQP message stays unacked).",
    ["queue"],
    registry=REGISTRY,
)
BRIDGE_SECONDS = Histogram(
    "plane_workers_celery_bridge_seconds",
    "From receiving a message to its Kafka write confirmed (or legacy re-publish confirmed).",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
