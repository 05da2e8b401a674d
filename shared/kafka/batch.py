"""The batch handler form: many events, one transaction, a failing event isolated.

arroyo drives it: `[DueGate ->] BatchStep(N events or T s) -> RunTask(BatchProcessor) ->
CommitOffsets`. A batch's offsets are committed only after its transaction committed (which
claimed every event id with one multi-row insert and holds every effect) and its failed events
were retried or dead-lettered.

Failures, as in the per-event form (shared/kafka/strategy.py), whose EventProcessor this extends:
- a dependency down (shared.db.errors.unavailable, DependencyUnavailable) holds the whole batch:
  it is refused (arroyo keeps it, pauses, keeps polling) and tried again whole, spending no retry;
- anything else rolls the batch back and runs it again in one transaction, each event in a
  savepoint, so only the failing events fail: they are dead-lettered (PermanentError, SQLSTATE
  22/23) or go to the retry tiers alone, and the others are applied once, in that transaction.
  Savepoints, not bisection: one pass finds every bad event, and events stay in offset order,
  which `keep_key_order` needs.

`keep_key_order` (issue activity, R14): retry topics reorder, so a failing event instead holds
its key here, in memory: it is retried in place on the spec's retry delays, the key's later
events wait behind it, other keys go on, and per partition no offset past the oldest held event
is committed. A crash or rebalance therefore delivers the held event again, first; what had been
applied after it is skipped by its claim. Chosen over a park table in the database because it
needs no second store to drain and keep consistent with the topic: the partition itself is the
durable queue. The price: while a key is held, its partition's committed offset stays behind
(lag shows it, and a restart re-reads from there), and at most HELD_EVENTS_LIMIT events wait in
memory before the partition is paused.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from arroyo.backends.kafka import KafkaPayload
from arroyo.processing.strategies import (
    BatchStep,
    CommitOffsets,
    MessageRejected,
    ProcessingStrategy,
    ProcessingStrategyFactory,
    RunTask,
)
from arroyo.processing.strategies.batching import ValuesBatch
from arroyo.types import BrokerValue, Commit, Message, Partition
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import registry
from shared.db import errors as db_errors
from shared.db.state import ProcessedEvent
from shared.events.envelope import Event, InvalidEvent, parse_event
from shared.kafka import headers as h
from shared.kafka.handler import BatchHandler, DependencyUnavailable, EventFailures, PermanentError
from shared.kafka.strategy import Clock, EventProcessor, _error_class, describe, give_up_reason
from shared.logs import log_context
from shared.metrics import EVENT_PROCESSING_SECONDS, EVENTS_PROCESSED

if TYPE_CHECKING:
    from shared.kafka.runtime import ConsumerDeps

log = logging.getLogger(__name__)

HELD_EVENTS_LIMIT = 10_000  # events waiting behind held keys, per partition assignment

HeldKey = tuple[int, bytes | None]  # (partition, message key)


@dataclass(eq=False)
class Pending:
    """A valid event of the batch and where it came from; `headers` carry its failures so far."""

    value: BrokerValue[KafkaPayload]
    headers: dict[str, str]
    event: Event

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(self.event.id)

    @property
    def key(self) -> HeldKey:
        return (self.value.partition.index, self.value.payload.key)


@dataclass
class Outcome:
    applied: list[Pending] = field(default_factory=list)
    duplicates: list[Pending] = field(default_factory=list)  # committed by an earlier delivery
    failed: list[tuple[Pending, Exception]] = field(default_factory=list)
    deferred: list[Pending] = field(default_factory=list)  # behind a failed event of their key


class HeldKeys:
    """keep_key_order: each held key's events in offset order; the first one failed and is due
    again at `due`, the others wait for it."""

    def __init__(self, limit: int = HELD_EVENTS_LIMIT) -> None:
        self._queues: dict[HeldKey, list[Pending]] = {}
        self._due: dict[HeldKey, float] = {}
        self.limit = limit

    def __len__(self) -> int:
        return sum(map(len, self._queues.values()))

    @property
    def full(self) -> bool:
        return len(self) >= self.limit

    def holds(self, pending: Pending) -> bool:
        return pending.key in self._queues

    def hold(self, pending: Pending, due: float) -> None:
        """Behind the key's held events, or (none held) first of a new queue, due at `due`."""
        if pending.key not in self._queues:
            self._due[pending.key] = due
        self._queues.setdefault(pending.key, []).append(pending)

    def due(self, now: float) -> list[HeldKey]:
        return [key for key, at in self._due.items() if at <= now]

    def queue(self, key: HeldKey) -> list[Pending]:
        return list(self._queues[key])

    def release(self, keys: Collection[HeldKey]) -> None:
        for key in keys:
            del self._queues[key], self._due[key]

    def clamp(self, offsets: Mapping[Partition, int]) -> dict[Partition, int]:
        """`offsets` (to commit: the next to read) kept at or below each held event's own."""
        floor: dict[Partition, int] = {}
        for queue in self._queues.values():
            first = queue[0].value  # the lowest offset of its key
            floor[first.partition] = min(floor.get(first.partition, first.offset), first.offset)
        return {p: min(o, floor.get(p, o)) for p, o in offsets.items()}


