"""The per-webhook share of the process's HTTP threads."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class EndpointLimiter:
    """At most `per_endpoint` attempts in flight per webhook, across the main topic and every
    retry tier of the process; the pool (WEBHOOK_CONCURRENCY threads) bounds the total.

    A hanging endpoint ties up `per_endpoint` threads, never the pool; its other deliveries wait
    in its own queue while every other endpoint goes on. Tasks carry their owner (a pipeline): one
    that stops on a rebalance or shutdown withdraws its waiting tasks, whose messages are then
    read again by the partitions' next owner rather than sent from a pipeline that is gone.

    `shed` tells a slow endpoint (many waiting, nothing finished for a while) from a busy one
    that keeps answering: only the former's waiting deliveries are worth putting off."""

    def __init__(self, pool: ThreadPoolExecutor, per_endpoint: int) -> None:
        self._pool = pool
        self._per_endpoint = per_endpoint
        self._lock = threading.Lock()
        self._busy: dict[uuid.UUID, int] = defaultdict(int)
        self._waiting: dict[uuid.UUID, deque[tuple[object, Callable[[], None]]]] = defaultdict(deque)
        self._progress: dict[uuid.UUID, float] = {}  # last finish, or first start, per busy endpoint

    def submit(self, key: uuid.UUID, owner: object, task: Callable[[], None]) -> None:
        with self._lock:
            if self._busy[key] >= self._per_endpoint:
                self._waiting[key].append((owner, task))
                return
            self._busy[key] += 1
            self._progress.setdefault(key, time.monotonic())
        self._pool.submit(self._work, key, task)

    def shed(self, owner: object, keep: int, stalled_s: float) -> list[Callable[[], None]]:
        """Take back the owner's waiting tasks beyond the first `keep` of each stalled endpoint
        (nothing finished for `stalled_s`), for the caller to put off."""
        shed: list[Callable[[], None]] = []
        now = time.monotonic()
        with self._lock:
            for key, waiting in self._waiting.items():
                if len(waiting) <= keep or now - self._progress.get(key, now) <= stalled_s:
                    continue
                kept: deque[tuple[object, Callable[[], None]]] = deque()
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
        """At process end: what has not started is dropped (its offsets were never committed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _work(self, key: uuid.UUID, task: Callable[[], None]) -> None:
        while True:
            try:
                task()
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
