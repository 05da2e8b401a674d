"""A retry tier's messages that are not due yet, held in memory earliest first.

Arroyo answers a rejected message by pausing every partition of the consumer, so refusing a
tier's message until it is due made every other message of the tier wait for the latest-due
head of any partition (a 10 h retry came after about 18 h). The tier accepts its messages
instead and releases each when due. Their offsets stay uncommitted meanwhile, so a crash reads
them again. Only past the budget does the tier refuse, and then arroyo's pause is what we want.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_HELD = 20_000
MAX_HELD_BYTES = 16 * 1024 * 1024  # per tier and process; a delivery envelope is a few KB


@dataclass
class DueQueue(Generic[T]):
    max_items: int = MAX_HELD
    max_bytes: int = MAX_HELD_BYTES
    _heap: list[tuple[float, int, int, T]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _bytes: int = 0

    def __len__(self) -> int:
        return len(self._heap)

    def has_room(self, size: int) -> bool:
        """An empty queue takes any message: one larger than the budget must not wait forever."""
        return not self._heap or (len(self._heap) < self.max_items and self._bytes + size <= self.max_bytes)

    def push(self, due: float, item: T, size: int) -> None:
        heapq.heappush(self._heap, (due, next(self._order), size, item))
        self._bytes += size

    def pop_due(self, now: float) -> list[T]:
        """Everything due by `now`, earliest first (ties in arrival order)."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, _, size, item = heapq.heappop(self._heap)
            self._bytes -= size
            due.append(item)
        return due

    def clear(self) -> None:
        self._heap.clear()
        self._bytes = 0
