"""A dead letter always fits: a message larger than our producer may send (the broker took it
from someone else) is cut to fit, says so in its headers, and `dlq replay` leaves it alone."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shared import registry
from shared.cli.dlq import replay
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.config import client_config, max_message_bytes
from shared.kafka.deadletter import DeadLetterLimit, DeadLetters
from shared.settings import Settings
from tests.helpers import (
    consumer_thread,
    dead_letters,
    idv_event,
    processed,
    seed,
    spawn_consumer,
    wait_until,
)

SPEC = registry.consumer("issue-description-versions")


def produce_big(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """As another producer with a higher limit would: all on partition 0, in order."""
    producer = Producer(client_config(settings) | {"message.max.bytes": 20_000_000})
    for key, value in messages:
        producer.produce(
            settings.topic(topic), value=value, key=key, partition=0, headers=[("traceparent", b"t")]
        )
    assert producer.flush(30) == 0


def assert_cut_to_fit(letter: dict, original: bytes, settings: Settings) -> None:
    meta = letter["headers"]
    assert meta[h.ERROR_CLASS] == "InvalidEvent.oversize"
    assert meta[h.ORIGINAL_TOPIC] == settings.topic(SPEC.topic)
    assert meta[h.ORIGINAL_PARTITION] == "0"
    assert meta[h.ORIGINAL_OFFSET] == "0"
    assert meta[h.ATTEMPTS] == "1"
    assert meta["traceparent"] == "t"
    assert meta[h.VALUE_TRUNCATED] == str(len(original))
    assert meta[h.VALUE_SHA256] == hashlib.sha256(original).hexdigest()
    assert 0 < letter["size"] < max_message_bytes(settings)


@pytest.mark.parametrize(
    ("event_max_bytes", "size", "key_bytes"),
    [(1_048_576, 2_300_000, 36), (262_144, 1_048_576, 36), (262_144, 1_048_576, 200_000)],
    ids=["2.3MB-default", "1MB-at-256KiB", "1MB-with-200KB-key"],
)
def test_a_message_too_large_to_dead_letter_whole_is_cut_and_the_next_event_processed(
    settings: Settings, engine, tmp_path: Path, event_max_bytes: int, size: int, key_bytes: int
) -> None:
    settings = replace(settings, event_max_bytes=event_max_bytes)
    (alice,), (issue,) = seed(engine, 1, n_users=1)
    big = b'{"specversion": "1.0", "data": "' + b"x" * size + b'"}'
    key = b"k" * key_bytes
    produce_big(
        settings, SPEC.topic, [(key, big), (b"good", idv_event(issue, alice, creating=True).to_json())]
    )

    with (tmp_path / "stderr").open("wb") as stderr:
        consumer = spawn_consumer(SPEC.name, settings, stderr=stderr)
        try:
            wait_until(lambda: consumer.poll() is not None or processed(engine, SPEC.name) == 1, 90)
            assert consumer.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
        finally:
            consumer.terminate()
            assert consumer.wait(60) == 0

    [letter] = dead_letters(settings, SPEC.topic)
    assert_cut_to_fit(letter, big, settings)
    assert letter["key"] == key.decode()  # a key that fits in a quarter of the room is kept whole
    assert h.KEY_TRUNCATED not in letter["headers"]
    # A cut dead letter is skipped by replay (and its offset passed), never sent back cut.
    assert replay(settings, SPEC.topic, None) == 0
    assert replay(settings, SPEC.topic, None) == 0


def test_key_headers_and_value_too_large_are_all_cut_to_fit(settings: Settings) -> None:
    producer = EventProducer(settings)
    dlq = DeadLetters(producer, settings.topic(SPEC.dlq_topic), DeadLetterLimit(10, 1.0))
    key = b"k" * 3_000_000
    value = b"v" * 3_000_000
    own = [("traceparent", b"t"), *[(f"h{i}", b"x" * 100_000) for i in range(50)]]
    failure = h.Failure("plane.x", 3, 7, 1, "2026-01-01T00:00:00+00:00", "InvalidEvent.oversize", "e" * 5000)
    dlq.send(key, value, own, failure, 3)
    producer.close()

    [letter] = dead_letters(settings, SPEC.topic)
    meta = letter["headers"]
    assert meta[h.KEY_TRUNCATED] == str(len(key))
    assert meta[h.KEY_SHA256] == hashlib.sha256(key).hexdigest()
    assert meta[h.VALUE_TRUNCATED] == str(len(value))
    assert int(meta[h.HEADERS_TRUNCATED]) > 5_000_000
    assert meta["traceparent"] == "t"  # the producer's headers are kept in order while they fit
    assert meta[h.ORIGINAL_OFFSET] == "7" and meta[h.ERROR_CLASS] == "InvalidEvent.oversize"
    assert 0 < len(letter["key"]) <= max_message_bytes(settings) // 4
    assert letter["size"] > 100_000


def test_webhook_deliveries_dead_letters_an_oversize_message_cut_and_keeps_consuming(
    settings: Settings,
) -> None:
    spec = registry.consumer("webhook-deliveries")
    big = b"x" * 2_300_000
    produce_big(settings, spec.topic, [(b"w", big), (b"w", b"{not json")])
    with consumer_thread(spec, settings) as run:
        letters = wait_until(lambda: (d := dead_letters(settings, spec.topic)) and len(d) == 2 and d, 90)
        assert not run.errors
    meta = letters[0]["headers"]
    assert meta[h.ERROR_CLASS] == "InvalidEvent.oversize"
    assert meta[h.VALUE_TRUNCATED] == str(len(big))
    assert meta[h.VALUE_SHA256] == hashlib.sha256(big).hexdigest()
    assert letters[1]["headers"][h.ERROR_CLASS] == "InvalidEvent.malformed_json"
    assert h.VALUE_TRUNCATED not in letters[1]["headers"]
