"""The per-webhook share of the process's HTTP attempts."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)

Task = Callable[[], Coroutine[Any, Any, None]]


class EndpointLimiter:
    """At most `per_endpoint` attempts in flight per webhook, across the main topic and every
    retry tier of the process, and at most `total` (WEBHOOK_CONCURRENCY) in all: tasks on the
    process's HTTP event loop, submitted from any thread.

    A hanging endpoint ties up `per_endpoint` slots, never all of them; its other deliveries wait
    in its own queue while every other endpoint goes on. Tasks carry their owner (a pipeline): one
    that stops on a rebalance or shutdown withdraws its waiting tasks, whose messages are then
    read again by the partitions' next owner rather than sent from a pipeline that is gone.

    `shed` tells a slow endpoint (many waiting, nothing finished for a while) from a busy one
    that keeps answering: only the former's waiting deliveries are worth putting off."""

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int, per_endpoint: int) -> None:
        self._loop = loop
        self._slots = asyncio.Semaphore(total)  # binds to the loop on first use
        self._per_endpoint = per_endpoint
        self._lock = threading.Lock()
        self._busy: dict[uuid.UUID, int] = defaultdict(int)
        self._waiting: dict[uuid.UUID, deque[tuple[object, Task]]] = defaultdict(deque)
        self._progress: dict[uuid.UUID, float] = {}  # last finish, or first start, per busy endpoint
        self._running: set[asyncio.Task[None]] = set()  # the loop only keeps weak references
        self._closed = False

    def submit(self, key: uuid.UUID, owner: object, task: Task) -> None:
        self.submit_many([(key, owner, task)])

    def submit_many(self, items: Iterable[tuple[uuid.UUID, object, Task]]) -> None:
        """From any thread; the loop is woken once for all of them."""
        start: list[tuple[uuid.UUID, Task]] = []
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            for key, owner, task in items:
                if self._busy[key] >= self._per_endpoint:
                    self._waiting[key].append((owner, task))
                    continue
                self._busy[key] += 1
                self._progress.setdefault(key, now)
                start.append((key, task))
        if start:
            self._loop.call_soon_threadsafe(self._start, start)

    def _start(self, items: list[tuple[uuid.UUID, Task]]) -> None:
        for key, task in items:
            running = self._loop.create_task(self._work(key, task))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    def shed(self, owner: object, keep: int, stalled_s: float) -> list[Task]:
        """Take back the owner's waiting tasks beyond the first `keep` of each stalled endpoint
        (nothing finished for `stalled_s`), for the caller to put off."""
        shed: list[Task] = []
        now = time.monotonic()
        with self._lock:
            for key, waiting in self._waiting.items():
                if len(waiting) <= keep or now - self._progress.get(key, now) <= stalled_s:
                    continue
                kept: deque[tuple[object, Task]] = deque()
                for item in waiting:
                    if len(kept) < keep or item[0] is not owner:
                        kept.append(item)
                    else:
                        shed.append(item[1])
                self._waiting[key] = kept
        return shed

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
        """At process end: what has not started is dropped (its offsets were never committed);
        what runs is cancelled with the loop."""
        with self._lock:
            self._closed = True
            self._waiting.clear()

    async def _work(self, key: uuid.UUID, task: Task) -> None:
        while True:
            async with self._slots:
                try:
                    await task()
                except Exception:  # the task records its own failures; this one must not leak a slot
                    log.exception("webhook %s: delivery task failed", key)
            with self._lock:
                self._progress[key] = time.monotonic()
                waiting = self._waiting.get(key)
                if not waiting:
                    self._waiting.pop(key, None)
                    self._busy[key] -= 1
                    if not self._busy[key]:
                        del self._busy[key]
                        del self._progress[key]
                    return
                _, task = waiting.popleft()  # keep the slot for the endpoint's next delivery
