"""Header names the runtime puts on retried and dead-lettered messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

ORIGINAL_TOPIC = "original-topic"
ORIGINAL_PARTITION = "original-partition"
ORIGINAL_OFFSET = "original-offset"
ERROR_CLASS = "error-class"
ERROR_MESSAGE = "error-message"
ATTEMPTS = "attempts"
FIRST_FAILED_AT = "first-failed-at"
DUE_AT = "due-at"  # unix seconds, on retry-topic messages
RETRY_TIER = "retry-tier"
# On a dead letter cut to fit the producer's message.max.bytes: the original size of what was cut
# and (key, value) a digest of the original bytes, so it can be matched with its source.
VALUE_TRUNCATED = "value-truncated"
VALUE_SHA256 = "value-sha256"
KEY_TRUNCATED = "key-truncated"
KEY_SHA256 = "key-sha256"
HEADERS_TRUNCATED = "headers-truncated"
TRUNCATED = (VALUE_TRUNCATED, KEY_TRUNCATED, HEADERS_TRUNCATED)

RUNTIME_HEADERS = {
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ERROR_CLASS,
    ERROR_MESSAGE,
    ATTEMPTS,
    FIRST_FAILED_AT,
    DUE_AT,
    RETRY_TIER,
    VALUE_TRUNCATED,
    VALUE_SHA256,
    KEY_TRUNCATED,
    KEY_SHA256,
    HEADERS_TRUNCATED,
}


def as_dict(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Last value wins; values decoded leniently (headers come from the outside world)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}


# How each runtime header we read back must parse; one that does not is dropped, not trusted.
_PARSERS = {
    ORIGINAL_PARTITION: int,
    ORIGINAL_OFFSET: int,
    ATTEMPTS: int,
    RETRY_TIER: int,
    DUE_AT: float,
    FIRST_FAILED_AT: datetime.fromisoformat,
}


def received(headers: Sequence[tuple[str, bytes]] | None, *, retried: bool) -> dict[str, str]:
    """A consumed message's headers. The runtime's own are ours only on a retry tier: on a main
    topic they came from some producer, and a bogus `attempts` or `original-partition` there
    must not crash the consumer or skip retries, so they are dropped. On a tier, one that does
    not parse is dropped too (the message then counts as failing for the first time)."""
    view = as_dict(headers)
    for name in RUNTIME_HEADERS & view.keys():
        if not retried or not _parses(name, view[name]):
            del view[name]
    if ORIGINAL_TOPIC in view and not {ORIGINAL_PARTITION, ORIGINAL_OFFSET} <= view.keys():
        del view[ORIGINAL_TOPIC]  # a provenance is whole or absent
    return view


def _parses(name: str, value: str) -> bool:
    parse = _PARSERS.get(name)
    if parse is None:
        return True
    try:
        parse(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Failure:
    """Where a message first came from and what went wrong with it, carried across retries."""

    topic: str
    partition: int
    offset: int
    attempts: int
    first_failed_at: str
    error_class: str = ""
    error_message: str = ""

    @classmethod
    def after(
        cls,
        topic: str,
        partition: int,
        offset: int,
        headers: Mapping[str, str],
        error_class: str,
        error_message: str,
        now: float,
    ) -> Failure:
        """This message's failure: where it first came from and when it first failed are carried
        over from its headers once it has been retried, and the attempt count goes up by one."""
        first = ORIGINAL_TOPIC not in headers
        return cls(
            topic=topic if first else headers[ORIGINAL_TOPIC],
            partition=partition if first else int(headers[ORIGINAL_PARTITION]),
            offset=offset if first else int(headers[ORIGINAL_OFFSET]),
            attempts=int(headers.get(ATTEMPTS, "0") or 0) + 1,
            first_failed_at=headers.get(FIRST_FAILED_AT) or datetime.fromtimestamp(now, UTC).isoformat(),
            error_class=error_class,
            error_message=error_message,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (ORIGINAL_TOPIC, self.topic.encode()),
            (ORIGINAL_PARTITION, str(self.partition).encode()),
            (ORIGINAL_OFFSET, str(self.offset).encode()),
            (ERROR_CLASS, self.error_class.encode()),
            (ERROR_MESSAGE, self.error_message[:1000].encode()),
            (ATTEMPTS, str(self.attempts).encode()),
            (FIRST_FAILED_AT, self.first_failed_at.encode()),
        ]


def retry_headers(
    own: Sequence[tuple[str, bytes]], failure: Failure, due: float, tier: int
) -> list[tuple[str, bytes]]:
    """A retried message's headers: its own, with the runtime's replaced by this failure's."""
    kept = [(k, v) for k, v in own if k not in RUNTIME_HEADERS]
    return [*kept, *failure.headers(), (DUE_AT, f"{due:.3f}".encode()), (RETRY_TIER, str(tier).encode())]
