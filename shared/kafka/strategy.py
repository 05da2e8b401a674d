"""The processing step every consumer shares: validate, run the handler once, retry or DLQ.

arroyo drives it: `RunTask(process) -> CommitOffsets`. An offset is committed only after
`process` returned, i.e. after the handler's transaction committed, the retry was confirmed by
the broker, or the dead letter was.

While a dependency is down (shared.db.errors.unavailable, or the handler's DependencyUnavailable)
every processor of the process holds: it rejects messages (arroyo pauses the partitions, keeps
polling, commits nothing past them). The runtime reads the hold: the consumer is not ready while
it lasts, and stays alive (shared/health.py), so probes see the outage without restarting pods.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from arroyo.backends.kafka import KafkaPayload
from arroyo.processing.strategies import (
    CommitOffsets,
    MessageRejected,
    ProcessingStrategy,
    ProcessingStrategyFactory,
    RunTask,
)
from arroyo.types import BrokerValue, Commit, Message, Partition
from confluent_kafka import KafkaError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from shared.db import errors as db_errors
from shared.db.state import ProcessedEvent
from shared.events.envelope import Event, InvalidEvent, parse_event
from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.deadletter import DeadLetters
from shared.kafka.handler import DependencyUnavailable, Handler, HandlerContext, PermanentError
from shared.logs import log_context
from shared.metrics import EVENT_PROCESSING_SECONDS, EVENTS_PROCESSED
from shared.registry import ConsumerSpec, load
from shared.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
GiveUp = Callable[[Event, str, Settings], None]

HOLD_S = 1.0  # while a dependency is down, the same event is tried again this often


@dataclass
class Hold:
    """A dependency is down: one per process, shared by the main topic's and every retry tier's
    processor, so none of them works (and the process is not ready) meanwhile."""

    since: float | None = None  # when it was found down; None while all is well
    until: float = 0.0  # no message is tried before this

    @property
    def holding(self) -> bool:
        return self.since is not None

    def down(self, exc: BaseException, now: float) -> None:
        if self.since is None:
            self.since = now
            log.warning("dependency unavailable, holding the partitions: %s", describe(exc))
        self.until = now + HOLD_S

    def up(self, now: float) -> None:
        if self.since is not None:
            log.warning("dependency available again after %.0f s", now - self.since)
            self.since = None
            self.until = 0.0


class EventProcessor:
    """Handles one message end to end. `tier` is None on the main topic, i on retry tier i."""

    def __init__(
        self,
        spec: ConsumerSpec,
        handler: Handler,
        settings: Settings,
        producer: EventProducer,
        sessions: sessionmaker[Session] | None,
        dead_letters: DeadLetters,
        tier: int | None = None,
        clock: Clock = time.time,
        hold: Hold | None = None,
    ) -> None:
        self.spec = spec
        self.handler = handler
        self.settings = settings
        self.producer = producer
        self.sessions = sessions
        self.dead_letters = dead_letters
        self.tier = tier
        self.clock = clock
        self.hold = hold or Hold()
        self.on_give_up: GiveUp | None = None
        if spec.on_give_up is not None:
            self.on_give_up = cast(GiveUp, load(spec.on_give_up))

    def __call__(self, message: Message[KafkaPayload]) -> None:
        value = message.value
        assert isinstance(value, BrokerValue)
        payload = value.payload
        headers = h.received(payload.headers, retried=self.tier is not None)
        now = self.clock()
        if self.tier is not None and now < float(headers.get(h.DUE_AT, "0") or 0):
            raise MessageRejected()  # not due: arroyo pauses the partition and keeps polling
        if now < self.hold.until:
            raise MessageRejected()  # a dependency is down: do not hammer it

        with log_context(
            consumer=self.spec.name,
            topic=value.partition.topic.name,
            partition=value.partition.index,
            offset=value.offset,
        ):
            self._process(value, headers)

    def _process(self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str]) -> None:
        payload = value.payload
        try:
            event = parse_event(
                payload.value, max_bytes=self.settings.event_max_bytes, accept=self.spec.event_types
            )
        except InvalidEvent as exc:
            self._dead_letter(value, headers, f"InvalidEvent.{exc.kind}", str(exc))
            return

        with log_context(event_id=event.id, event_type=event.type):
            started = time.perf_counter()
            try:
                outcome = self._run_handler(event)
            except Exception as exc:
                if isinstance(exc, DependencyUnavailable) or db_errors.unavailable(exc):
                    self._hold(exc)  # the event is fine: it keeps its retries
                    raise MessageRejected() from exc
                self._release()  # the handler got through to its dependencies, even if it failed
                if isinstance(exc, PermanentError) or db_errors.bad_data(exc):
                    # Retrying changes nothing (PostgreSQL refused the data: SQLSTATE 22, 23).
                    self._dead_letter(value, headers, _error_class(exc), str(exc))
                    self._give_up(event, give_up_reason(exc))
                elif self._retry_or_dead_letter(value, headers, exc):
                    self._give_up(event, give_up_reason(exc, retried=True))
                return
            finally:
                EVENT_PROCESSING_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        self._release()
        self.dead_letters.limit.record_ok(value.partition.index)
        EVENTS_PROCESSED.labels(self.spec.name, outcome).inc()

    def _run_handler(self, event: Event) -> str:
        if self.spec.idempotency == "handler" or self.sessions is None:
            self.handler(event, self._context(None))
            return "ok"
        with self.sessions.begin() as session:
            claimed = session.execute(
                insert(ProcessedEvent)
                .values(consumer=self.spec.name, event_id=uuid.UUID(event.id))
                .on_conflict_do_nothing()
                .returning(ProcessedEvent.event_id)
            ).first()
            if claimed is None:
                return "duplicate"  # its effects were committed by an earlier delivery
            self.handler(event, self._context(session))
        return "ok"

    def _context(self, session: Session | None) -> HandlerContext:
        return HandlerContext(self.spec.name, self.settings, self.producer, session)

    def _failure(
        self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str], cls: str, msg: str
    ) -> h.Failure:
        partition = value.partition
        return h.Failure.after(
            partition.topic.name, partition.index, value.offset, headers, cls, msg, self.clock()
        )

    def _dead_letter(
        self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str], cls: str, msg: str
    ) -> None:
        failure = self._failure(value, headers, cls, msg)
        payload = value.payload
        self.dead_letters.send(
            payload.key, payload.value, list(payload.headers), failure, value.partition.index
        )
        log.warning("dead-lettered: %s: %s", cls, msg, extra={"fields": {"attempts": failure.attempts}})
        EVENTS_PROCESSED.labels(self.spec.name, "dead_lettered").inc()

    def _give_up(self, event: Event, reason: str) -> None:
        if self.on_give_up is None:
            return
        try:
            self.on_give_up(event, reason, self.settings)
        except Exception:  # the event is safe in the DLQ; only its status is stale
            log.exception("on_give_up failed for a dead-lettered event")

    def _retry_or_dead_letter(
        self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str], exc: Exception
    ) -> bool:
        """True when the event was dead-lettered (its retries spent), False when sent to a tier."""
        failure = self._failure(value, headers, _error_class(exc), str(exc))
        delays = self.spec.retry_delays_s
        tier = failure.attempts - 1
        if tier >= len(delays):
            log.error("retries exhausted", exc_info=exc)
            self._dead_letter(value, headers, failure.error_class, failure.error_message)
            return True
        # Full jitter on the upper half, so a burst of failures does not come back as a burst.
        due = self.clock() + delays[tier] * random.uniform(0.5, 1.0)
        payload = value.payload
        self.producer.send_raw(
            self.settings.topic(self.spec.retry_topic(tier)),
            payload.value,
            key=payload.key,
            headers=h.retry_headers(payload.headers, failure, due, tier),
        )
        log.warning("will retry in tier %d: %s: %s", tier, failure.error_class, failure.error_message)
        self.dead_letters.limit.record_ok(value.partition.index)
        EVENTS_PROCESSED.labels(self.spec.name, "retried").inc()
        return False

    def _hold(self, exc: BaseException) -> None:
        self.hold.down(exc, self.clock())

    def _release(self) -> None:
        self.hold.up(self.clock())


def give_up_reason(exc: BaseException, *, retried: bool = False) -> str:
    """What on_give_up is told, fit for a user to read (an export's `reason`)."""
    return f"{'retries spent: ' if retried else ''}{type(exc).__name__}: {exc}"


def _error_class(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def describe(exc: BaseException) -> str:
    """The first exception in the chain that has a message, with its class: arroyo's commit
    failure is a RetryException without one, raised from the KafkaException that says why."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if error.args and isinstance(error.args[0], KafkaError):
            kafka_error = error.args[0]
            return f"{type(error).__name__}: {kafka_error.name()}: {kafka_error.str()}"
        if lines := str(error).strip().splitlines():
            return f"{type(error).__name__}: {lines[0]}"
        error = error.__cause__ or error.__context__
    return type(exc).__name__


class EventStrategyFactory(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, processor: EventProcessor) -> None:
        self.processor = processor

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        return RunTask(self.processor, CommitOffsets(commit))
