"""Exports run off the poll thread, one at a time, so a long one never trips max.poll.interval.ms.

The shared EventProcessor (validation, DLQ, retry tiers, the dependency hold) handles each event,
but on a worker thread: while it works, `submit` rejects the next message, which makes arroyo pause
the partitions and keep calling poll(), so the member stays in its group however long the export
takes (R15), and the liveness file stays fresh. The offset is committed once the processor
returned, i.e. once the export's row says `completed` (or `failed`, or the event went to a retry
tier or the DLQ).

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
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

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


class OffPollThread(ProcessingStrategy[KafkaPayload]):
    def __init__(self, processor: EventProcessor, commit: Commit) -> None:
        self._processor = processor
        self._next = CommitOffsets(commit)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")
        self._stopping = threading.Event()
        self._message: Message[KafkaPayload] | None = None
        self._future: Future[None] | None = None
        self._again_at = 0.0
        self._closed = False

    def submit(self, message: Message[KafkaPayload]) -> None:
        if self._message is not None or self._closed:
            raise MessageRejected()
        self._message = message
        self._start()

    def _start(self) -> None:
        assert self._message is not None
        self._future = self._pool.submit(self._work, self._message)

    def _work(self, message: Message[KafkaPayload]) -> None:
        _local.stopping = self._stopping
        try:
            self._processor(message)
        finally:
            _local.stopping = None

    def poll(self) -> None:
        self._settle()
        self._next.poll()

    def _settle(self) -> None:
        if self._message is None:
            return
        if self._future is None:  # rejected earlier: try again once due
            if time.monotonic() >= self._again_at and not self._closed:
                self._start()
            return
        if not self._future.done():
            return
        error = self._future.exception()
        self._future = None
        if isinstance(error, MessageRejected):
            self._again_at = time.monotonic() + AGAIN_S
            return
        message, self._message = self._message, None
        if isinstance(error, Interrupted):
            log.warning("stopping: the export in progress is left to the partition's next owner")
            return
        if error is not None:
            raise error  # e.g. a dead letter the broker refused: the processor dies, commits nothing
        self._next.submit(message)

    def close(self) -> None:
        self._closed = True  # no new message; the one in progress may still finish in join()

    def terminate(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._next.terminate()

    def join(self, timeout: float | None = None) -> None:
        """Let the export in progress finish within `timeout` (arroyo's join timeout, inside the
        pod's grace period) and commit it; past that, stop it at its next page, uncommitted."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._wait(deadline):
            self._stopping.set()
            if not self._wait(time.monotonic() + STOP_WAIT_S):
                log.warning("the export in progress did not stop in time; it is left uncommitted")
        if self._future is not None and self._future.done():
            self._settle()
        self._stopping.set()
        self._pool.shutdown(wait=False)
        self._next.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _wait(self, deadline: float | None) -> bool:
        while self._future is not None and not self._future.done():
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
        deps = self._deps
        processor = EventProcessor(
            deps.spec,
            _handler(),
            deps.settings,
            deps.producer,
            deps.sessions,
            deps.dead_letters,
            deps.tier,
            deps.clock,
            deps.hold,
        )
        return OffPollThread(processor, commit)


def _handler() -> Handler:
    from services.exports.handler import handle

    return handle


def strategy_factory(deps: ConsumerDeps) -> ProcessingStrategyFactory[KafkaPayload]:
    return OffPollThreadFactory(deps)