class HeldBackCommit:
    """arroyo's commit callback, never committing past a held event. It stages the newest offsets
    it was given, clamped, on every call (CommitOffsets calls it on each poll), so the offsets
    move on as soon as a held key is released, without waiting for the next batch."""

    def __init__(self, commit: Commit, held: HeldKeys) -> None:
        self._commit = commit
        self._held = held
        self._latest: dict[Partition, int] = {}

    def __call__(self, offsets: Mapping[Partition, int], force: bool = False) -> None:
        self._latest.update(offsets)
        self._commit(self._held.clamp(self._latest), force)


class BatchProcessor(EventProcessor):
    """Runs one batch end to end. What happens to an event that is not applied (dead letter,
    retry tier, the process-wide hold) is EventProcessor's, unchanged; the per-event handler it
    is built with is the batch handler given one event."""

    def __init__(self, deps: ConsumerDeps, handler: BatchHandler, held: HeldKeys | None) -> None:
        super().__init__(
            deps.spec,
            lambda event, ctx: handler([event], ctx),
            deps.settings,
            deps.producer,
            deps.sessions,
            deps.dead_letters,
            deps.tier,
            deps.clock,
            deps.hold,
        )
        if deps.sessions is None:
            raise RuntimeError(
                f"consumer {deps.spec.name} handles batches in a transaction: set DATABASE_URL"
            )
        self.transaction = deps.sessions.begin
        self.handle_batch = handler
        self.held = held  # None unless keep_key_order

    def __call__(self, message: Message[ValuesBatch[KafkaPayload]]) -> None:  # type: ignore[override]
        if self.clock() < self.hold.until or (self.held is not None and self.held.full):
            raise MessageRejected()  # a dependency is down, or too much waits behind held keys
        with log_context(consumer=self.spec.name):
            self._run(message.payload)

    def _run(self, batch: ValuesBatch[KafkaPayload]) -> None:
        pending: list[Pending] = []
        invalid: list[tuple[BrokerValue[KafkaPayload], dict[str, str], InvalidEvent]] = []
        for value in batch:
            value = cast(BrokerValue[KafkaPayload], value)
            headers = h.received(value.payload.headers, retried=self.tier is not None)
            try:
                event = parse_event(
                    value.payload.value, max_bytes=self.settings.event_max_bytes, accept=self.spec.event_types
                )
            except InvalidEvent as exc:
                invalid.append((value, headers, exc))
            else:
                pending.append(Pending(value, headers, event))
        behind = {p for p in pending if self.held is not None and self.held.holds(p)}
        # Nothing is sent or held before the transaction: a hold re-runs this whole batch.
        self._settle([p for p in pending if p not in behind])
        for value, headers, exc in invalid:
            with log_context(
                topic=value.partition.topic.name, partition=value.partition.index, offset=value.offset
            ):
                self._dead_letter(value, headers, f"InvalidEvent.{exc.kind}", str(exc))
        for p in sorted(behind, key=_position):
            cast(HeldKeys, self.held).hold(p, self.clock())

    def retry_held(self) -> None:
        """keep_key_order: the held keys that are due, run again with the events behind them."""
        if self.held is None or self.clock() < self.hold.until:
            return
        keys = self.held.due(self.clock())
        if not keys:
            return
        # A dependency down (MessageRejected): the held keys stay as they are, and wait for it.
        with log_context(consumer=self.spec.name), contextlib.suppress(MessageRejected):
            self._settle([p for key in keys for p in self.held.queue(key)], release=keys)

    def _settle(self, pending: list[Pending], release: Collection[HeldKey] = ()) -> None:
        if not pending:
            return  # nothing reached the database: it says nothing about an outage
        started = time.perf_counter()
        try:
            outcome = self._apply(pending)
        except Exception as exc:
            if isinstance(exc, DependencyUnavailable) or db_errors.unavailable(exc):
                self._hold(exc)  # the events are fine: they keep their retries
                raise MessageRejected() from exc
            raise
        self._release()  # the database answered, even if events failed
        per_event = (time.perf_counter() - started) / len(pending)
        for _ in pending:
            EVENT_PROCESSING_SECONDS.labels(self.spec.name).observe(per_event)
        if self.held is not None:
            self.held.release(release)
        for p, label in [(p, "ok") for p in outcome.applied] + [(p, "duplicate") for p in outcome.duplicates]:
            self.dead_letters.limit.record_ok(p.value.partition.index)
            EVENTS_PROCESSED.labels(self.spec.name, label).inc()
        failures = {p: exc for p, exc in outcome.failed}
        for p in sorted([*failures, *outcome.deferred], key=_position):
            with log_context(
                topic=p.value.partition.topic.name,
                partition=p.value.partition.index,
                offset=p.value.offset,
                event_id=p.event.id,
                event_type=p.event.type,
            ):
                if p in failures:
                    self._failed(p, failures[p])
                else:
                    cast(HeldKeys, self.held).hold(p, self.clock())

    def _apply(self, pending: Sequence[Pending]) -> Outcome:
        """One transaction for all; if it fails for anything but an outage, `_isolate`. A handler's
        EventFailures commits the others and fails its events alone."""
        partial: dict[str, Exception] = {}
        try:
            with self.transaction() as session:
                fresh = self._claim(session, pending)
                firsts = [p for p in pending if fresh.pop(p.id, False)]  # an id twice: its first
                if firsts:
                    try:
                        self.handle_batch([p.event for p in firsts], self._context(session))
                    except EventFailures as exc:
                        partial = exc.failures
                        self._unclaim(session, [p for p in firsts if p.event.id in partial])
        except Exception as exc:
            if isinstance(exc, DependencyUnavailable) or db_errors.unavailable(exc):
                raise
            if len(pending) == 1:
                return Outcome(failed=[(pending[0], exc)])
            log.info("a batch of %d failed (%s): isolating the failing events", len(pending), describe(exc))
            return self._isolate(pending)
        failed = [(p, partial[p.event.id]) for p in firsts if p.event.id in partial]
        down = next((exc for _, exc in failed if isinstance(exc, DependencyUnavailable)), None)
        if down is not None:
            raise down  # the batch comes again whole: what was committed is then a duplicate
        applied = [p for p in firsts if p.event.id not in partial]
        done = set(firsts)
        return Outcome(applied=applied, duplicates=[p for p in pending if p not in done], failed=failed)

    def _isolate(self, pending: Sequence[Pending]) -> Outcome:
        """The events again in one transaction, each in a savepoint: only the failing ones fail.
        With keep_key_order, an event behind a failed one of its key is deferred, not applied."""
        outcome = Outcome()
        blocked: set[HeldKey] = set()
        try:
            with self.transaction() as session:
                ctx = self._context(session)
                for p in pending:
                    if p.key in blocked:
                        outcome.deferred.append(p)
                        continue
                    try:
                        with session.begin_nested():
                            fresh = bool(self._claim(session, [p]))
                            if fresh:
                                self.handle_batch([p.event], ctx)
                    except Exception as exc:
                        if isinstance(exc, EventFailures):  # its one event; the savepoint undid it
                            exc = exc.failures.get(p.event.id, exc)
                        if isinstance(exc, DependencyUnavailable) or db_errors.unavailable(exc):
                            raise exc from None
                        outcome.failed.append((p, exc))
                        if self.held is not None and self._holds_key(p, exc):
                            blocked.add(p.key)
                    else:
                        (outcome.applied if fresh else outcome.duplicates).append(p)
        except Exception as exc:
            if isinstance(exc, DependencyUnavailable) or db_errors.unavailable(exc):
                raise
            # The commit itself failed (a serialization failure, a deferred constraint): nothing
            # was applied, so what was counted as applied failed too, with that error.
            failed = [(p, exc) for p in outcome.applied] + outcome.failed
            return Outcome(duplicates=outcome.duplicates, failed=failed, deferred=outcome.deferred)
        return outcome

    def _claim(self, session: Session, pending: Sequence[Pending]) -> dict[uuid.UUID, bool]:
        """Claims every event id with one insert; returns the ids not claimed before."""
        rows = [{"consumer": self.spec.name, "event_id": p.id} for p in pending]
        claimed = session.scalars(
            insert(ProcessedEvent).values(rows).on_conflict_do_nothing().returning(ProcessedEvent.event_id)
        )
        return dict.fromkeys(claimed, True)

    def _unclaim(self, session: Session, pending: Sequence[Pending]) -> None:
        ids = [p.id for p in pending]
        session.execute(
            delete(ProcessedEvent).where(
                ProcessedEvent.consumer == self.spec.name, ProcessedEvent.event_id.in_(ids)
            )
        )

    def _failed(self, p: Pending, exc: Exception) -> None:
        if isinstance(exc, PermanentError) or db_errors.bad_data(exc):
            self._dead_letter(p.value, p.headers, _error_class(exc), str(exc))
            self._give_up(p.event, give_up_reason(exc))
        elif self.held is None:
            if self._retry_or_dead_letter(p.value, p.headers, exc):
                self._give_up(p.event, give_up_reason(exc, retried=True))
        elif not self._holds_key(p, exc):
            log.error("retries exhausted", exc_info=exc)
            self._dead_letter(p.value, p.headers, _error_class(exc), str(exc))
            self._give_up(p.event, give_up_reason(exc, retried=True))
        else:
            failure = self._failure(p.value, p.headers, _error_class(exc), str(exc))
            delay = self.spec.retry_delays_s[failure.attempts - 1] * random.uniform(0.5, 1.0)
            # The next failure counts on from this one, and a dead letter names where it came from.
            p.headers = {**p.headers, **h.as_dict(failure.headers())}
            self.held.hold(p, self.clock() + delay)
            log.warning(
                "key held, retried in %.1f s: %s: %s", delay, failure.error_class, failure.error_message
            )
            EVENTS_PROCESSED.labels(self.spec.name, "retried").inc()

    def _holds_key(self, p: Pending, exc: Exception) -> bool:
        """keep_key_order: whether this failure holds the key (it has retries left) rather than
        dead-lettering the event, after which the key's later events go on."""
        if isinstance(exc, PermanentError) or db_errors.bad_data(exc):
            return False
        return int(p.headers.get(h.ATTEMPTS, "0") or 0) < len(self.spec.retry_delays_s)


