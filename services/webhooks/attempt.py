"""One delivery attempt: sign the bytes, POST them through the safe client, classify the answer.

Runs on the HTTP event loop (`send_async`) and touches no database: everything
it needs is in `Delivery` and `Endpoint`, and everything the writer needs is in the `Outcome` it
returns.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from services.webhooks.schedule import parse_retry_after
from services.webhooks.signing import plane_body, plane_signature, standard_signature
from shared.http import DeadlineExceeded, HttpError, SafeResponse
from shared.http.aio import AsyncSafeHttpClient

USER_AGENT = "Autopilot"  # Plane's; receivers may filter on it
# Never written to webhook_logs: anyone who can read the log could replay the request.
UNSTORED_HEADERS = frozenset({"x-plane-signature", "webhook-signature"})


class Control(StrEnum):
    """Svix's delivery control: what a receiver may ask in a `webhook-delivery` response header."""

    DISABLE = "disable"  # switch the webhook off; this delivery ends as answered
    ABORT = "abort-message"  # no more retries of this delivery (no effect on a success)


class Result(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # may be retried
    GONE = "gone"  # 410: the receiver asked us to stop
    BLOCKED = "blocked"  # the URL is not allowed (SSRF rules): retrying cannot help


@dataclass(frozen=True)
class Delivery:
    """A `plane.webhook_delivery.v1` event as the pipeline carries it."""

    id: str  # the envelope id: X-Plane-Delivery and webhook-id on every attempt
    webhook_id: uuid.UUID
    workspace_id: uuid.UUID
    event: str
    payload: dict[str, Any]
    event_time: str
    attempt: int  # 1-based
    envelope: bytes  # the message value, kept for replay when the delivery is not delivered
    first_failed_at: float | None = None  # unix time of this delivery's first failed attempt
    replay: bool = False

    @cached_property
    def body(self) -> bytes:
        """Serialised once: it is signed, sent and logged, and must be the same bytes each time."""
        return plane_body(self.payload)


@dataclass(frozen=True)
class Endpoint:
    url: str
    secret_key: str
    signing_keys: tuple[bytes, ...]


@dataclass
class Outcome:
    delivery: Delivery
    result: Result
    request_headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str | None = None
    overloaded: bool = False  # a timeout or 429: back off at least a minute
    retry_after_s: float | None = None
    control: Control | None = None
    elapsed_s: float = 0.0

    @property
    def stored_request_headers(self) -> str:
        kept = {k: v for k, v in self.request_headers.items() if k.lower() not in UNSTORED_HEADERS}
        return json.dumps(kept)


async def send_async(
    client: AsyncSafeHttpClient,
    delivery: Delivery,
    endpoint: Endpoint,
    *,
    timeout_s: float,
    max_response_bytes: int,
) -> Outcome:
    """One attempt through the asyncio client."""
    headers = request_headers(delivery, endpoint)
    started = time.perf_counter()
    try:
        response = await client.request(
            "POST",
            endpoint.url,
            headers=headers,
            body=delivery.body,
            deadline_s=timeout_s,
            max_response_bytes=max_response_bytes,
        )
    except HttpError as exc:
        return failed(delivery, headers, exc, started)
    return answered(delivery, headers, response, started)


def request_headers(delivery: Delivery, endpoint: Endpoint) -> dict[str, str]:
    body = delivery.body
    timestamp = int(time.time())  # per attempt, as the spec wants; real time even when tests scale delays
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Plane-Delivery": delivery.id,
        "X-Plane-Event": delivery.event,
        "X-Plane-Signature": plane_signature(endpoint.secret_key, body),
        "webhook-id": delivery.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(endpoint.signing_keys, delivery.id, timestamp, body),
    }


def failed(delivery: Delivery, headers: dict[str, str], exc: HttpError, started: float) -> Outcome:
    return Outcome(
        delivery,
        Result.FAILED if exc.retryable else Result.BLOCKED,
        headers,
        error=f"{type(exc).__name__}: {exc}",
        overloaded=isinstance(exc, DeadlineExceeded),
        elapsed_s=time.perf_counter() - started,
    )


def answered(delivery: Delivery, headers: dict[str, str], response: SafeResponse, started: float) -> Outcome:
    status = response.status
    stored_headers, stored_body = storable_response(response.headers, response.body, response.truncated)
    if 200 <= status < 300:
        result = Result.SUCCEEDED
    elif status == 410:
        result = Result.GONE
    else:
        result = Result.FAILED  # 3xx included: a failure, never followed
    return Outcome(
        delivery,
        result,
        headers,
        status=status,
        response_headers=stored_headers,
        response_body=stored_body,
        overloaded=status == 429,
        retry_after_s=parse_retry_after(response.headers.get("retry-after"), time.time()),
        control=_control(response.headers.get("webhook-delivery")),
        elapsed_s=time.perf_counter() - started,
    )


def _control(value: str | None) -> Control | None:
    try:
        return Control(value.strip().lower()) if value else None
    except ValueError:  # an instruction we do not know: ignored, as Svix does
        return None


# PostgreSQL text holds any UTF-8 except NUL, and a lone surrogate cannot be encoded as UTF-8 at
# all (psycopg2 raises on both): one such character in a receiver's answer used to fail the
# writer's whole batch, for good.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable_text(value: str) -> str:
    if value.isascii() and "\x00" not in value:
        return value  # the usual header: the same as latin-1 and as UTF-8, nothing to escape
    # http.client reads header bytes as latin-1: take the bytes back and read them as UTF-8,
    # writing what is not UTF-8 as \xNN rather than as mojibake. A value with a character
    # beyond latin-1 did not come from the wire that way and is kept as it is.
    with contextlib.suppress(UnicodeEncodeError):
        value = value.encode("latin-1").decode("utf-8", "backslashreplace")
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", value)


def storable_response(
    headers: Mapping[str, str], body: bytes, truncated: bool = False
) -> tuple[dict[str, str], str]:
    """What webhook_logs stores of an answer: its headers (Content-Type and Content-Encoding among
    them) and a body that PostgreSQL text always accepts. A body that is not plain UTF-8 text (a
    NUL, invalid UTF-8, or any Content-Encoding: we never inflate) is stored as a marker with its
    length, SHA-256, type and encoding, so the log says what came back instead of holding mojibake."""
    stored = {_storable_text(name): _storable_text(headers[name]) for name in headers}  # merged
    described = {name.lower(): value for name, value in stored.items() if name.lower() in _DESCRIBED}
    encoding = described.get("content-encoding", "identity").strip().lower()
    try:
        # A capped body may end inside a character: final=False drops that tail instead of failing.
        text = codecs.getincrementaldecoder("utf-8")().decode(body, final=not truncated)
    except UnicodeDecodeError:
        text = None
    if not body or (text is not None and "\x00" not in text and encoding == "identity"):
        return stored, text or ""
    parts = [
        f"{'first ' if truncated else ''}{len(body)} bytes",
        f"sha256 {hashlib.sha256(body).hexdigest()}",
        *(f"{name} {value}" for name, value in sorted(described.items(), reverse=True)),
    ]
    return stored, f"[binary body, {', '.join(parts)}]"


_DESCRIBED = ("content-type", "content-encoding")
