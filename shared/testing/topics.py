"""Read a topic to its end, and find where its partitions end (tests, samples).

tansu (the embedded broker) reports a partition's high watermark as the *base* offset of its last
record batch plus one: after one batch of 10 records it says 1, not 10. So the end is found by
reading from the watermark's record onwards until the partition goes quiet; on Kafka that read
finds the one record before the watermark, and the answer is the same.
"""

from __future__ import annotations

import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from shared.kafka.config import consumer_config
from shared.settings import Settings

QUIET_S = 0.5  # a partition with nothing new for this long is at its end


def read_topic(settings: Settings, physical_topic: str) -> list[Message]:
    """Every message now in the topic, all partitions, in partition then offset order."""
    with _reader(settings) as consumer:
        partitions = _partitions(consumer, physical_topic)
        consumer.assign([TopicPartition(physical_topic, p, OFFSET_BEGINNING) for p in partitions])
        return sorted(_drain(consumer), key=lambda m: (m.partition(), m.offset()))


def partition_ends(settings: Settings, physical_topic: str) -> dict[int, int]:
    """The offset after the last record of each partition."""
    with _reader(settings) as consumer:
        ends = {}
        starts = []
        for p in _partitions(consumer, physical_topic):
            _low, high = consumer.get_watermark_offsets(TopicPartition(physical_topic, p), timeout=10)
            ends[p] = high
            if high > 0:
                starts.append(TopicPartition(physical_topic, p, high - 1))
        consumer.assign(starts)
        for message in _drain(consumer):
            ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
        return ends


class _reader:
    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(consumer_config(settings, f"plane-workers-reader-{uuid.uuid4().hex[:8]}"))

    def __enter__(self) -> Consumer:
        return self.consumer

    def __exit__(self, *_exc: object) -> None:
        self.consumer.close()


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise RuntimeError(f"topic {topic}: {metadata.error}")
    return sorted(metadata.partitions)


def _drain(consumer: Consumer) -> list[Message]:
    messages = []
    while (message := consumer.poll(QUIET_S)) is not None:
        if message.error() is not None:
            raise RuntimeError(str(message.error()))
        messages.append(message)
    return messages
