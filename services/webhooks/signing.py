"""Webhook signatures: Plane's legacy X-Plane-Signature plus Standard Webhooks v1.

Plane signs the body only (`X-Plane-Signature` = hex HMAC-SHA256 of the JSON body), so a captured
delivery verifies forever and can be replayed at will. Standard Webhooks (the Svix scheme) signs
`{id}.{timestamp}.{body}`: receivers reject stale timestamps (5 minutes) and can dedupe on the id.
We keep sending Plane's header byte-for-byte for existing receivers and add the `webhook-*` headers.

Everything here is pure: no database, no clock, no I/O (callers pass `now`), so it is easy to test.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WHSEC_PREFIX = "whsec_"
# Receivers (standardwebhooks libraries) reject timestamps further than this from their clock.
TIMESTAMP_TOLERANCE_S = 5 * 60


def plane_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes Plane sends and signs: `json.dumps` defaults (", "/": ", ASCII escapes)."""
    return json.dumps(payload).encode("utf-8")


def plane_signature(secret_key: str, body: bytes) -> str:
    """Plane's `X-Plane-Signature`: hex HMAC-SHA256 of the body keyed by the secret's UTF-8 bytes."""
    return hmac.new(secret_key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_secret(secret_key: str) -> bytes:
    """The Standard Webhooks HMAC key for a webhook secret.

    `whsec_<base64>` secrets (ours, see `new_secret`) are base64-decoded, as every Standard Webhooks
    library does. Plane's own secrets (`plane_wh_` + 32 hex) are not base64, so the key is the UTF-8
    bytes of the secret itself; receivers get the matching key from `whsec`.
    """
    if secret_key.startswith(WHSEC_PREFIX):
        encoded = secret_key[len(WHSEC_PREFIX) :]
        try:
            # Libraries accept unpadded base64; strict decoding still catches a mangled secret.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError("webhook secret is not valid whsec_ base64") from exc
    else:
        key = secret_key.encode("utf-8")
    if not key:
        raise ValueError("webhook secret may not be empty")
    return key


def whsec(secret_key: str) -> str:
    """The `whsec_<base64>` form of a secret, for `standardwebhooks.Webhook(whsec(secret))`.

    A receiver computes it from the secret Plane shows (e.g. `plane_wh_...`):
    `"whsec_" + base64(secret.encode("utf-8"))`; `whsec_` secrets come back unchanged (normalised).
    """
    return WHSEC_PREFIX + base64.b64encode(standard_secret(secret_key)).decode("ascii")


def standard_signature(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: one space-separated `v1,<base64 HMAC>` per key, all over the same bytes.

    Signing with every valid key lets receivers roll secrets: either the old or the new one matches.
    """
    if not keys:
        raise ValueError("at least one signing key is required")
    if not msg_id or "." in msg_id:
        # The id is the first `.`-separated field of the signed content; a dot would make it ambiguous.
        raise ValueError(f"webhook id must be non-empty and contain no '.': {msg_id!r}")
    to_sign = f"{msg_id}.{timestamp:d}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


def signature_headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (a retry reuses the id, not the timestamp)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(keys, msg_id, timestamp, body),
    }


@dataclass(frozen=True)
class RetiredKey:
    """A secret replaced at `retired_at` (unix seconds); it keeps signing during the grace period."""

    secret: str
    retired_at: float


def signing_keys(
    current: str, retired: Sequence[RetiredKey], now: float, grace_s: float, max_old: int = 10
) -> list[bytes]:
    """Keys to sign with: the current one first, then retired keys still in grace, newest first.

    `max_old` bounds the header size when secrets are rotated repeatedly within one grace period.
    """
    if max_old < 0:
        raise ValueError("max_old must be >= 0")
    live = sorted(
        (key for key in retired if key.retired_at + grace_s > now),
        key=lambda key: key.retired_at,
        reverse=True,
    )
    keys = [standard_secret(current)]
    for old in live:
        if len(keys) > max_old:
            break
        key = standard_secret(old.secret)
        if key not in keys:  # re-instating an old secret must not sign twice with it
            keys.append(key)
    return keys


def new_secret() -> str:
    """A fresh `whsec_` secret (32 random bytes) for operators; Plane generates its own `plane_wh_`."""
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
