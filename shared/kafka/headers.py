"""Header names the runtime puts on retried and dead-lettered messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ORIGINAL_TOPIC = "original-topic"
ORIGINAL_PARTITION = "original-partition"
ORIGINAL_OFFSET = "original-offset"
ERROR_CLASS = "error-class"
ERROR_MESSAGE = "error-message"
ATTEMPTS = "attempts"
FIRST_FAILED_AT = "first-failed-at"
DUE_AT = "due-at"  # unix seconds, on retry-topic messages
RETRY_TIER = "retry-tier"

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
}


def as_dict(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Last value wins; values decoded leniently (headers come from the outside world)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}


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
