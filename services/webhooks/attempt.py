"""One delivery attempt: sign the bytes, POST them through the safe client, classify the answer.

Runs on a worker thread and touches no database: everything it needs is in `Delivery` and
`Endpoint`, and everything the writer needs is in the `Outcome` it returns.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from services.webhooks.schedule import parse_retry_after
from services.webhooks.signing import plane_body, plane_signature, standard_signature
from shared.http import DeadlineExceeded, HttpError, SafeHttpClient

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


def send(
    client: SafeHttpClient,
    delivery: Delivery,
    endpoint: Endpoint,
    *,
    timeout_s: float,
    max_response_bytes: int,
) -> Outcome:
    body = delivery.body
    timestamp = int(time.time())  # per attempt, as the spec wants; real time even when tests scale delays
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Plane-Delivery": delivery.id,
        "X-Plane-Event": delivery.event,
        "X-Plane-Signature": plane_signature(endpoint.secret_key, body),
        "webhook-id": delivery.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(endpoint.signing_keys, delivery.id, timestamp, body),
    }
    started = time.perf_counter()
    try:
        response = client.request(
            "POST",
            endpoint.url,
            headers=headers,
            body=body,
            deadline_s=timeout_s,
            max_response_bytes=max_response_bytes,
        )
    except HttpError as exc:
        return Outcome(
            delivery,
            Result.FAILED if exc.retryable else Result.BLOCKED,
            headers,
            error=f"{type(exc).__name__}: {exc}",
            overloaded=isinstance(exc, DeadlineExceeded),
            elapsed_s=time.perf_counter() - started,
        )
    status = response.status
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
        response_headers=dict(response.headers.items()),
        response_body=response.body.decode("utf-8", "replace"),
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
