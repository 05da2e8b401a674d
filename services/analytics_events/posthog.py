"""PostHog capture for Plane's track_event: configuration, wire format, one acked request per batch.

Why not the `posthog` library: its client either sends one request per capture (`sync_mode`) or
queues events for a background thread whose failures are logged and dropped after its own
retries; `flush()` reports nothing. Neither gives "these events were accepted", which a Kafka
consumer needs before it commits an offset. So this writes PostHog's documented capture API
(`POST {host}/batch/` with `{"api_key", "batch": [...], "sent_at"}`, each message `event`,
`distinct_id`, `properties`, `timestamp`, `uuid`) through the project's safe client
(shared/http: SSRF rules, a total deadline, bounded response). The message `uuid` is the event id:
PostHog deduplicates on it, so a batch sent again after a crash counts once.

Configuration is Plane's: POSTHOG_API_KEY and POSTHOG_HOST from `instance_configurations` when
SKIP_ENV_VAR is 1 (a live row wins, decrypted when `is_encrypted`), else from the environment;
either missing means unconfigured. Plane's app hosts map to its ingestion hosts as the library
maps them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, text

from shared.http import Allowlist, HttpError, SafeHttpClient
from shared.mail.config import decrypt_value
from shared.settings import Settings

KEYS = ("POSTHOG_API_KEY", "POSTHOG_HOST")
BATCH_PATH = "/batch/"
LIBRARY = "plane-workers"
# PostHog Cloud's app addresses do not ingest; the library sends to these instead.
_INGESTION_HOSTS = {
    "https://app.posthog.com": "https://us.i.posthog.com",
    "https://us.posthog.com": "https://us.i.posthog.com",
    "https://eu.posthog.com": "https://eu.i.posthog.com",
}
# One request's body at most (PostHog takes 20 MB; smaller requests fail and retry cheaper).
MAX_REQUEST_BYTES = 1024 * 1024
_HAS_TABLE = text("SELECT to_regclass('instance_configurations') IS NOT NULL")
_ROWS = text(
    "SELECT key, value, is_encrypted FROM instance_configurations"
    " WHERE key = ANY(:keys) AND deleted_at IS NULL"
)


class PostHogUnavailable(Exception):
    """PostHog did not accept the batch (unreachable, deadline, 5xx, 429, refused key): retried."""


class PostHogRejected(Exception):
    """PostHog refused the message itself (400, 413): sending it again cannot help."""


@dataclass(frozen=True)
class PostHogConfig:
    api_key: str
    host: str

    @property
    def batch_url(self) -> str:
        host = self.host.strip().rstrip("/")
        return _INGESTION_HOSTS.get(host, host) + BATCH_PATH


def read_config(settings: Settings, conn: Connection) -> PostHogConfig | None:
    """What Plane's posthogConfiguration() would return now, or None where it returns (None, None)."""
    values: dict[str, str | None] = {
        "POSTHOG_API_KEY": settings.posthog_api_key or None,
        "POSTHOG_HOST": settings.posthog_host or None,
    }
    if settings.skip_env_var and conn.execute(_HAS_TABLE).scalar():
        for key, value, is_encrypted in conn.execute(_ROWS, {"keys": list(KEYS)}):
            values[key] = decrypt_value(settings.secret_key, value, key) if is_encrypted else value
    api_key, host = values["POSTHOG_API_KEY"], values["POSTHOG_HOST"]
    if not api_key or not host or not host.strip():
        return None
    return PostHogConfig(api_key, host)


def message(
    *,
    event_id: str,
    event_time: str,
    user_id: str,
    event_name: str,
    slug: str | None,
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    """One capture as PostHog's /batch/ takes it; `groups={"workspace": slug}` as Plane passes it."""
    props: dict[str, Any] = {**properties, "$lib": LIBRARY}
    if slug:
        props["$groups"] = {"workspace": slug}
    return {
        "type": "capture",
        "event": event_name,
        "distinct_id": user_id,
        "properties": props,
        "timestamp": event_time,
        "uuid": event_id,
    }


def body(api_key: str, messages: Sequence[Mapping[str, Any]]) -> bytes:
    sent_at = datetime.now(UTC).isoformat()
    return json.dumps({"api_key": api_key, "batch": list(messages), "sent_at": sent_at}, default=str).encode()


def chunks(messages: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """The messages in order, in runs whose encoded size stays under MAX_REQUEST_BYTES."""
    run: list[Mapping[str, Any]] = []
    size = 0
    for msg in messages:
        n = len(json.dumps(msg, default=str).encode()) + 2
        if run and size + n > MAX_REQUEST_BYTES - 512:
            yield run
            run, size = [], 0
        run.append(msg)
        size += n
    if run:
        yield run


@cache
def client_for(settings: Settings) -> SafeHttpClient:
    """One pooled client per process; a PostHog on an internal address needs POSTHOG_ALLOWED_IPS."""
    return SafeHttpClient(
        Allowlist.parse(settings.posthog_allowed_ips),
        connect_timeout_s=settings.posthog_timeout_s,
        default_deadline_s=settings.posthog_timeout_s,
        default_max_response_bytes=64 * 1024,
        max_request_bytes=MAX_REQUEST_BYTES * 2,
        max_connections_per_endpoint=2,
    )


def send(client: SafeHttpClient, config: PostHogConfig, messages: Sequence[Mapping[str, Any]]) -> None:
    """POST the messages; returns once PostHog answered 200 to every request, else raises
    PostHogUnavailable (try again later) or PostHogRejected (the payload itself is refused)."""
    for run in chunks(messages):
        try:
            response = client.request(
                "POST",
                config.batch_url,
                headers={"Content-Type": "application/json"},
                body=body(config.api_key, run),
            )
        except HttpError as exc:
            # Never the URL's query or the body: the body holds the key. The host is the operator's.
            raise PostHogUnavailable(f"PostHog unreachable ({type(exc).__name__}): {exc}") from None
        if response.status in (400, 413):
            raise PostHogRejected(f"PostHog refused the batch: HTTP {response.status}")
        if not response.ok:
            raise PostHogUnavailable(f"PostHog answered HTTP {response.status}")
