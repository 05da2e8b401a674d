"""`plane-workers celery replay-dead-letters`: the bridge's dead letters back onto their AMQP queue.

For what a later state can cure: a webhook_send_task for a webhook Plane had not committed yet, a
task a newer bridge maps or binds differently. Each dead letter (celery-bridge.dlq) is
re-published, with its body, content type and original AMQP headers, to the queue it came from,
confirmed by RabbitMQ, and only then committed in the replay's consumer group, so a second run
replays nothing twice and a crash in between replays that one again (the bridge's event ids,
derived from the Celery task id, make the repeat one event). One cut to fit Kafka's limit is
skipped and logged: re-publishing its cut body would lose the original for good.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message
from kombu import Connection, Exchange, Producer, Queue

from services.celery_bridge.bridge import AMQP_HEADERS, DLQ_TOPIC, ORIGINAL_QUEUE
from shared.cli.dlq import read_to_end
from shared.kafka import headers as h
from shared.kafka.config import consumer_config
from shared.settings import Settings

log = logging.getLogger(__name__)

GROUP = "plane-workers-dlq-replay.celery-bridge"


@dataclass(frozen=True)
class Replayed:
    replayed: int
    skipped: int


def replay_dead_letters(settings: Settings, limit: int | None = None) -> Replayed:
    consumer = Consumer(consumer_config(settings, GROUP))
    replayed = skipped = 0
    try:
        with Connection(settings.amqp_url, transport_options={"confirm_publish": True}) as conn:
            producer = Producer(conn.default_channel)
            for message in read_to_end(consumer, settings.topic(DLQ_TOPIC), limit):
                meta = h.as_dict(message.headers())
                if cut := {k: meta[k] for k in h.TRUNCATED if k in meta}:
                    log.warning("dead letter at offset %d was cut to fit, not replayed: %s",
                                message.offset(), cut)  # fmt: skip
                    skipped += 1
                else:
                    _publish(producer, message, meta, settings.celery_bridge_queue)
                    replayed += 1
                consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()
    return Replayed(replayed, skipped)


def _publish(producer: Producer, message: Message, meta: dict[str, str], default_queue: str) -> None:
    name = meta.get(ORIGINAL_QUEUE) or default_queue
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)  # as Celery declares it
    producer.publish(
        message.value() or b"",
        exchange=queue.exchange,
        routing_key=queue.routing_key,
        headers=_amqp_headers(meta),
        content_type=meta.get("amqp-content-type") or "application/json",
        content_encoding=meta.get("amqp-content-encoding") or "utf-8",
        correlation_id=meta.get("amqp-correlation-id") or None,
        delivery_mode=2,
        declare=[queue],
        retry=True,
    )


def _amqp_headers(meta: dict[str, str]) -> dict[str, Any]:
    """The AMQP headers as they were; from a dead letter written before they were kept whole, the
    Kafka headers that are not the bridge's own (values as strings)."""
    if AMQP_HEADERS in meta:
        return dict(json.loads(meta[AMQP_HEADERS]))
    ours = {AMQP_HEADERS, ORIGINAL_QUEUE, *h.RUNTIME_HEADERS, *h.TRUNCATED}
    return {k: v for k, v in meta.items() if k not in ours and not k.startswith("amqp-")}
