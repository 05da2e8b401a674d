"""Consumer `api-logs`: Plane's process_logs, one `api_activity_logs` row per public-API request.

A batch handler (shared/registry.py): a batch's rows go in with one multi-row INSERT, in the
transaction that claims the batch's events. The row is Plane's (its columns, `created_by_id`
NULL as Plane's Celery-side create leaves it), with what services/api_logs/scrub.py changes:
the API key stored as its SHA-256 only and removed from every other column, credentials in
headers and query strings redacted, bodies cut to API_LOG_BODY_MAX_BYTES (Plane keeps any size),
NULs and lone surrogates removed, varchar columns cut to their length, an address inet refuses
stored as NULL. Nothing here ever logs a value of the request.

Differences from Plane besides those: `created_at` is the request's time (`mongo_log.created_at`,
else the event's time), not the time the task ran, so retention counts from the request; the
row id is derived from the event id and inserted ON CONFLICT DO NOTHING, so an event replayed
after its claim was pruned adds no second row. Plane's MongoDB variant (MONGO_DB_URL) is not
reproduced: rows always go to PostgreSQL, where Plane's cleanup job and ours read them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert

from services.api_logs import scrub
from shared.db.plane import APIActivityLog
from shared.events import Event
from shared.kafka.handler import HandlerContext
from shared.metrics import REGISTRY
from shared.settings import Settings

log = logging.getLogger(__name__)

BODIES_CUT = Counter(
    "plane_workers_api_log_bodies_truncated_total",
    "Request or response bodies of API logs cut to API_LOG_BODY_MAX_BYTES, by field.",
    ["field"],
    registry=REGISTRY,
)

_TABLE = APIActivityLog.__table__
# varchar lengths of api_activity_logs (Plane's model).
_LENGTHS = {"path": 255, "method": 10, "user_agent": 512}


def row_id(event_id: str) -> uuid.UUID:
    """A UUID v4 (the version Plane accepts) fixed by the event: a replay writes the same row."""
    digest = hashlib.sha256(f"{event_id}:api_activity_log".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def request_time(event: Event) -> datetime:
    mongo_log = event.data.get("mongo_log") or {}
    for candidate in (mongo_log.get("created_at"), event.time):
        if not isinstance(candidate, str):
            continue
        try:
            when = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return datetime.now(UTC)


def row_of(event: Event, settings: Settings) -> dict[str, Any]:
    """The `api_activity_logs` row of one event, with nothing a credential could hide in."""
    data = event.data["log_data"]
    raw_key: str = data["token_identifier"]
    secrets = (raw_key, scrub.pg_text(raw_key))

    def text_of(name: str, value: str | None) -> str | None:
        if value is None:
            return None
        value = scrub.without(scrub.pg_text(value), secrets)
        if name in _LENGTHS:
            return scrub.varchar(value, _LENGTHS[name])
        if name in ("body", "response_body"):
            value, cut = scrub.cap_bytes(value or "", settings.api_log_body_max_bytes)
            if cut:
                BODIES_CUT.labels(name).inc()
        return value

    headers = data.get("headers")
    if isinstance(headers, dict):
        headers = {scrub.pg_text(str(k)): scrub.pg_text(str(v)) for k, v in headers.items()}
    else:
        headers = _pg(headers)
    when = request_time(event)
    return {
        "id": row_id(event.id),
        "created_at": when,
        "updated_at": when,
        "token_identifier": scrub.token_identifier(raw_key),
        "path": text_of("path", data["path"]),
        "method": text_of("method", data["method"]),
        "query_params": text_of("query_params", scrub.redact_query(_pg(data.get("query_params")))),
        "headers": text_of("headers", scrub.redact_headers(headers)),
        "body": text_of("body", data.get("body")),
        "response_code": data["response_code"],
        "response_body": text_of("response_body", data.get("response_body")),
        "ip_address": scrub.inet(data.get("ip_address")),
        "user_agent": text_of("user_agent", data.get("user_agent")),
        "created_by_id": None,
        "updated_by_id": None,
        "deleted_at": None,
    }


def _pg(value: str | None) -> str | None:
    return None if value is None else scrub.pg_text(value)


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with batch="
    if not events:
        return
    rows = [row_of(event, ctx.settings) for event in events]
    session.execute(insert(_TABLE).values(rows).on_conflict_do_nothing(index_elements=["id"]))
    log.debug("stored %d API activity logs", len(rows))
