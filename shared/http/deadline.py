"""A total deadline for one request: connect, TLS, headers and body together.

A plain socket timeout bounds one recv() each, so a server sending a byte every 0.2 s keeps a
request alive forever (Plane's crawler uses `timeout=1`). Here every blocking socket call made for
a request first sets the socket timeout to what is LEFT of the request's deadline (see
`transport.DeadlineSocket`), so the sum of all waits can never exceed it. The running request's
deadline travels in a context variable: urllib3 works synchronously in the caller's thread, and a
pooled connection serves whichever request holds it, so no socket is tied to an old deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

from shared.http.errors import DeadlineExceeded

_MIN_TIMEOUT = 0.001


class Deadline:
    """The end (monotonic clock) of one request, including every redirect hop."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("deadline must be positive")
        self.seconds = seconds
        self.started = time.monotonic()
        self.expires_at = self.started + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def check(self) -> float:
        """Remaining seconds, or DeadlineExceeded when none are left."""
        left = self.remaining()
        if left <= 0:
            raise self.error()
        return left

    def socket_timeout(self, cap: float | None = None) -> float:
        """Timeout for the next blocking socket call; TimeoutError (as a socket would) if spent."""
        left = self.remaining()
        if left <= 0:
            raise TimeoutError("total request deadline exceeded")
        return max(_MIN_TIMEOUT, left if cap is None else min(cap, left))

    def error(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"total deadline of {self.seconds:g}s exceeded after {self.elapsed():.2f}s")


current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "safe_http_deadline", default=None
)


@contextlib.contextmanager
def bound_to(deadline: Deadline) -> Iterator[Deadline]:
    """Make `deadline` govern every socket call made in this thread inside the block."""
    token = current_deadline.set(deadline)
    try:
        yield deadline
    finally:
        current_deadline.reset(token)
