"""Every consumer in the registry, held to the same bar through its samples (R11-R18).

Each case runs the consumer as real processes (`plane-workers consume NAME`, as a pod runs it) on
the embedded stack: tansu, PostgreSQL, moto S3, aiosmtpd and a loopback HTTP receiver. It ends
with one assertion: the samples' visible effects equal what processing every event exactly once
gives (deduplicated by the idempotency key for consumers that are at-least-once toward an outside
receiver, where a repeat must carry the same key).

What the embedded stack cannot show: tansu keeps everything in memory, so a broker *restart*
loses the topics, and only a broker that disappears is tested (test_broker_gone); broker
failover, ISR shrinkage and unclean leader election need a real Kafka cluster. PostgreSQL is
stopped and started on the same socket (a fast shutdown, as a failover or restart looks to a
client), not partitioned away. Sizes here fit CI; `-m chaos` runs the storm at 10,000 events and
20 kills.
"""

from __future__ import annotations

import random
import time

import pytest
from confluent_kafka import Producer

from shared import registry
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.config import client_config
from shared.registry import ConsumerSpec
from tests.conformance.harness import (
    Feeder,
    Incarnation,
    difference,
    lag,
    log_dir,
    poison,
    produce,
    reset_to_beginning,
    retried,
    samples_of,
    settle,
)
from tests.helpers import dead_letters, wait_until

SETTLE_S = 120.0
# tansu keeps a killed member's partitions until its session times out: a short session keeps
# each restart of the storm at a few seconds instead of ~12.
STORM_ENV = {"KAFKA_SESSION_TIMEOUT_MS": "3000"}
OUTAGE_S = 20.0
# Runtime headers as some producer might set them on a main topic: never trusted there.
FORGED = [
    ("original-topic", b"elsewhere"),
    ("original-partition", b"abc"),
    ("attempts", b"many"),
    ("due-at", b"soon"),
    ("first-failed-at", b"yesterday"),
]

consumers = pytest.mark.parametrize("spec", registry.CONSUMERS, ids=lambda s: s.name)


def finish(spec, world, samples, logs) -> None:  # type: ignore[no-untyped-def]
    """A fresh consumer processes whatever is left; SIGTERM must then exit 0."""
    consumer = Incarnation(spec, world.settings, dict(samples.env), logs)
    try:
        consumer.wait_assigned()
        seen = settle(samples, SETTLE_S)
        code, _took = consumer.terminate()
        assert code == 0, consumer.log()
    finally:
        consumer.close()
    assert seen == samples.expected, difference(seen, samples.expected)
    # Nothing arrives late (a duplicate would): the effects still hold once the consumer is gone.
    assert samples.effects() == samples.expected


def storm(spec: ConsumerSpec, world_of, events: int, kills: int) -> None:  # type: ignore[no-untyped-def]
    world = world_of(events)
    samples = samples_of(spec, world)
    env = dict(samples.env) | STORM_ENV
    rng = random.Random(spec.name)
    logs = log_dir()
    # Fed over about as long as the kills take (a restart is ~3-6 s), so most kills land in work.
    feeder = Feeder(world.settings, spec.topic, samples.events, over_s=kills * 4.5)
    feeder.start()
    in_flight = 0
    for _ in range(kills):
        consumer = Incarnation(spec, world.settings, env, logs)
        try:
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0.1, 1.0))  # dies while starting or joining
            else:
                consumer.wait_assigned()
                time.sleep(rng.uniform(0.0, 1.0))
            consumer.kill()
        finally:
            consumer.close()
        in_flight += lag(world.settings, spec) > 0
    feeder.finish()
    assert in_flight >= kills // 4, f"only {in_flight} of {kills} kills found work in flight"
    finish(spec, world, samples, logs)
    assert dead_letters(world.settings, spec.topic) == []


