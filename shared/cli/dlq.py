"""`plane-workers dlq show|replay`: read dead letters, and send them back to their topic."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from shared.cli.errors import CliError, ConfigError
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.config import consumer_config
from shared.settings import Settings

log = logging.getLogger(__name__)
QUIET_S = 0.5


def read_to_end(consumer: Consumer, topic: str, limit: int | None) -> Iterator[Message]:
    """Every message currently in `topic` (from the consumer's position), then stop."""
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        if metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise ConfigError(f"topic {topic} does not exist (run `plane-workers topics create`)")
        raise CliError(f"topic {topic}: {metadata.error.str()}")
    ends = {}
    for p in metadata.partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    positions = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    pending = {tp.partition for tp in positions if (tp.offset if tp.offset >= 0 else 0) < ends[tp.partition]}
    consumer.assign(
        [
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in positions
        ]
    )
    count = 0
    while limit is None or count < limit:
        # Past every partition's reported end, on until the topic is quiet: tansu (the embedded
        # broker) reports a partition's end as its last batch's base offset + 1, short of the
        # batch's other records (shared/testing/topics.py). On Kafka nothing more comes.
        message = consumer.poll(1.0 if pending else QUIET_S)
        if message is None:
            if pending:
                continue
            return
        if message.error() is not None:
            raise CliError(f"topic {topic}: {message.error().str()}")
        count += 1
        yield message
        if message.offset() + 1 >= ends[message.partition()]:
            pending.discard(message.partition())


def describe(message: Message) -> dict[str, Any]:
    value = message.value() or b""
    try:
        body: Any = json.loads(value)
    except ValueError:
        body = value[:2000].decode("utf-8", "replace")
    return {
        "partition": message.partition(),
        "offset": message.offset(),
        "key": (message.key() or b"").decode("utf-8", "replace"),
        "headers": h.as_dict(message.headers()),
        "size": len(value),
        "value": body,
    }


def show(settings: Settings, topic: str, limit: int | None) -> Iterator[dict[str, Any]]:
    """Dead letters of a logical topic (e.g. `issue-description-versions`), without consuming."""
    config = consumer_config(settings, f"plane-workers-dlq-show-{uuid.uuid4().hex[:8]}")
    consumer = Consumer(config)
    try:
        for message in read_to_end(consumer, settings.topic(f"{topic}.dlq"), limit):
            yield describe(message)
    finally:
        consumer.close()


def print_dead_letters(settings: Settings, topic: str, limit: int | None) -> None:
    """`show` as JSON lines on stdout, or one line saying the DLQ is empty."""
    shown = 0
    for entry in show(settings, topic, limit):
        typer.echo(json.dumps(entry))
        shown += 1
    if not shown:
        typer.echo(f"no dead letters in {settings.topic(f'{topic}.dlq')}")


def replay(settings: Settings, topic: str, limit: int | None) -> int:
    """Re-publish dead letters to the topic they came from; committed only once re-published.

    The group remembers what was replayed, so running it twice does not replay twice. A dead
    letter cut to fit the broker's limit (shared/kafka/deadletter.py) is skipped and logged:
    re-publishing its cut body would lose the original for good.
    """
    dlq = settings.topic(f"{topic}.dlq")
    consumer = Consumer(consumer_config(settings, f"plane-workers-dlq-replay.{topic}"))
    producer = EventProducer(settings)
    replayed = 0
    try:
        for message in read_to_end(consumer, dlq, limit):
            meta = h.as_dict(message.headers())
            if cut := {k: meta[k] for k in h.TRUNCATED if k in meta}:
                log.warning(
                    "dead letter %s[%d]@%d was cut to fit, not replayed: %s (original sha256 %s)",
                    dlq,
                    message.partition(),
                    message.offset(),
                    cut,
                    meta.get(h.VALUE_SHA256, "-"),
                )
                consumer.commit(message=message, asynchronous=False)
                continue
            target = meta.get(h.ORIGINAL_TOPIC) or settings.topic(topic)
            own = [(k, v) for k, v in message.headers() or () if k not in h.RUNTIME_HEADERS]
            producer.send_raw(target, message.value() or b"", key=message.key(), headers=own)
            consumer.commit(message=message, asynchronous=False)
            replayed += 1
    finally:
        consumer.close()
        producer.close()
    return replayed
