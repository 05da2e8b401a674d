"""Exports run off the poll thread, EXPORT_CONCURRENCY at a time, so a long one never trips
max.poll.interval.ms and never holds up the others behind it for long.

The shared EventProcessor (validation, DLQ, retry tiers, the dependency hold) handles each event,
but on a worker thread: while every worker is busy, `submit` rejects the next message, which makes
arroyo pause the partitions and keep calling poll(), so the member stays in its group however long
an export takes (R15), and the liveness file stays fresh. Offsets are committed in order, each once
the processor returned for it and for every earlier one, i.e. once the export's row says
`completed` (or `failed`, or the event went to a retry tier or the DLQ). One finished behind a
long one waits for it; a crash meanwhile redelivers it, and a completed token is not exported
again.

A stop (SIGTERM, or the partitions revoked by a rebalance) lets the export in progress finish
within arroyo's join timeout (then it is committed); past that it sets `stopping`: the export
notices at its next page, aborts its upload (nothing becomes visible) and gives the event up
uncommitted (`Interrupted`), so whichever member owns the partition next exports it again, from
the start. A process killed outright leaves an unfinished multipart upload, which that next
attempt aborts, and its advisory lock, which PostgreSQL releases with the connection. (The
runtime's eager assignment revokes every partition when a member joins, so a member joining
during a long export costs it up to the join timeout, or a restart.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from arroyo.backends.kafka import KafkaPayload
from arroyo.processing.strategies import CommitOffsets, MessageRejected, ProcessingStrategy
from arroyo.processing.strategies.abstract import ProcessingStrategyFactory
from arroyo.types import Commit, Message, Partition

from shared.kafka.handler import Handler
from shared.kafka.runtime import ConsumerDeps
from shared.kafka.strategy import HOLD_S, EventProcessor

log = logging.getLogger(__name__)

# A message the processor rejected (dependency down, retry not yet due) is tried again this often.
AGAIN_S = min(HOLD_S, 0.5)
# Once told to stop, an export notices at its next page; this long is left for that.
STOP_WAIT_S = 5.0

_local = threading.local()


class Interrupted(BaseException):  # not an Exception: the processor must not retry it
    """The consumer is stopping: the work in progress is abandoned, its event left uncommitted."""


def check_stop() -> None:
    """Raise Interrupted if the strategy running this thread's event is stopping."""
    stopping = getattr(_local, "stopping", None)
    if stopping is not None and stopping.is_set():
        raise Interrupted()


@dataclass
class _Slot:
    message: Message[KafkaPayload]
    future: Future[None] | None = None
    again_at: float = 0.0  # rejected (dependency down, not due): started again from then on
    done: bool = False  # processed: its offset may be committed once every earlier one is
    abandoned: bool = False  # interrupted by a stop: neither it nor anything after it is committed


class OffPollThread(ProcessingStrategy[KafkaPayload]):
    """Up to `workers` events at once on worker threads; offsets committed in order."""

    def __init__(self, processor: EventProcessor, commit: Commit, workers: int) -> None:
        self._processor = processor
        self._next = CommitOffsets(commit)
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="export")
        self._stopping = threading.Event()
        self._slots: deque[_Slot] = deque()
        self._closed = False

    def submit(self, message: Message[KafkaPayload]) -> None:
        if self._closed or len(self._slots) >= self._workers:
            raise MessageRejected()  # arroyo pauses the partitions and keeps polling
        slot = _Slot(message)
        self._slots.append(slot)
        self._start(slot)

    def _start(self, slot: _Slot) -> None:
        slot.future = self._pool.submit(self._work, slot.message)

    def _work(self, message: Message[KafkaPayload]) -> None:
        _local.stopping = self._stopping
        try:
            self._processor(message)
        finally:
            _local.stopping = None

    def poll(self) -> None:
        self._settle(restart=not self._closed)
        self._next.poll()

    def _settle(self, restart: bool) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.done or slot.abandoned:
                continue
            if slot.future is None:
                if restart and now >= slot.again_at:
                    self._start(slot)
                continue
            if not slot.future.done():
                continue
            error = slot.future.exception()
            slot.future = None
            if isinstance(error, MessageRejected):
                slot.again_at = now + AGAIN_S
            elif isinstance(error, Interrupted):
                slot.abandoned = True
                log.warning("stopping: the export in progress is left to the partition's next owner")
            elif error is not None:
                raise error  # e.g. a dead letter the broker refused: the processor dies, commits nothing
            else:
                slot.done = True
        while self._slots and self._slots[0].done:
            self._next.submit(self._slots.popleft().message)

    def close(self) -> None:
        self._closed = True  # no new message; those in progress may still finish in join()

    def terminate(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._next.terminate()

    def join(self, timeout: float | None = None) -> None:
        """Let the exports in progress finish within `timeout` (arroyo's join timeout, inside the
        pod's grace period) and commit them; past that, stop them at their next page, uncommitted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._wait(deadline):
            self._stopping.set()
            if not self._wait(time.monotonic() + STOP_WAIT_S):
                log.warning("an export in progress did not stop in time; it is left uncommitted")
        self._settle(restart=False)
        self._stopping.set()
        self._pool.shutdown(wait=False)
        self._next.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _wait(self, deadline: float | None) -> bool:
        while any(s.future is not None and not s.future.done() for s in self._slots):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


class OffPollThreadFactory(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, deps: ConsumerDeps) -> None:
        self._deps = deps

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        processor = self._deps.event_processor(_handler())
        return OffPollThread(processor, commit, self._deps.settings.export_concurrency)


def _handler() -> Handler:
    from services.exports.handler import handle

    return handle


def strategy_factory(deps: ConsumerDeps) -> ProcessingStrategyFactory[KafkaPayload]:
    return OffPollThreadFactory(deps)
