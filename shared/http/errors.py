"""One exception tree for every outbound HTTP failure.

Callers (webhook delivery, the crawler, docs sync) need one decision per failure: retry later or
give up. `HttpError.retryable` answers it, so no caller has to know urllib3's or socket's
exception zoo. Permanent errors are the ones a retry cannot fix: the URL or its addresses are
forbidden, the request is too big, the redirect chain is too long.
"""

from __future__ import annotations


class HttpError(Exception):
    """Base of every error raised by the safe client."""

    retryable: bool = False


class UnsafeUrl(HttpError):
    """The URL is not allowed: scheme, host syntax, port, userinfo or encoding (permanent)."""


class BlockedAddress(UnsafeUrl):
    """The host is, or resolves to, an address outside the policy and the allowlist (permanent)."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host!r} -> {address} is blocked ({reason})")
        self.host = host
        self.address = address
        self.reason = reason


class RequestTooLarge(HttpError):
    """The request body is over the client's cap (permanent)."""


class TooManyRedirects(HttpError):
    """More redirect hops than the caller allowed (permanent)."""


class ResolveError(HttpError):
    """DNS gave no address for the host; may be transient, so retryable."""

    retryable = True


class ConnectError(HttpError):
    """No TCP connection to any vetted address (refused, unreachable): retryable."""

    retryable = True


class TlsError(ConnectError):
    """TLS handshake or certificate verification failed: retryable (certificates get fixed)."""


class DeadlineExceeded(HttpError):
    """The total deadline passed before the response was complete: retryable."""

    retryable = True


class ProtocolError(HttpError):
    """The peer broke HTTP (reset mid-body, malformed status line...): retryable."""

    retryable = True
