"""Bad input never crashes the consumer, is never dropped silently and is never retried."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

from shared import registry
from shared.events.producer import EventProducer
from shared.kafka import headers as h
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


def test_each_kind_of_bad_input_lands_in_the_dlq_and_the_next_good_event_is_processed(settings, engine):  # type: ignore[no-untyped-def]
    settings = replace(settings, event_max_bytes=64 * 1024)
    (alice,), (issue,) = seed(engine, 1, n_users=1)
    good = idv_event(issue, alice, creating=True)
    unknown = json.loads(good.to_json())
    unknown["type"] = "plane.nothing_like_this.v1"
    violation = json.loads(good.to_json())
    violation["data"]["user_id"] = 42
    oversize = json.loads(good.to_json())
    oversize["data"]["updated_issue"] = "x" * (settings.event_max_bytes + 1)
    key = str(issue.id)  # one partition: the good event comes after every bad one
    bad = {
        "InvalidEvent.malformed_json": b'{"specversion": "1.0", ',
        "InvalidEvent.unknown_type": json.dumps(unknown).encode(),
        "InvalidEvent.schema_violation": json.dumps(violation).encode(),
        "InvalidEvent.oversize": json.dumps(oversize).encode(),
    }
    producer = EventProducer(settings)
    topic = settings.topic(SPEC.topic)
    for value in bad.values():
        producer.send_raw(topic, value, key=key, headers=[("traceparent", b"00-abc-def-01")])
    producer.send(SPEC.topic, good, key=key)

    with consumer_thread(SPEC, settings):
        wait_until(lambda: processed(engine, SPEC.name) == 1)
        letters = wait_until(lambda: (d := dead_letters(settings, SPEC.topic)) and len(d) >= 4 and d)

    assert [letter["headers"][h.ERROR_CLASS] for letter in letters] == list(bad)
    for offset, letter in enumerate(letters):
        meta = letter["headers"]
        assert meta[h.ORIGINAL_TOPIC] == topic
        assert meta[h.ORIGINAL_OFFSET] == str(offset)
        assert meta[h.ORIGINAL_PARTITION].isdigit()
        assert meta[h.ATTEMPTS] == "1"  # never retried as if transient
        assert meta[h.FIRST_FAILED_AT].startswith("20")
        assert meta[h.ERROR_MESSAGE]
        assert meta["traceparent"] == "00-abc-def-01"  # the producer's own headers are kept
        assert letter["key"] == key
    # The dead letter carries the original bytes, so it can be replayed after a fix.
    assert letters[0]["value"] == bad["InvalidEvent.malformed_json"].decode()


def test_replay_sends_dead_letters_back_once(settings, engine):  # type: ignore[no-untyped-def]
    from shared.cli.dlq import replay

    producer = EventProducer(settings)
    producer.send_raw(settings.topic(SPEC.topic), b"not json", key=b"k")
    with consumer_thread(SPEC, settings):
        wait_until(lambda: dead_letters(settings, SPEC.topic))
    assert replay(settings, SPEC.topic, None) == 1
    assert replay(settings, SPEC.topic, None) == 0  # the replay group remembers
    with consumer_thread(SPEC, settings):
        wait_until(lambda: len(dead_letters(settings, SPEC.topic)) == 2)


def test_consumer_stops_when_the_dead_letter_limit_is_passed(settings, engine):  # type: ignore[no-untyped-def]
    settings = replace(settings, dlq_max_consecutive=3)
    producer = EventProducer(settings)
    for i in range(10):
        producer.send_raw(settings.topic(SPEC.topic), b"garbage %d" % i, key=b"same-partition")
    consumer = spawn_consumer(SPEC.name, settings)
    try:
        code = consumer.wait(timeout=90)
    except subprocess.TimeoutExpired:
        consumer.kill()
        raise
    assert code != 0
    assert b"DeadLetterLimitExceeded" in consumer.stderr.read()
    # Three dead-lettered; the fourth is neither dead-lettered nor committed (it waits for a fix).
    assert len(dead_letters(settings, SPEC.topic)) == 3
