"""webhook-deliveries: many deliveries in flight, a slow endpoint held to its own share.

One arroyo strategy per topic (the main topic and each retry tier), built from three stages that
batch themselves (each takes everything that queued up while it was busy):

    submit (arroyo thread) -> lookup thread -> HTTP pool, per-endpoint limit -> writer thread
                                   (webhooks, dedupe)                           (logs, retries, commit)

The HTTP pool, the per-endpoint limit and the HTTP client are one per process (`Outbound`), shared
by the main topic's and the tiers' pipelines, so the limits hold for all of them together.

- An offset is committed only once its delivery is recorded: logged and finished, or its retry is
  confirmed by the broker. Completion is out of order, so offsets are committed up to the oldest
  unfinished one (`OffsetTracker`); a crash re-sends what was not recorded, with the same
  `webhook-id`, so receivers can deduplicate.
- A terminal delivery (`plane_workers.webhook_deliveries`) is not sent again, except by replay.
- A retry goes to tier `attempt - 1` with its due time; that tier's strategy refuses it until it
  is due (arroyo pauses the partition), so retries never hold up the main topic.
- A database or broker outage holds the stage and retries it, and sets the process's hold (the
  consumer is not ready meanwhile); a bug in a stage stops the consumer.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from arroyo.backends.kafka import KafkaPayload
from arroyo.processing.strategies import (
    MessageRejected,
    ProcessingStrategy,
    ProcessingStrategyFactory,
)
from arroyo.types import BrokerValue, Commit, Message, Partition
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from services.webhooks import attempt, store
from services.webhooks.attempt import Delivery, Endpoint, Outcome, Result
from services.webhooks.deactivation import notify_owner
from services.webhooks.schedule import next_delay
from shared.db import errors as db_errors
from shared.events.envelope import InvalidEvent, parse_event
from shared.events.producer import DeliveryFailed
from shared.http import Allowlist, SafeHttpClient
from shared.kafka import headers as h
from shared.kafka.runtime import ConsumerDeps
from shared.kafka.strategy import Hold
from shared.metrics import EVENT_PROCESSING_SECONDS, EVENTS_PROCESSED, WEBHOOK_ENDPOINTS_DISABLED

log = logging.getLogger(__name__)

REPLAY_HEADER = "replay"
BATCH_MAX = 500
HOLD_S = 1.0  # pause of a stage whose database or broker is down


def transient(exc: BaseException) -> bool:
    """Hold the stage and retry its batch: the database is unavailable (shared.db.errors), or
    failed in passing (deadlock, statement timeout), or the broker or a socket did. Anything else,
    bad data included, is a bug that stops the consumer."""
    return db_errors.unavailable(exc) or isinstance(exc, sa_exc.OperationalError | DeliveryFailed | OSError)


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
    inactive or gone, and the delivery is kept (`skipped`) for replay."""

    job: Job
    outcome: Outcome | None = None


class OffsetTracker:
    """Offsets finish out of order; Kafka can only be told 'everything before N is done'."""

    def __init__(self) -> None:
        self._open: dict[Partition, OrderedDict[int, bool]] = defaultdict(OrderedDict)
        self._unfinished = 0

    def add(self, partition: Partition, offset: int) -> None:
        self._open[partition][offset] = False
        self._unfinished += 1

    def finish(self, partition: Partition, offset: int) -> None:
        if self._open[partition].get(offset) is False:
            self._open[partition][offset] = True
            self._unfinished -= 1

    def committable(self) -> dict[Partition, int]:
        positions = {}
        for partition, offsets in self._open.items():
            last = None
            while offsets and next(iter(offsets.values())):
                last, _ = offsets.popitem(last=False)
            if last is not None:
                positions[partition] = last + 1
        return positions

    def unfinished(self) -> int:
        """Finished offsets held back behind an unfinished one do not count: a hanging endpoint
        must not stop the intake for every other endpoint."""
        return self._unfinished