def _position(p: Pending) -> tuple[int, int]:
    return (p.value.partition.index, p.value.offset)


class DueGate(ProcessingStrategy[KafkaPayload]):
    """Retry tiers: a message joins a batch once it is due; until then it is refused, and arroyo
    keeps it, pauses the partition and keeps polling (the batch before it still runs on time)."""

    def __init__(self, next_step: ProcessingStrategy[KafkaPayload], clock: Clock) -> None:
        self._next = next_step
        self._clock = clock

    def submit(self, message: Message[KafkaPayload]) -> None:
        headers = h.received(message.payload.headers, retried=True)
        if self._clock() < float(headers.get(h.DUE_AT, "0") or 0):
            raise MessageRejected()
        self._next.submit(message)

    def poll(self) -> None:
        self._next.poll()

    def join(self, timeout: float | None = None) -> None:
        self._next.join(timeout)

    def close(self) -> None:
        self._next.close()

    def terminate(self) -> None:
        self._next.terminate()


class BatchStrategy(ProcessingStrategy[KafkaPayload]):
    """The chain of one partition assignment, plus the held keys' retries on every poll."""

    def __init__(self, processor: BatchProcessor, commit: Commit, max_events: int, max_wait_s: float) -> None:
        self._processor = processor
        self._commit = HeldBackCommit(commit, processor.held) if processor.held is not None else commit
        batches = BatchStep(max_events, max_wait_s, RunTask(processor, CommitOffsets(self._commit)))
        self._steps = batches if processor.tier is None else DueGate(batches, processor.clock)

    def submit(self, message: Message[KafkaPayload]) -> None:
        self._steps.submit(message)

    def poll(self) -> None:
        self._processor.retry_held()
        self._steps.poll()

    def join(self, timeout: float | None = None) -> None:
        if self._processor.hold.holding:
            # Flushing would be refused until the timeout: the batch in hand is left uncommitted
            # for whoever reads the partition next, and what is done is committed.
            log.warning("a dependency is down: leaving the batch in hand to be read again")
            self._commit({}, True)
            return
        self._steps.join(timeout)

    def close(self) -> None:
        self._steps.close()

    def terminate(self) -> None:
        self._steps.terminate()


class BatchStrategyFactory(ProcessingStrategyFactory[KafkaPayload]):
    """A fresh processor per assignment: held keys belong to the partitions that were assigned
    (on a rebalance their events are read again, by whoever gets the partition)."""

    def __init__(self, deps: ConsumerDeps) -> None:
        spec = deps.spec
        assert spec.batch is not None and spec.handler is not None
        self._deps = deps
        self._handler = cast(BatchHandler, registry.load(spec.handler))
        self._max_events = spec.batch.max_events or deps.settings.batch_max_events
        wait_ms = spec.batch.max_wait_ms
        self._max_wait_s = (deps.settings.batch_max_wait_ms if wait_ms is None else wait_ms) / 1000

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        ordered = cast(registry.Batching, self._deps.spec.batch).keep_key_order
        processor = BatchProcessor(self._deps, self._handler, HeldKeys() if ordered else None)
        return BatchStrategy(processor, commit, self._max_events, self._max_wait_s)
