"""Dead-lettering, done synchronously inside the processing step.

Why not arroyo's DlqPolicy: its StreamProcessor catches any exception raised while producing to
the DLQ (including "Dlq limit exceeded") and drops the message, then commits past it
(arroyo/processing/processor.py, `_handle_invalid_message`). Here a dead letter is confirmed by
the broker before its offset can be committed, and passing the limit stops the consumer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from shared.events.producer import EventProducer
from shared.kafka.headers import RUNTIME_HEADERS, Failure


class DeadLetterLimitExceeded(RuntimeError):
    """Too much is being dead-lettered: likely a bad deploy. Stop and let the backlog wait."""


@dataclass
class DeadLetterLimit:
    """Per partition: at most `max_consecutive` dead letters in a row, and (once `min_sample`
    messages were seen) at most `max_ratio` of all messages."""

    max_consecutive: int
    max_ratio: float
    min_sample: int = 100
    _seen: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _dead: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _consecutive: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def record_ok(self, partition: int) -> None:
        self._seen[partition] += 1
        self._consecutive[partition] = 0

    def record_dead(self, partition: int) -> None:
        self._seen[partition] += 1
        self._dead[partition] += 1
        self._consecutive[partition] += 1
        if self._consecutive[partition] > self.max_consecutive:
            raise DeadLetterLimitExceeded(
                f"{self._consecutive[partition]} consecutive dead letters on partition {partition}"
                f" (limit {self.max_consecutive})"
            )
        seen, dead = self._seen[partition], self._dead[partition]
        if seen >= self.min_sample and dead / seen > self.max_ratio:
            raise DeadLetterLimitExceeded(
                f"{dead}/{seen} messages dead-lettered on partition {partition} (limit {self.max_ratio:.0%})"
            )


class DeadLetters:
    def __init__(self, producer: EventProducer, dlq_topic: str, limit: DeadLetterLimit) -> None:
        self._producer = producer
        self._topic = dlq_topic  # physical
        self.limit = limit

    def send(
        self,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
        failure: Failure,
        partition: int,
    ) -> None:
        # The limit is checked first: past it, the message is neither dead-lettered nor committed.
        self.limit.record_dead(partition)
        own = [(k, v) for k, v in headers if k not in RUNTIME_HEADERS]
        self._producer.send_raw(self._topic, value, key=key, headers=own + failure.headers())