class EndpointLimiter:
    """At most `per_endpoint` attempts in flight per webhook, across the main topic and every
    retry tier of the process; the pool (WEBHOOK_CONCURRENCY threads) bounds the total.

    A hanging endpoint ties up `per_endpoint` threads, never the pool; its other deliveries wait
    in its own queue while every other endpoint goes on. Tasks carry their owner (a pipeline): one
    that stops on a rebalance or shutdown withdraws its waiting tasks, whose messages are then
    read again by the partitions' next owner rather than sent from a pipeline that is gone."""

    def __init__(self, pool: ThreadPoolExecutor, per_endpoint: int) -> None:
        self._pool = pool
        self._per_endpoint = per_endpoint
        self._lock = threading.Lock()
        self._busy: dict[uuid.UUID, int] = defaultdict(int)
        self._waiting: dict[uuid.UUID, deque[tuple[object, Callable[[], None]]]] = defaultdict(deque)

    def submit(self, key: uuid.UUID, owner: object, task: Callable[[], None]) -> None:
        with self._lock:
            if self._busy[key] >= self._per_endpoint:
                self._waiting[key].append((owner, task))
                return
            self._busy[key] += 1
        self._pool.submit(self._work, key, task)

    def withdraw(self, owner: object) -> None:
        """Drop the owner's tasks that have not started (those running finish on their own)."""
        with self._lock:
            for key in list(self._waiting):
                kept = deque(item for item in self._waiting[key] if item[0] is not owner)
                if kept:
                    self._waiting[key] = kept
                else:
                    del self._waiting[key]

    def close(self) -> None:
        """At process end: what has not started is dropped (its offsets were never committed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _work(self, key: uuid.UUID, task: Callable[[], None]) -> None:
        while True:
            try:
                task()
            except Exception:  # the task records its own failures; this one must not leak a slot
                log.exception("webhook %s: delivery task failed", key)
            with self._lock:
                waiting = self._waiting.get(key)
                if not waiting:
                    self._waiting.pop(key, None)
                    self._busy[key] -= 1
                    if not self._busy[key]:
                        del self._busy[key]
                    return
                _, task = waiting.popleft()  # keep the slot for the endpoint's next delivery


@dataclass(frozen=True)
class Outbound:
    """What the main topic's and every retry tier's pipelines of one process share: the HTTP
    client (its connection pools outlive partition assignments) and the per-endpoint limit, so
    a failing endpoint gets WEBHOOK_ENDPOINT_CONCURRENCY attempts at once, not that many per tier."""

    client: SafeHttpClient
    limiter: EndpointLimiter

    @classmethod
    def of_process(cls, deps: ConsumerDeps) -> Outbound:
        if "webhook-outbound" not in deps.shared:
            settings = deps.settings
            client = SafeHttpClient(
                Allowlist.from_settings(settings),
                # Per host: many webhooks can share one receiver host. The per-webhook limit is
                # the EndpointLimiter's; a pool this small would let one webhook starve the rest.
                max_connections_per_endpoint=settings.webhook_concurrency,
                max_request_bytes=max(settings.webhook_payload_max_bytes, settings.event_max_bytes),
                user_agent=attempt.USER_AGENT,
            )
            # Never shut down by a pipeline: it serves every tier for the life of the process.
            pool = ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="webhook-http")
            limiter = EndpointLimiter(pool, settings.webhook_endpoint_concurrency)
            deps.shared["webhook-outbound"] = cls(client, limiter)
        return deps.shared["webhook-outbound"]

    def close(self) -> None:
        self.limiter.close()
        self.client.close()


@dataclass
class Stage:
    """A thread that takes everything queued while it was busy and handles it as one batch."""

    name: str
    handle: Callable[[list], None]
    fatal: list[BaseException]
    hold: Hold  # the process's: set while a dependency is down, so the consumer is not ready
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self.thread.start()

    def put(self, item: object) -> None:
        self.inbox.put(item)

    def stop(self) -> None:
        self.stopping.set()
        self.inbox.put(None)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            first = self.inbox.get()
            if first is None:
                continue
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            while not self.stopping.is_set():
                try:
                    self.handle(batch)
                    self.hold.up(time.time())
                    break
                except BaseException as exc:
                    if not transient(exc):  # a bug: stop the consumer rather than lose the batch
                        log.exception("%s failed", self.name)
                        self.fatal.append(exc)
                        return
                    self.hold.down(exc, time.time())
                    self.stopping.wait(HOLD_S)


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
        self._scale = self._settings.webhook_time_scale
        self._name = deps.spec.name
        self._fatal: list[BaseException] = []
        self._offsets = OffsetTracker()
        self._done: queue.SimpleQueue[tuple[Partition, int]] = queue.SimpleQueue()
        self._max_pending = max(256, 8 * self._settings.webhook_concurrency)
        self._closed = False
        self._lookup = Stage(f"{self._name}-lookup", self._look_up, self._fatal, deps.hold)
        self._writer = Stage(f"{self._name}-writer", self._record, self._fatal, deps.hold)
        self._lookup.start()
        self._writer.start()

    # --- arroyo's side ------------------------------------------------------------------------

    def submit(self, message: Message[KafkaPayload]) -> None:
        assert not self._closed
        self._raise_fatal()
        value = message.value
        assert isinstance(value, BrokerValue)
        headers = h.received(value.payload.headers, retried=self._deps.tier is not None)
        if self._deps.tier is not None and self._deps.clock() < float(headers.get(h.DUE_AT) or 0):
            raise MessageRejected()  # not due yet: arroyo pauses this partition and asks again
        if self._offsets.unfinished() >= self._max_pending:
            raise MessageRejected()
        self._offsets.add(value.partition, value.offset)
        try:
            delivery = self._parse(value, headers)
        except InvalidEvent as exc:
            self._dead_letter(value, headers, f"InvalidEvent.{exc.kind}", str(exc))
            self._offsets.finish(value.partition, value.offset)
            return
        self._lookup.put(Job(value.partition, value.offset, delivery, tuple(value.payload.headers)))

    def poll(self) -> None:
        self._raise_fatal()
        self._drain_done()

    def join(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else 30.0)
        while self._offsets.unfinished() and time.monotonic() < deadline and not self._fatal:
            self._drain_done()
            time.sleep(0.01)
        self._drain_done(force=True)
        self._stop()

    def close(self) -> None:
        self._closed = True

    def terminate(self) -> None:
        self._closed = True
        self._stop()

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
        for job in jobs:
            delivery = job.delivery
            status = found.terminal.get(delivery.id)
            if status == store.Terminal.SUCCEEDED or (status is not None and not delivery.replay):
                EVENTS_PROCESSED.labels(self._name, "duplicate").inc()
                self._done.put((job.partition, job.offset))
            elif delivery.webhook_id not in found.endpoints:
                self._writer.put(Finished(job))
            else:
                ready = replace(job, endpoint=found.endpoints[delivery.webhook_id])
                self._limiter.submit(delivery.webhook_id, self, functools.partial(self._attempt, ready))

    def _attempt(self, job: Job) -> None:
        endpoint = job.endpoint
        assert endpoint is not None
        try:
            outcome = attempt.send(
                self._client,
                job.delivery,
                endpoint,
                timeout_s=self._settings.webhook_timeout_s,
                max_response_bytes=self._settings.webhook_response_max_bytes,
            )
        except Exception as exc:  # a bug in signing or building the request: record it, retry it
            log.exception("delivery %s: attempt failed before sending", job.delivery.id)
            outcome = Outcome(job.delivery, Result.FAILED, error=f"{type(exc).__name__}: {exc}")
        EVENT_PROCESSING_SECONDS.labels(self._name).observe(outcome.elapsed_s)
        self._writer.put(Finished(job, outcome))

    def _record(self, items: list[Finished]) -> None:
        now = datetime.fromtimestamp(self._deps.clock(), UTC)
        batch = store.Batch(attempts=[], terminal=[], exhausted=[])
        retries: dict[str, list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]] = defaultdict(list)
        outcomes: list[str] = []
        for item in items:
            delivery = item.job.delivery
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
                    topic, message = self._retry_message(item.job, outcome, delay)
                    retries[topic].append(message)
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

        for topic, messages in retries.items():  # confirmed before the attempt is recorded
            self._deps.producer.send_raw_many(topic, messages)
        with self._sessions.begin() as session:
            disabled = store.record(
                session.connection(),
                batch,
                now=now,
                disable_after=timedelta(seconds=self._settings.webhook_disable_after_s * self._scale),
                on_disabled=lambda d: notify_owner(self._settings, session.connection(), d),
            )
        WEBHOOK_ENDPOINTS_DISABLED.inc(len(disabled))  # committed: a rolled-back disable is retried
        for item, outcome_name in zip(items, outcomes, strict=True):
            EVENTS_PROCESSED.labels(self._name, outcome_name).inc()
            self._done.put((item.job.partition, item.job.offset))

    def _retry_message(
        self, job: Job, outcome: Outcome, delay: float
    ) -> tuple[str, tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
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

    def _dead_letter(
        self, value: BrokerValue[KafkaPayload], headers: Mapping[str, str], cls: str, msg: str
    ) -> None:
        payload = value.payload
        partition = value.partition
        failure = h.Failure.after(
            partition.topic.name, partition.index, value.offset, headers, cls, msg, self._deps.clock()
        )
        self._deps.dead_letters.send(
            payload.key, payload.value, list(payload.headers), failure, value.partition.index
        )
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
        self._outbound = Outbound.of_process(deps)

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        return DeliveryPipeline(commit, self._deps, self._sessions, self._outbound)


def strategy_factory(deps: ConsumerDeps) -> ProcessingStrategyFactory[KafkaPayload]:
    return DeliveryPipelineFactory(deps)
