"""webhook-deliveries: many deliveries in flight, a slow endpoint held to its own share.

One arroyo strategy per topic (the main topic and each retry tier), built from three stages that
batch themselves (each takes everything that queued up while it was busy):

    submit (arroyo thread) -> lookup thread -> HTTP loop, per-endpoint limit -> writer thread
                                   (webhooks, dedupe)    (attempt journaled, sent)    (logs, retries, commit)

The attempts are tasks on one asyncio event loop thread (`shared.http.aio`, behind the
safe client's rules), not a thread each: a thread per request in flight spent more CPU on the
HTTP client and on handing the GIL around than on the delivery itself. The loop, the
per-endpoint limit, the attempt journal and the HTTP client are one per process (`Outbound`),
shared by the main topic's and the tiers' pipelines, so the limits hold for all of them together.

- An offset is committed only once its delivery is recorded: logged and finished, or its retry is
  confirmed by the broker. Completion is out of order, so offsets are committed up to the oldest
  unfinished one (`OffsetTracker`); a crash re-sends what was not recorded, with the same
  `webhook-id`, so receivers can deduplicate.
- Every attempt gets its `webhook_logs` row, a crash's too: it is journaled before it is sent,
  and one a killed worker left unlogged is logged as interrupted when its delivery is read again;
  the re-send is numbered after it (`journal`, `store.lookup`).
- A terminal delivery (`plane_workers.webhook_deliveries`) is not sent again, except by replay.
- A retry goes to tier `attempt - 1` with its due time; the tier holds it in memory until due,
  earliest first, whatever its partition (`due`), so retries neither hold up the main topic nor
  wait for one another.
- A stalled endpoint (nothing answered for STALLED_S) holds WEBHOOK_ENDPOINT_CONCURRENCY slots
  and, in memory, `WAITING_PER_ENDPOINT` of its deliveries; further ones are deferred, unsent
  and uncounted, to retry tier 0 for WEBHOOK_TIMEOUT_S, so they never fill the pipeline's intake
  (max_pending) and stop every other endpoint. A busy endpoint that keeps answering is not.
- A database or broker outage holds the stage and retries it, and sets the process's hold (the
  consumer is not ready meanwhile). A delivery whose lookup or record fails otherwise is split
  out of its batch and dead-lettered alone (`stage.Stage`); the others go on.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from arroyo.backends.kafka import KafkaPayload
from arroyo.processing.strategies import (
    MessageRejected,
    ProcessingStrategy,
    ProcessingStrategyFactory,
)
from arroyo.types import BrokerValue, Commit, Message, Partition
from sqlalchemy.orm import Session, sessionmaker

from services.webhooks import attempt, store
from services.webhooks.attempt import Delivery, Endpoint, Outcome, Result
from services.webhooks.deactivation import announce
from services.webhooks.due import DueQueue
from services.webhooks.limiter import Task
from services.webhooks.outbound import Outbound
from services.webhooks.schedule import next_delay
from services.webhooks.stage import OffsetTracker, Stage
from shared.events.envelope import InvalidEvent, parse_event
from shared.kafka import headers as h
from shared.kafka.runtime import ConsumerDeps
from shared.kafka.strategy import describe
from shared.metrics import EVENT_PROCESSING_SECONDS, EVENTS_PROCESSED, WEBHOOK_ENDPOINTS_DISABLED

log = logging.getLogger(__name__)

REPLAY_HEADER = "replay"

RetryMessage = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

# Deliveries of one endpoint that wait in memory for its slots; beyond them, they are deferred.
WAITING_PER_ENDPOINT = 64
STALLED_S = 2.0
SHED_EVERY_S = 0.5
DEFERRED = "deferred"  # error-class of a deferred delivery's tier message
# The writer's batches wait this long for more outcomes: the answer was received already, so only
# the offset commit and a retry's produce wait, and a transaction's fixed cost is shared by more
# (at a few hundred deliveries a second a batch would otherwise hold one or two).
WRITER_LINGER_S = 0.05


@dataclass(frozen=True)
class Job:
    partition: Partition
    offset: int
    delivery: Delivery
    headers: tuple[tuple[str, bytes], ...]
    endpoint: Endpoint | None = None  # set by the lookup, for active webhooks


@dataclass
class Finished:
    """A job the writer must record. `outcome` is None when no attempt was made: the webhook was
    inactive or gone, and the delivery is kept (`skipped`) for replay; or, `deferred`, its endpoint
    had too many deliveries waiting, and it goes to tier 0 as it is."""

    job: Job
    outcome: Outcome | None = None
    deferred: bool = False
    # Set once the broker confirmed the retry: a batch tried again (the database was down, or an
    # item was split out) must not send it twice.
    retry_sent: bool = False


class DeliveryPipeline(ProcessingStrategy[KafkaPayload]):
    def __init__(
        self, commit: Commit, deps: ConsumerDeps, sessions: sessionmaker[Session], outbound: Outbound
    ) -> None:
        self._commit = commit
        self._deps = deps
        self._settings = deps.settings
        self._sessions = sessions
        self._client = outbound.client
        self._limiter = outbound.limiter
        self._journal = outbound.journal
        self._scale = self._settings.webhook_time_scale
        self._name = deps.spec.name
        self._fatal: list[BaseException] = []
        self._offsets = OffsetTracker()
        self._done: queue.SimpleQueue[tuple[Partition, int]] = queue.SimpleQueue()
        self._max_pending = max(256, 8 * self._settings.webhook_concurrency)
        self._not_due: DueQueue[tuple[BrokerValue[KafkaPayload], dict[str, str]]] = DueQueue()
        self._next_shed = 0.0
        self._dead_letter_lock = threading.Lock()  # the stages set deliveries aside too
        self._closed = False
        self._seconds = EVENT_PROCESSING_SECONDS.labels(self._name)
        self._lookup = Stage(f"{self._name}-lookup", self._look_up, self._set_aside, self._fatal, deps.hold)
        self._writer = Stage(
            f"{self._name}-writer", self._record, self._set_aside, self._fatal, deps.hold, WRITER_LINGER_S
        )
        self._lookup.start()
        self._writer.start()

    # --- arroyo's side ------------------------------------------------------------------------

    def submit(self, message: Message[KafkaPayload]) -> None:
        assert not self._closed
        self._raise_fatal()
        value = message.value
        assert isinstance(value, BrokerValue)
        headers = h.received(value.payload.headers, retried=self._deps.tier is not None)
        if self._deps.tier is not None:
            due = float(headers.get(h.DUE_AT) or 0)
            if self._deps.clock() < due:
                size = len(value.payload.value)
                if not self._not_due.has_room(size):
                    raise MessageRejected()  # the tier's budget is full: arroyo pauses it
                self._offsets.add(value.partition, value.offset)
                self._not_due.push(due, (value, headers), size)
                return
        if self._in_flight() >= self._max_pending:
            raise MessageRejected()
        self._offsets.add(value.partition, value.offset)
        self._start(value, headers)

    def poll(self) -> None:
        self._raise_fatal()
        self._shed_stalled()
        for value, headers in self._not_due.pop_due(self._deps.clock()):
            self._start(value, headers)  # due ones go ahead even past max_pending: they are read
        self._drain_done()

    def join(self, timeout: float | None = None) -> None:
        # What is not due yet is dropped, uncommitted: the partitions' next owner reads it again.
        self._not_due.clear()
        deadline = time.monotonic() + (timeout if timeout is not None else 30.0)
        while self._in_flight() and time.monotonic() < deadline and not self._fatal:
            self._drain_done()
            time.sleep(0.01)
        self._drain_done(force=True)
        self._stop()

    def close(self) -> None:
        self._closed = True

    def terminate(self) -> None:
        self._closed = True
        self._stop()

    def _shed_stalled(self) -> None:
        """Deliveries waiting beyond WAITING_PER_ENDPOINT for an endpoint that stalled are taken
        back and put off, every SHED_EVERY_S: the one place a stall is judged."""
        now = time.monotonic()
        if now < self._next_shed:
            return
        self._next_shed = now + SHED_EVERY_S
        for task in self._limiter.shed(self, WAITING_PER_ENDPOINT, STALLED_S):
            assert isinstance(task, functools.partial)
            self._writer.put(Finished(task.args[0], deferred=True))

    def _in_flight(self) -> int:
        return self._offsets.unfinished() - len(self._not_due)

    def _start(self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str]) -> None:
        try:
            delivery = self._parse(value, headers)
        except InvalidEvent as exc:
            payload = value.payload
            self._dead_letter(
                value.partition, value.offset, payload.key, payload.value, list(payload.headers),
                f"InvalidEvent.{exc.kind}", str(exc),
            )  # fmt: skip
            self._offsets.finish(value.partition, value.offset)
            return
        self._lookup.put(Job(value.partition, value.offset, delivery, tuple(value.payload.headers)))

    # --- the stages ------------------------------------------------------------------------------

    def _parse(self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str]) -> Delivery:
        event = parse_event(
            value.payload.value, max_bytes=self._settings.event_max_bytes, accept=self._deps.spec.event_types
        )
        first_failed = headers.get(h.FIRST_FAILED_AT)
        return Delivery(
            id=event.id,
            webhook_id=uuid.UUID(event.data["webhook_id"]),
            workspace_id=uuid.UUID(event.data["workspace_id"]),
            event=event.data["event"],
            payload=event.data["payload"],
            event_time=event.time,
            attempt=int(headers.get(h.ATTEMPTS) or 0) + 1,
            envelope=value.payload.value,
            first_failed_at=datetime.fromisoformat(first_failed).timestamp() if first_failed else None,
            replay=headers.get(REPLAY_HEADER) == "1",
        )

    def _look_up(self, jobs: list[Job]) -> None:
        with self._sessions.begin() as session:
            found = store.lookup(
                session.connection(),
                [j.delivery for j in jobs],
                now=self._deps.clock(),
                grace_s=self._settings.webhook_key_grace_s * self._scale,
            )
        ready: list[tuple[uuid.UUID, object, Task]] = []
        for job in jobs:
            delivery = job.delivery
            if (interrupted := found.interrupted.get(delivery.id, 0)) >= delivery.attempt:
                # An attempt a killed worker made counts: the receiver may have seen it.
                delivery = replace(delivery, attempt=interrupted + 1)
                job = replace(job, delivery=delivery)
            status = found.terminal.get(delivery.id)
            if status == store.Terminal.SUCCEEDED or (status is not None and not delivery.replay):
                EVENTS_PROCESSED.labels(self._name, "duplicate").inc()
                self._done.put((job.partition, job.offset))
            elif delivery.webhook_id not in found.endpoints:
                self._writer.put(Finished(job))
            else:
                job = replace(job, endpoint=found.endpoints[delivery.webhook_id])
                ready.append((delivery.webhook_id, self, functools.partial(self._attempt, job)))
        self._limiter.submit_many(ready)

    async def _attempt(self, job: Job) -> None:
        """On the HTTP loop."""
        endpoint = job.endpoint
        assert endpoint is not None
        if not await self._journal.begin(job.delivery):
            return  # the process is stopping: unsent and uncommitted, the next owner sends it
        try:
            outcome = await attempt.send_async(
                self._client,
                job.delivery,
                endpoint,
                timeout_s=self._settings.webhook_timeout_s,
                max_response_bytes=self._settings.webhook_response_max_bytes,
            )
        except Exception as exc:  # a bug in signing or building the request: record it, retry it
            log.exception("delivery %s: attempt failed before sending", job.delivery.id)
            outcome = Outcome(job.delivery, Result.FAILED, error=f"{type(exc).__name__}: {exc}")
        self._seconds.observe(outcome.elapsed_s)
        self._writer.put(Finished(job, outcome))

    def _record(self, items: list[Finished]) -> None:
        now = datetime.fromtimestamp(self._deps.clock(), UTC)
        batch = store.Batch(attempts=[], terminal=[], exhausted=[])
        retries: dict[str, list[tuple[Finished, RetryMessage]]] = defaultdict(list)
        outcomes: list[str] = []
        for item in items:
            delivery = item.job.delivery
            if item.deferred:
                if not item.retry_sent:
                    topic, message = self._deferred_message(item.job)
                    retries[topic].append((item, message))
                outcomes.append(DEFERRED)
                continue
            if item.outcome is None:
                batch.terminal.append(store.terminal_row(delivery, store.Terminal.SKIPPED))
                outcomes.append("skipped")
                continue
            outcome = item.outcome
            batch.attempts.append(outcome)
            if outcome.result is Result.FAILED and outcome.control is not None:
                status = store.Terminal.ABORTED  # the receiver asked: no retries (and maybe off)
            elif outcome.result is Result.FAILED:
                delay = next_delay(
                    delivery.attempt - 1,
                    overloaded=outcome.overloaded,
                    retry_after_s=outcome.retry_after_s,
                    time_scale=self._scale,
                )
                if delay is not None:
                    if not item.retry_sent:
                        topic, message = self._retry_message(item.job, outcome, delay)
                        retries[topic].append((item, message))
                    outcomes.append("retried")
                    continue
                batch.exhausted.append(outcome)
                status = store.Terminal.EXHAUSTED
            else:
                status = {
                    Result.SUCCEEDED: store.Terminal.SUCCEEDED,
                    Result.GONE: store.Terminal.GONE,
                    Result.BLOCKED: store.Terminal.BLOCKED,
                }[outcome.result]
            batch.terminal.append(store.terminal_row(delivery, status))
            outcomes.append(status)

        for topic, pending in retries.items():  # confirmed before the attempt is recorded
            self._deps.producer.send_raw_many(topic, [message for _, message in pending])
            for item, _ in pending:
                item.retry_sent = True
        with self._sessions.begin() as session:
            disabled = store.record(
                session.connection(),
                batch,
                now=now,
                disable_after=timedelta(seconds=self._settings.webhook_disable_after_s * self._scale),
                on_disabled=lambda d: announce(self._settings, self._deps.producer, d),
            )
        WEBHOOK_ENDPOINTS_DISABLED.inc(len(disabled))  # committed: a rolled-back disable is retried
        for outcome_name, n in Counter(outcomes).items():
            EVENTS_PROCESSED.labels(self._name, outcome_name).inc(n)
        for item in items:
            self._done.put((item.job.partition, item.job.offset))

    def _retry_message(self, job: Job, outcome: Outcome, delay: float) -> tuple[str, RetryMessage]:
        delivery = job.delivery
        tier = delivery.attempt - 1
        failure = h.Failure.after(
            job.partition.topic.name,
            job.partition.index,
            job.offset,
            h.received(job.headers, retried=self._deps.tier is not None),
            "http" if outcome.status is not None else "network",
            outcome.error or f"HTTP {outcome.status}",
            self._deps.clock(),
        )
        topic = self._settings.topic(self._deps.spec.retry_topic(tier))
        message_headers = h.retry_headers(job.headers, failure, self._deps.clock() + delay, tier)
        return topic, (str(delivery.webhook_id).encode(), delivery.envelope, message_headers)

    def _deferred_message(self, job: Job) -> tuple[str, RetryMessage]:
        """Tier 0, due after WEBHOOK_TIMEOUT_S, with the delivery's attempt count and first
        failure as they were: a deferral is not an attempt, and it is not logged."""
        received = h.received(job.headers, retried=self._deps.tier is not None)
        now = self._deps.clock()
        failure = h.Failure.after(
            job.partition.topic.name, job.partition.index, job.offset, received, DEFERRED,
            f"endpoint busy: {WAITING_PER_ENDPOINT} deliveries waiting", now,
        )  # fmt: skip
        failure = replace(failure, attempts=job.delivery.attempt - 1)
        message_headers = h.retry_headers(job.headers, failure, now + self._settings.webhook_timeout_s, 0)
        if h.FIRST_FAILED_AT not in received:
            message_headers = [(k, v) for k, v in message_headers if k != h.FIRST_FAILED_AT]
        topic = self._settings.topic(self._deps.spec.retry_topic(0))
        return topic, (str(job.delivery.webhook_id).encode(), job.delivery.envelope, message_headers)

    def _set_aside(self, item: Job | Finished, exc: BaseException) -> None:
        """A stage failed on this delivery alone, and not for a passing reason: dead-letter it
        (its envelope can be replayed from the DLQ) rather than stop every other delivery."""
        job = item.job if isinstance(item, Finished) else item
        log.error("delivery %s: set aside after %s", job.delivery.id, describe(exc))
        self._dead_letter(
            job.partition, job.offset, str(job.delivery.webhook_id).encode(), job.delivery.envelope,
            list(job.headers), f"{type(exc).__module__}.{type(exc).__qualname__}", describe(exc),
        )  # fmt: skip
        self._done.put((job.partition, job.offset))

    def _dead_letter(
        self,
        partition: Partition,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
        cls: str,
        msg: str,
    ) -> None:
        received = h.received(headers, retried=self._deps.tier is not None)
        now = self._deps.clock()
        failure = h.Failure.after(partition.topic.name, partition.index, offset, received, cls, msg, now)
        with self._dead_letter_lock:
            self._deps.dead_letters.send(key, value, headers, failure, partition.index)
        log.warning("dead-lettered: %s: %s", cls, msg)
        EVENTS_PROCESSED.labels(self._name, "dead_lettered").inc()

    # --- bookkeeping -----------------------------------------------------------------------------

    def _drain_done(self, force: bool = False) -> None:
        while True:
            try:
                partition, offset = self._done.get_nowait()
            except queue.Empty:
                break
            self._offsets.finish(partition, offset)
        positions = self._offsets.committable()
        if positions or force:
            self._commit(positions, force=force)

    def _raise_fatal(self) -> None:
        if self._fatal:
            raise RuntimeError(f"{self._name}: a pipeline stage failed") from self._fatal[0]

    def _stop(self) -> None:
        self._lookup.stop()
        self._writer.stop()
        self._limiter.withdraw(self)


class DeliveryPipelineFactory(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, deps: ConsumerDeps) -> None:
        if deps.sessions is None:
            raise RuntimeError("webhook-deliveries needs DATABASE_URL")
        self._deps = deps
        self._sessions = deps.sessions
        self._outbound = Outbound.of_process(deps, deps.sessions)

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        return DeliveryPipeline(commit, self._deps, self._sessions, self._outbound)


def strategy_factory(deps: ConsumerDeps) -> ProcessingStrategyFactory[KafkaPayload]:
    return DeliveryPipelineFactory(deps)
