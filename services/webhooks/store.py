"""The delivery pipeline's database work, done in batches on the consumer's main thread.

`lookup` reads, for a batch of deliveries, their webhooks, signing state and any terminal record,
and logs the attempts a killed worker left unrecorded (`journal`); `record` writes a batch of
outcomes in one transaction: one `webhook_logs` row per attempt (Plane's table, JSON instead of
Python repr, no signature), the terminal `webhook_deliveries` rows, the endpoint's failure window,
and the disabling of endpoints that failed for too long.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.webhooks.attempt import Control, Delivery, Endpoint, Outcome, Result
from services.webhooks.signing import RetiredKey, signing_keys
from shared.db.plane import WebhookLog
from shared.db.state import WebhookDelivery

log = logging.getLogger(__name__)

MAX_RETIRED_KEYS = 10


class Terminal:
    """Statuses of webhook_deliveries. Only SUCCEEDED drops the payload."""

    SUCCEEDED = "succeeded"
    EXHAUSTED = "exhausted"
    GONE = "gone"
    BLOCKED = "blocked"
    SKIPPED = "skipped"  # the webhook was inactive or deleted when the delivery came up
    ABORTED = "aborted"  # failed, and the receiver asked for no retries (webhook-delivery header)


@dataclass(frozen=True)
class Lookup:
    endpoints: dict[uuid.UUID, Endpoint]  # active webhooks only
    terminal: dict[str, str]  # delivery id -> status, for deliveries already finished
    interrupted: dict[str, int]  # delivery id -> its last attempt that a killed worker left unlogged


_WEBHOOKS = text(
    """
    SELECT w.id, w.url, w.secret_key, e.current_secret, e.retired_keys
    FROM webhooks w
    LEFT JOIN plane_workers.webhook_endpoints e ON e.webhook_id = w.id
    WHERE w.id IN :ids AND w.is_active AND w.deleted_at IS NULL
    """
).bindparams(bindparam("ids", expanding=True))

_TERMINAL = text(
    "SELECT delivery_id::text, status FROM plane_workers.webhook_deliveries WHERE delivery_id IN :ids"
).bindparams(bindparam("ids", expanding=True))

# Attempts written before sending and not recorded: their worker died, or lost the partition,
# before the answer was recorded. Whoever reads the delivery again logs the ones not yet logged.
_OPEN = text(
    """
    SELECT delivery_id::text, attempt, started_at, logged FROM plane_workers.webhook_attempts
    WHERE delivery_id IN :ids FOR UPDATE
    """
).bindparams(bindparam("ids", expanding=True))

_MARK_LOGGED = text(
    """
    UPDATE plane_workers.webhook_attempts SET logged = true
    WHERE (delivery_id, attempt) IN (SELECT unnest(CAST(:ids AS uuid[])), unnest(CAST(:attempts AS int[])))
    """
)

_FINISH = text("DELETE FROM plane_workers.webhook_attempts WHERE delivery_id = ANY(CAST(:ids AS uuid[]))")

INTERRUPTED = (
    "interrupted: the worker stopped before this attempt's answer was recorded"
    " (the request may or may not have reached the receiver)"
)

_ROTATE = text(
    """
    INSERT INTO plane_workers.webhook_endpoints (webhook_id, current_secret, retired_keys)
    VALUES (:id, :secret, :retired)
    ON CONFLICT (webhook_id) DO UPDATE
    SET current_secret = excluded.current_secret, retired_keys = excluded.retired_keys
    """
).bindparams(bindparam("retired", type_=JSONB))


def lookup(conn: Connection, deliveries: Sequence[Delivery], now: float, grace_s: float) -> Lookup:
    """Also notices a changed webhooks.secret_key: the old secret is retired, and keeps signing
    next to the new one for `grace_s`, so receivers can roll over (Standard Webhooks rotation)."""
    ids = sorted({d.webhook_id for d in deliveries})
    endpoints: dict[uuid.UUID, Endpoint] = {}
    for row in conn.execute(_WEBHOOKS, {"ids": ids}):
        retired = [RetiredKey(k["secret"], k["retired_at"]) for k in row.retired_keys or ()]
        if row.current_secret != row.secret_key:
            if row.current_secret is not None:
                retired = [RetiredKey(row.current_secret, now), *retired][:MAX_RETIRED_KEYS]
            conn.execute(
                _ROTATE,
                {
                    "id": row.id,
                    "secret": row.secret_key,
                    "retired": [{"secret": k.secret, "retired_at": k.retired_at} for k in retired],
                },
            )
        keys = signing_keys(row.secret_key, retired, now, grace_s, MAX_RETIRED_KEYS)
        endpoints[row.id] = Endpoint(row.url, row.secret_key, tuple(keys))
    # Ids as text, cast by PostgreSQL: psycopg2's UUID adapter costs more than the query.
    delivery_ids = sorted({d.id for d in deliveries})
    rows = conn.execute(_TERMINAL, {"ids": delivery_ids})
    terminal = {delivery_id: status for delivery_id, status in rows}
    return Lookup(endpoints, terminal, _log_interrupted(conn, deliveries, delivery_ids))


def _log_interrupted(conn: Connection, deliveries: Sequence[Delivery], ids: list[str]) -> dict[str, int]:
    """Per delivery, its last attempt a worker began without recording; logs those not yet logged."""
    found = conn.execute(_OPEN, {"ids": ids}).all()
    by_id = {d.id: d for d in deliveries}
    rows, marked, last = [], [], {}
    for delivery_id, attempt_no, started_at, logged in found:
        last[delivery_id] = max(attempt_no, last.get(delivery_id, 0))
        if logged:
            continue
        delivery = by_id[delivery_id]
        outcome = Outcome(
            replace(delivery, attempt=attempt_no),
            Result.FAILED,
            {"X-Plane-Delivery": delivery.id, "X-Plane-Event": delivery.event, "webhook-id": delivery.id},
            error=INTERRUPTED,
        )
        rows.extend(log_rows([outcome], started_at))
        marked.append((delivery_id, attempt_no))
    if rows:
        conn.execute(_LOG, rows)
        conn.execute(
            _MARK_LOGGED,
            {"ids": [m[0] for m in marked], "attempts": [m[1] for m in marked]},
        )
        log.warning("logged %d attempts that a stopped worker had left unrecorded", len(rows))
    return last


# Core inserts, not text(): SQLAlchemy sends a list of rows as multi-row INSERTs
# (insertmanyvalues) instead of one round trip per row.
_LOG = insert(WebhookLog)

_TERMINATE = pg_insert(WebhookDelivery)
_TERMINATE = _TERMINATE.on_conflict_do_update(
    index_elements=[WebhookDelivery.delivery_id],
    set_={
        "status": _TERMINATE.excluded.status,
        "attempts": _TERMINATE.excluded.attempts,
        "finished_at": func.now(),
        "envelope": _TERMINATE.excluded.envelope,
    },
).returning(WebhookDelivery.delivery_id)  # without RETURNING an upsert goes row by row

_SUCCESS = text(
    """
    INSERT INTO plane_workers.webhook_endpoints (webhook_id, last_success_at)
    SELECT unnest(CAST(:ids AS uuid[])), :at
    ON CONFLICT (webhook_id) DO UPDATE
    SET first_failure_at = NULL, last_success_at = excluded.last_success_at
    """
)

# Returns, per endpoint, the start of its current run of failures.
_FAILURE = text(
    """
    INSERT INTO plane_workers.webhook_endpoints (webhook_id, first_failure_at)
    SELECT unnest(CAST(:ids AS uuid[])), :at
    ON CONFLICT (webhook_id) DO UPDATE
    SET first_failure_at = coalesce(webhook_endpoints.first_failure_at, excluded.first_failure_at)
    RETURNING webhook_id, first_failure_at
    """
)

# `AND is_active` makes the disabling happen once, whoever races for it.
_DISABLE = text(
    """
    UPDATE webhooks SET is_active = false, updated_at = :at
    WHERE id = :id AND is_active AND deleted_at IS NULL
    RETURNING id, url, workspace_id, created_by_id
    """
)

_MARK_DISABLED = text(
    """
    UPDATE plane_workers.webhook_endpoints SET disabled_at = :at, disabled_reason = :reason
    WHERE webhook_id = :id
    """
)


@dataclass(frozen=True)
class Disabled:
    webhook_id: uuid.UUID
    url: str
    workspace_id: uuid.UUID
    created_by_id: uuid.UUID | None
    reason: str


def log_rows(outcomes: Iterable[Outcome], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "created_at": at,
            "updated_at": at,
            "event_type": o.delivery.event,
            "request_method": "POST",
            "request_headers": o.stored_request_headers,
            "request_body": o.delivery.body.decode(),
            "response_status": None if o.status is None else str(o.status),
            "response_headers": json.dumps(o.response_headers),
            "response_body": o.response_body if o.error is None else json.dumps({"error": o.error}),
            "retry_count": min(o.delivery.attempt - 1, 32767),
            "webhook": o.delivery.webhook_id,
            "workspace_id": o.delivery.workspace_id,
        }
        for o in outcomes
    ]


def terminal_row(delivery: Delivery, status: str) -> dict[str, Any]:
    return {
        "delivery_id": uuid.UUID(delivery.id),
        "webhook_id": delivery.webhook_id,
        "status": status,
        "attempts": delivery.attempt if status != Terminal.SKIPPED else delivery.attempt - 1,
        "event_time": delivery.event_time,
        "envelope": None if status == Terminal.SUCCEEDED else delivery.envelope,
    }


@dataclass
class Batch:
    """What one `record` call writes; built by the pipeline from finished attempts."""

    attempts: list[Outcome]  # every attempt made: one webhook_logs row each
    terminal: list[dict[str, Any]]  # webhook_deliveries rows
    exhausted: list[Outcome]  # last attempt failed: disable if the endpoint never recovered


def record(
    conn: Connection,
    batch: Batch,
    *,
    now: datetime,
    disable_after: timedelta,
    on_disabled: Callable[[Disabled], None],
) -> list[Disabled]:
    """Write one batch. `on_disabled` runs inside the transaction for each endpoint this batch
    disabled (it hands the owner's mail to the `emails` topic), so a failure there rolls the
    disabling back and the batch is tried again: the owner is told at least once, and only by
    the run that disabled."""
    if batch.attempts:
        conn.execute(_LOG, log_rows(batch.attempts, now))
        sent = [o.delivery for o in batch.attempts]
        conn.execute(_FINISH, {"ids": [d.id for d in sent]})
    if batch.terminal:
        # One multi-row upsert may not touch a row twice: a delivery replayed twice in quick
        # succession can end twice in one batch, and its last end wins.
        unique = {row["delivery_id"]: row for row in batch.terminal}
        conn.execute(_TERMINATE, list(unique.values()))

    # One statement per kind, not per attempt: a batch holds hundreds of attempts to a few
    # endpoints. An endpoint's last answer in the batch decides (completion order).
    last: dict[uuid.UUID, Outcome] = {}
    for outcome in batch.attempts:
        if outcome.result is not Result.BLOCKED:
            last[outcome.delivery.webhook_id] = outcome
    succeeded = [w for w, o in last.items() if o.result is Result.SUCCEEDED]
    failed = [w for w, o in last.items() if o.result is Result.FAILED]
    if succeeded:
        conn.execute(_SUCCESS, {"ids": succeeded, "at": now})
    since = {}
    if failed:
        since = {w: at for w, at in conn.execute(_FAILURE, {"ids": failed, "at": now})}

    to_disable: dict[uuid.UUID, str] = {
        o.delivery.webhook_id: "the receiver asked for it (webhook-delivery: disable)"
        for o in batch.attempts
        if o.control is Control.DISABLE
    }
    for webhook_id, outcome in last.items():
        if outcome.result is Result.GONE:
            to_disable.setdefault(webhook_id, "the endpoint answered 410 Gone")
        elif outcome.result is Result.FAILED:
            started = since[webhook_id]
            if now - started > disable_after:
                to_disable.setdefault(webhook_id, f"every attempt failed since {started.isoformat()}")
    for outcome in batch.exhausted:
        webhook_id = outcome.delivery.webhook_id
        # Sporadic failures exhaust a delivery now and then; only an endpoint that has not
        # answered once since this delivery first failed is switched off.
        if webhook_id in since and _failing_throughout(outcome.delivery, since[webhook_id]):
            to_disable.setdefault(webhook_id, f"retries exhausted for delivery {outcome.delivery.id}")

    disabled = []
    for webhook_id, reason in to_disable.items():
        row = conn.execute(_DISABLE, {"id": webhook_id, "at": now}).first()
        if row is None:
            continue  # already inactive: disabled once, by whoever got there first
        conn.execute(_MARK_DISABLED, {"id": webhook_id, "at": now, "reason": reason})
        item = Disabled(row.id, row.url, row.workspace_id, row.created_by_id, reason)
        on_disabled(item)
        disabled.append(item)
        log.warning("webhook %s disabled: %s", webhook_id, reason)
    return disabled


def _failing_throughout(delivery: Delivery, since: datetime) -> bool:
    first = delivery.first_failed_at
    return first is None or since.timestamp() <= first + 1.0
