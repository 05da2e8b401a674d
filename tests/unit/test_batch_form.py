"""The batch form's pure parts: the registry option, batch sizes, held keys and held-back commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Partition, Topic
from sqlalchemy.orm import sessionmaker

from shared.events import Event, new_event
from shared.kafka.batch import BatchStrategyFactory, HeldBackCommit, HeldKeys, Pending
from shared.kafka.handler import HandlerContext
from shared.kafka.runtime import ConsumerDeps, _strategy_factory
from shared.registry import Batching, ConsumerSpec
from shared.settings import Settings
from tests.helpers import IDV_TYPE

TOPIC = Topic("t")
P0, P1 = Partition(TOPIC, 0), Partition(TOPIC, 1)
SPEC = ConsumerSpec(
    name="batchy",
    topic="batchy",
    handler="tests.unit.test_batch_form:ignore",
    event_types=(IDV_TYPE,),
    description="d",
    batch=Batching(),
)


def ignore(events: Sequence[Event], ctx: HandlerContext) -> None:
    """A batch handler that writes nothing."""


def pending(partition: Partition, offset: int, key: bytes) -> Pending:
    event = new_event(IDV_TYPE, {"issue_id": str(_uuid(offset)), "user_id": str(_uuid(offset))})
    value = BrokerValue(KafkaPayload(key, event.to_json(), []), partition, offset, datetime.now(UTC))
    return Pending(value, {}, event)


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_a_batch_consumer_needs_a_handler_and_the_transaction_claim() -> None:
    with pytest.raises(ValueError, match="batch takes a handler"):
        replace(SPEC, handler=None, strategy="a:b")
    with pytest.raises(ValueError, match="idempotency='transaction'"):
        replace(SPEC, idempotency="handler")
    for bad in ({"max_events": 0}, {"max_wait_ms": -1}):
        with pytest.raises(ValueError, match="batch max_"):
            Batching(**bad)
    assert ConsumerSpec(name="plain", topic="p", event_types=(), description="d", handler="a:b").batch is None


def deps(spec: ConsumerSpec, **settings: Any) -> ConsumerDeps:
    base = replace(Settings.from_env({}), **settings)
    return ConsumerDeps(spec, base, None, sessionmaker(), None, None, lambda: 0.0)  # type: ignore[arg-type]


def test_batch_sizes_come_from_the_settings_unless_the_entry_sets_them() -> None:
    factory = _strategy_factory(deps(SPEC, batch_max_events=123, batch_max_wait_ms=45))
    assert isinstance(factory, BatchStrategyFactory)
    assert (factory._max_events, factory._max_wait_s) == (123, 0.045)
    own = replace(SPEC, batch=Batching(max_events=7, max_wait_ms=0))
    factory = BatchStrategyFactory(deps(own, batch_max_events=123, batch_max_wait_ms=45))
    assert (factory._max_events, factory._max_wait_s) == (7, 0.0)


def test_held_keys_queue_behind_the_failed_event_and_fall_due_once() -> None:
    held = HeldKeys(limit=3)
    failed, behind, other = pending(P0, 5, b"a"), pending(P0, 9, b"a"), pending(P0, 7, b"b")
    held.hold(failed, due=10.0)
    held.hold(behind, due=99.0)  # the key is held: it waits behind, the due time stays
    assert held.holds(pending(P0, 11, b"a")) and not held.holds(other)
    assert not held.holds(pending(P1, 11, b"a"))  # a key is per partition
    assert held.due(9.9) == [] and held.due(10.0) == [(0, b"a")]
    assert held.queue((0, b"a")) == [failed, behind]
    assert not held.full
    held.hold(other, due=20.0)
    assert held.full and len(held) == 3
    held.release([(0, b"a")])
    assert held.due(100.0) == [(0, b"b")] and len(held) == 1


def test_offsets_are_never_committed_past_the_oldest_held_event() -> None:
    held = HeldKeys()
    held.hold(pending(P0, 7, b"b"), due=0.0)
    held.hold(pending(P0, 5, b"a"), due=0.0)
    assert held.clamp({P0: 12, P1: 30}) == {P0: 5, P1: 30}
    assert held.clamp({P0: 3}) == {P0: 3}


def test_a_held_back_commit_moves_on_once_the_key_is_released() -> None:
    calls: list[tuple[dict[Partition, int], bool]] = []
    held = HeldKeys()
    commit = HeldBackCommit(lambda offsets, force=False: calls.append((dict(offsets), force)), held)
    held.hold(pending(P0, 4, b"a"), due=0.0)
    commit({P0: 10, P1: 3})
    commit({}, True)
    held.release([(0, b"a")])
    commit({})  # what CommitOffsets.poll sends: nothing new, yet the held-back offset is released
    assert calls == [({P0: 4, P1: 3}, False), ({P0: 4, P1: 3}, True), ({P0: 10, P1: 3}, False)]