@consumers
def test_crash_storm_every_effect_once(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """R11/R12: kill -9 at random points while events flow, restarting each time: nothing is
    lost and nothing is done twice."""
    storm(spec, world_of, events=400, kills=10)


@pytest.mark.chaos
@consumers
def test_large_crash_storm(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    storm(spec, world_of, events=10_000, kills=20)


@consumers
def test_replay_from_offset_zero_changes_nothing(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """R12: the group's offsets reset to the beginning; every event is processed again."""
    world = world_of(60)
    samples = samples_of(spec, world)
    produce(world.settings, spec.topic, samples.events)
    logs = log_dir()
    finish(spec, world, samples, logs)
    reset_to_beginning(world.settings, spec)
    assert lag(world.settings, spec) == len(samples.events)
    again = Incarnation(spec, world.settings, dict(samples.env), logs)
    try:
        wait_until(lambda: lag(world.settings, spec) == 0, timeout_s=SETTLE_S, interval_s=0.5)
        assert again.terminate()[0] == 0, again.log()
    finally:
        again.close()
    seen = samples.effects()
    assert seen == samples.expected, difference(seen, samples.expected)


@consumers
def test_poison_is_dead_lettered_and_the_rest_processed(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """R13: each kind of bad message, interleaved with valid events on their partitions, lands on
    `<topic>.dlq` at once with its provenance; the valid ones are processed; the consumer runs on."""
    world = world_of(24)
    samples = samples_of(spec, world)
    key, first = samples.events[0]
    bad = poison(spec, (key or "").encode(), first, world.settings.event_max_bytes)
    topic = world.settings.topic(spec.topic)
    # Bad ones first on the first event's partition, so the valid events queue behind them. An
    # outside producer's size limit is not ours: it sends what the broker takes.
    outside = Producer(client_config(world.settings) | {"message.max.bytes": 8 << 20})
    for value_key, value in bad.values():
        outside.produce(topic, value, key=value_key, headers=[("traceparent", b"00-conformance-01"), *FORGED])
    # A valid event whose producer set our runtime headers, unreadable: processed as any other.
    forged_key, forged = samples.events[1]
    outside.produce(topic, forged.to_json(), key=forged_key, headers=FORGED)
    assert outside.flush(30) == 0
    produce(world.settings, spec.topic, [e for e in samples.events if e[1] is not forged])

    logs = log_dir()
    consumer = Incarnation(spec, world.settings, dict(samples.env), logs)
    try:
        consumer.wait_assigned()
        seen = settle(samples, SETTLE_S)
        letters = wait_until(
            lambda: (d := dead_letters(world.settings, spec.topic)) and len(d) >= len(bad) and d, 60
        )
        assert consumer.alive(), consumer.log()
        assert consumer.terminate()[0] == 0, consumer.log()
    finally:
        consumer.close()
    assert seen == samples.expected, difference(seen, samples.expected)
    assert len(letters) == len(bad), [letter["headers"][h.ERROR_CLASS] for letter in letters]
    offsets = set()
    for letter in letters:
        meta = letter["headers"]
        assert meta[h.ORIGINAL_TOPIC] == topic and meta[h.ORIGINAL_PARTITION].isdigit()
        assert meta[h.ATTEMPTS] == "1", "bad input is never retried as if transient"
        assert meta[h.ERROR_CLASS].startswith("InvalidEvent."), meta[h.ERROR_CLASS]
        assert meta[h.ERROR_MESSAGE] and meta[h.FIRST_FAILED_AT]
        offsets.add((meta[h.ORIGINAL_PARTITION], meta[h.ORIGINAL_OFFSET]))
    assert len(offsets) == len(bad), "each bad message dead-lettered once"
    classes = {letter["headers"][h.ERROR_CLASS] for letter in letters}
    assert "InvalidEvent.unknown_type" in classes  # another consumer's valid type included


@consumers
def test_dead_letter_limit_stops_the_consumer(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """Past DLQ_MAX_CONSECUTIVE the consumer exits non-zero and commits nothing more."""
    world = world_of(1)
    samples = samples_of(spec, world)
    producer = EventProducer(world.settings)
    topic = world.settings.topic(spec.topic)
    for i in range(10):
        producer.send_raw(topic, b"garbage %d" % i, key=b"one-partition")
    producer.close()
    consumer = Incarnation(spec, world.settings, dict(samples.env) | {"DLQ_MAX_CONSECUTIVE": "3"}, log_dir())
    try:
        code = consumer.process.wait(timeout=90)
        assert code != 0
        assert "DeadLetterLimitExceeded" in consumer.log(20_000)
    finally:
        consumer.close()
    assert len(dead_letters(world.settings, spec.topic)) == 3
    assert lag(world.settings, spec) >= 7, "the fourth is neither dead-lettered nor committed"


@consumers
def test_sigterm_mid_stream_exits_in_time_and_loses_nothing(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """R17: SIGTERM while events flow: exit 0 inside the grace period; a restart redoes nothing
    and finishes the rest."""
    world = world_of(400)
    samples = samples_of(spec, world)
    logs = log_dir()
    feeder = Feeder(world.settings, spec.topic, samples.events, over_s=4.0)
    consumer = Incarnation(spec, world.settings, dict(samples.env), logs)
    try:
        consumer.wait_assigned()
        feeder.start()
        time.sleep(1.5)
        code, took = consumer.terminate()
    finally:
        consumer.close()
    assert code == 0, consumer.log()
    assert took < 30, f"took {took:.1f}s to stop"
    feeder.finish()
    assert lag(world.settings, spec) > 0, "the stream had ended before SIGTERM: nothing was in flight"
    finish(spec, world, samples, logs)
    assert dead_letters(world.settings, spec.topic) == []


@consumers
def test_database_outage_holds_and_recovers(spec: ConsumerSpec, world_of, embedded_postgres) -> None:  # type: ignore[no-untyped-def]
    """R18: PostgreSQL stops for OUTAGE_S mid-stream and comes back on the same socket. The
    consumer stays up and alive (liveness file fresh: a restart would not help), is not ready
    (readiness file gone), spends no retries and dead-letters nothing on the outage, and every
    effect exists once afterwards."""
    world = world_of(300)
    samples = samples_of(spec, world)
    logs = log_dir()
    feeder = Feeder(world.settings, spec.topic, samples.events, over_s=OUTAGE_S)
    consumer = Incarnation(spec, world.settings, dict(samples.env), logs)
    try:
        consumer.wait_assigned()
        feeder.start()
        time.sleep(1.0)
        embedded_postgres.pause()
        try:
            time.sleep(OUTAGE_S)
            assert consumer.alive(), f"the consumer died during the outage: {consumer.log()}"
            ready = consumer.ready.exists()
            live_age = time.time() - consumer.health.stat().st_mtime
        finally:
            embedded_postgres.resume()
        assert not ready, "the consumer said it was ready while the database was down"
        assert live_age < 10, f"liveness went {live_age:.1f}s stale while holding: a probe would restart it"
        seen = settle(samples, SETTLE_S)
        assert consumer.alive(), consumer.log()
        assert consumer.terminate()[0] == 0, consumer.log()
    finally:
        consumer.close()
    feeder.finish()
    assert seen == samples.expected, difference(seen, samples.expected)
    assert dead_letters(world.settings, spec.topic) == []
    assert retried(world.settings, spec) <= 5, "an outage is not the events' fault: no retries spent"


@consumers
def test_second_member_joins_mid_stream(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """R16: a rebalance while events flow loses nothing and duplicates nothing visible."""
    world = world_of(400)
    samples = samples_of(spec, world)
    logs = log_dir()
    feeder = Feeder(world.settings, spec.topic, samples.events, over_s=6.0)
    first = Incarnation(spec, world.settings, dict(samples.env), logs)
    second = None
    try:
        first.wait_assigned()
        feeder.start()
        time.sleep(1.0)
        second = Incarnation(spec, world.settings, dict(samples.env), logs)
        second.wait_assigned()
        feeder.finish()
        seen = settle(samples, SETTLE_S)
        for member in (first, second):
            assert member.terminate()[0] == 0, member.log()
    finally:
        first.close()
        if second is not None:
            second.close()
    assert seen == samples.expected, difference(seen, samples.expected)
    assert dead_letters(world.settings, spec.topic) == []
