"""Every consumer in the registry, held to the same bar through its samples (R11-R18).

Each case runs the consumer as real processes (`plane-workers consume NAME`) on the embedded
stack and asserts one thing at the end: the samples' visible effects equal what processing every
event exactly once gives (deduplicated by the idempotency key where the consumer is at-least-once
toward an outside receiver).
"""

from __future__ import annotations

import random
import time

import pytest

from shared import registry
from shared.registry import ConsumerSpec
from tests.conformance.harness import (
    Incarnation,
    difference,
    lag,
    log_dir,
    produce,
    samples_of,
    settle,
)
from tests.helpers import dead_letters

STORM_EVENTS, STORM_KILLS = 400, 10
SETTLE_S = 120.0

consumers = pytest.mark.parametrize("spec", registry.CONSUMERS, ids=lambda s: s.name)


def finish(spec, world, samples, logs) -> object:  # type: ignore[no-untyped-def]
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
    return seen


@consumers
def test_crash_storm_every_effect_once(spec: ConsumerSpec, world_of) -> None:  # type: ignore[no-untyped-def]
    """R11/R12: kill -9 at random points while events flow, restart each time; nothing is lost
    and nothing is done twice."""
    world = world_of(STORM_EVENTS)
    samples = samples_of(spec, world)
    rng = random.Random(spec.name)
    logs = log_dir()
    slices = [samples.events[i::STORM_KILLS] for i in range(STORM_KILLS)]
    in_flight_at_kill = 0
    started = time.monotonic()
    for events in slices:
        consumer = Incarnation(spec, world.settings, dict(samples.env), logs)
        try:
            consumer.wait_assigned()
            produce(world.settings, spec.topic, events)
            time.sleep(rng.uniform(0.0, 0.4))
            consumer.kill()
        finally:
            consumer.close()
        in_flight_at_kill += lag(world.settings, spec) > 0
        print(f"kill at {time.monotonic() - started:.1f}s")
    storm_s = time.monotonic() - started
    assert in_flight_at_kill >= 1, "every kill found the consumer idle: the storm tested nothing"

    finish(spec, world, samples, logs)
    assert dead_letters(world.settings, spec.topic) == []
    print(f"{spec.name}: {STORM_KILLS} kills in {storm_s:.1f}s, {in_flight_at_kill} with work in flight")
