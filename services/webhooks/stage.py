"""The pipeline's building blocks that know nothing of webhooks: a self-batching stage thread and
the tracker that turns out-of-order completions into committable offsets."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arroyo.types import Partition
from sqlalchemy import exc as sa_exc

from shared.db import errors as db_errors
from shared.events.producer import DeliveryFailed
from shared.kafka.strategy import Hold

log = logging.getLogger(__name__)

BATCH_MAX = 500
HOLD_S = 1.0  # pause of a stage whose database or broker is down


def transient(exc: BaseException) -> bool:
    """Hold the stage and retry its batch: the database is unavailable (shared.db.errors), or
    failed in passing (deadlock, statement timeout), or the broker or a socket did. Anything else
    is the fault of some item in the batch, or a bug: see `Stage.isolate`."""
    if db_errors.bad_data(exc):
        return False
    return db_errors.unavailable(exc) or isinstance(exc, sa_exc.OperationalError | DeliveryFailed | OSError)


@dataclass
class Stage:
    """A thread that takes everything queued while it was busy and handles it as one batch.

    A batch that fails for a passing reason is held and tried again (the process's hold is set
    meanwhile, so the consumer is not ready). One that fails otherwise is split in halves until
    the items at fault stand alone; each goes to `isolate` (the pipeline dead-letters it), so one
    bad item never stops the others. `handle` must therefore be safe to run again on part of a
    batch it ran before. Only a failure of `isolate` itself stops the consumer."""

    name: str
    handle: Callable[[list[Any]], None]
    isolate: Callable[[Any, BaseException], None]
    fatal: list[BaseException]
    hold: Hold  # the process's: set while a dependency is down
    # How long a batch waits for more items once its first came: a few milliseconds turn many
    # small transactions into fewer larger ones where nobody waits on the batch (the writer).
    linger_s: float = 0.0
    inbox: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
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
        while not self.stopping.is_set() and not self.fatal:
            first = self.inbox.get()
            if first is None:
                continue
            if self.linger_s:
                # One sleep, then whatever came: waiting on the queue would wake this thread (and
                # hand it the GIL) for every item.
                self.stopping.wait(self.linger_s)
            batch = [first]
            while len(batch) < BATCH_MAX:
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            self._run(batch)

    def _run(self, batch: list[Any]) -> None:
        while not self.stopping.is_set() and not self.fatal:
            try:
                self.handle(batch)
                self.hold.up(time.time())
                return
            except BaseException as exc:
                if transient(exc):
                    self.hold.down(exc, time.time())
                    self.stopping.wait(HOLD_S)
                    continue
                if len(batch) > 1:
                    log.warning("%s: a batch of %d failed, splitting it: %s", self.name, len(batch), exc)
                    half = len(batch) // 2
                    self._run(batch[:half])
                    self._run(batch[half:])
                    return
                try:
                    self.isolate(batch[0], exc)
                except BaseException as fatal:
                    log.exception("%s failed, and so did setting the item aside", self.name)
                    self.fatal.append(fatal)
                return


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
