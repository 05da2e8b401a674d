"""Dead-lettering, done synchronously inside the processing step.

Why not arroyo's DlqPolicy: its StreamProcessor catches any exception raised while producing to
the DLQ (including "Dlq limit exceeded") and drops the message, then commits past it
(arroyo/processing/processor.py, `_handle_invalid_message`). Here a dead letter is confirmed by
the broker before its offset can be committed, and passing the limit stops the consumer.

A dead letter always fits: what comes in may be larger than our producer may send (the broker
took it from someone else), and a dead letter that cannot be sent would stop the consumer on
every restart. `fit` cuts it and says so in headers; `dlq replay` skips such letters.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.events.producer import EventProducer
from shared.kafka import headers as h
from shared.kafka.headers import RUNTIME_HEADERS, Failure

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]

# Room kept free of key, value and headers: librdkafka counts the record's framing (~40 bytes)
# against message.max.bytes, and the truncation headers (at most five, ~300 bytes) come on top.
RESERVED_BYTES = 1024
HEADER_OVERHEAD = 10  # a header's two varint lengths, 5 bytes at most each


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
        key, value, all_headers = fit(key, value, own, failure.headers(), self._producer.max_message_bytes)
        self._producer.send_raw(self._topic, value, key=key, headers=all_headers)


def fit(
    key: bytes | None, value: bytes, own: Headers, runtime: Headers, max_bytes: int
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers (`own` first, then the runtime's, which are small and kept whole)
    cut to fit `max_bytes`. Only what does not fit is cut: the producer's headers and the key to a
    quarter of the room each, when larger, then the value to what is left."""
    room = max_bytes - RESERVED_BYTES - _size(runtime)
    if len(key or b"") + len(value) + _size(own) <= room:
        return key, value, [*own, *runtime]
    marks: list[tuple[str, bytes]] = []
    quarter = room // 4
    if _size(own) > quarter:
        marks.append((h.HEADERS_TRUNCATED, str(_size(own)).encode()))
        own = _cut_headers(own, quarter)
    if key is not None and len(key) > quarter:
        marks += [(h.KEY_TRUNCATED, str(len(key)).encode()), (h.KEY_SHA256, _sha256(key))]
        key = key[:quarter]
    left = room - len(key or b"") - _size(own)
    if len(value) > left:
        marks += [(h.VALUE_TRUNCATED, str(len(value)).encode()), (h.VALUE_SHA256, _sha256(value))]
        value = value[:left]
    log.warning("dead letter cut to fit %d bytes: %s", max_bytes, h.as_dict(marks))
    return key, value, [*own, *runtime, *marks]


def _size(headers: Headers) -> int:
    return sum(len(k.encode()) + len(v or b"") + HEADER_OVERHEAD for k, v in headers)


def _cut_headers(headers: Headers, room: int) -> list[tuple[str, bytes]]:
    """Headers in order while they fit; the one that crosses `room` is cut, the rest dropped."""
    kept: list[tuple[str, bytes]] = []
    for name, value in headers:
        left = room - _size(kept) - len(name.encode()) - HEADER_OVERHEAD
        if left < 0:
            break
        kept.append((name, (value or b"")[:left]))  # a null value (None) is sent as empty
    return kept


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode()
