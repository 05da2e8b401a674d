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

QUIET_S = 0.2  # past the watermarks, a partition with nothing new for this long is at its end


def read_topic(settings: Settings, physical_topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every message now in the topic, all partitions, in partition then offset order."""
    with _reader(settings) as consumer:
        ends = _watermarks(consumer, physical_topic)
        consumer.assign([TopicPartition(physical_topic, p, OFFSET_BEGINNING) for p in ends])
        messages = _read_past(consumer, physical_topic, ends, timeout_s)
        return sorted(messages, key=lambda m: (m.partition(), m.offset()))


def partition_ends(settings: Settings, physical_topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The offset after the last record of each partition."""
    with _reader(settings) as consumer:
        ends = _watermarks(consumer, physical_topic)
        consumer.assign([TopicPartition(physical_topic, p, high - 1) for p, high in ends.items() if high])
        for message in _read_past(consumer, physical_topic, dict(ends), timeout_s):
            ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
        return ends


class _reader:
    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(consumer_config(settings, f"plane-workers-reader-{uuid.uuid4().hex[:8]}"))

    def __enter__(self) -> Consumer:
        return self.consumer

    def __exit__(self, *_exc: object) -> None:
        self.consumer.close()


def _watermarks(consumer: Consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise RuntimeError(f"topic {topic}: {metadata.error}")
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in sorted(metadata.partitions)
    }


def _read_past(consumer: Consumer, topic: str, ends: dict[int, int], timeout_s: float) -> list[Message]:
    """Read the assigned partitions up to `ends`, waiting up to `timeout_s` for each message
    before them, then on until QUIET_S passes with nothing new."""
    read = dict.fromkeys(ends, 0)
    messages: list[Message] = []
    while True:
        behind = any(read[p] < end for p, end in ends.items())
        message = consumer.poll(timeout_s if behind else QUIET_S)
        if message is None:
            if behind:
                raise TimeoutError(f"{topic}: no message in {timeout_s}s before its end")
            return messages
        if message.error() is not None:
            raise RuntimeError(str(message.error()))
        messages.append(message)
        read[message.partition()] = message.offset() + 1
