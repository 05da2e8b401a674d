"""Plane's webhook tasks on Celery: the baseline our webhook delivery consumers are measured against.

`webhook_activity` (fan-out) and `webhook_send_task` (one delivery per task, `requests`, autoretry)
are written the way Plane's `bgtasks/webhook_task.py` has them (spec §5.5-5.6): same queries and
filters, same headers, payload key order and HMAC signature, same `webhook_logs` row with Python
`str()` reprs, same retry policy (`autoretry_for=RequestException, retry_backoff=600, max_retries=5,
retry_jitter=True`) and deactivation after the last attempt, same SSRF re-check at send time.
The app runs with Plane's Celery settings: RabbitMQ broker, JSON, no result backend, Celery's
defaults otherwise (prefork, early acks, prefetch multiplier 4).

Stand-ins, all faithful-or-faster, so the baseline is if anything optimistic for Celery:
- Plane's worker goes through the Django ORM; here raw psycopg2 (one autocommit connection per
  worker process) runs the same statements without the ORM's per-query overhead.
- Plane serializes the event with DRF (`IssueExpandSerializer`: two issue queries plus label and
  assignee prefetches); here one `SELECT * FROM <table> WHERE id = %s` row becomes the dict. The
  actor (`UserLiteSerializer`) is one small `users` query per webhook, as in Plane.
- Mongo is not configured, so every log row goes to Postgres `webhook_logs`, as Plane does then.
- The deactivation e-mail task only logs.
The one departure from Plane's set-up: each run uses its own queue (`start_worker`), so runs never
see each other's leftovers; Plane sends everything to the default `celery` queue.

Worker: `start_worker(database_url)` launches `python -m celery -A tests.benchmarks.celery_webhooks
worker --pool=prefork` in a subprocess and `stop_worker(proc)` stops it. Environment read by the
worker: `BENCH_DATABASE_URL` (required), `BENCH_BROKER_URL`, `BENCH_CELERY_QUEUE`,
`WEBHOOK_ALLOWED_IPS` / `WEBHOOK_ALLOWED_HOSTS` (comma lists, Plane's meaning),
`BENCH_WEBHOOK_TIMEOUT_S` (the `requests` timeout, Plane's 30 s unless a quick run shortens it).
`purge(proc)` empties the run's queue (tasks the worker already reserved stay with it);
`stop_worker(proc, cold=True)` stops it without waiting for the tasks in progress.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import subprocess
import uuid
from typing import Any
from urllib.parse import urlparse

import requests

from services.webhooks.fanout import FLAG
from services.webhooks.payload import ACTIONS, TABLES
from tests.benchmarks import celery_worker as worker
from tests.benchmarks.celery_worker import connection, logger, plane_app

WEBHOOK_TIMEOUT_S = float(os.environ.get("BENCH_WEBHOOK_TIMEOUT_S", "30"))

app = plane_app("plane_bench")

# --- database: one autocommit psycopg2 connection per (worker) process ---


def _cursor() -> Any:
    return connection("celery-webhooks-bench").cursor()


class DoesNotExist(Exception):
    """Django's `ObjectDoesNotExist`."""


def _json_default(o: Any) -> Any:
    """Django's `DjangoJSONEncoder`."""
    if isinstance(o, datetime.datetime):
        r = o.isoformat()
        if o.microsecond:
            r = r[:23] + r[26:]
        return r[:-6] + "Z" if r.endswith("+00:00") else r
    if isinstance(o, datetime.date):
        return o.isoformat()
    if isinstance(o, datetime.time):
        r = o.isoformat()
        return r[:12] if o.microsecond else r
    if isinstance(o, decimal.Decimal | uuid.UUID):
        return str(o)
    if isinstance(o, datetime.timedelta):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default)) if value is not None else None


# --- webhook_activity (§5.5) ---

# Plane's own event -> table and event -> flag mappings, shared with our consumers so the two
# sides of the benchmark select the same rows and webhooks.
MODEL_TABLE = TABLES
EVENT_FLAG = FLAG
USER_LITE = (
    "SELECT id, first_name, last_name, email, avatar, avatar_asset_id, display_name FROM users WHERE id = %s"
)


def get_model_data(event: str, event_id: Any) -> dict[str, Any]:
    """The serialized row (stand-in for Plane's DRF serializers); raises DoesNotExist."""
    with _cursor() as cur:
        if event == "user":
            cur.execute(USER_LITE, (str(event_id),))
        elif event in MODEL_TABLE:
            cur.execute(
                f"SELECT * FROM {MODEL_TABLE[event]} WHERE id = %s AND deleted_at IS NULL", (str(event_id),)
            )
        else:
            raise ValueError(f"Model not found for event: {event}")
        row = cur.fetchone()
        if row is None:
            raise DoesNotExist(f"No {event} found with id: {event_id}")
        data = dict(zip([c.name for c in cur.description], row, strict=True))
    if event == "user":
        asset = data.pop("avatar_asset_id")
        data["avatar_url"] = f"/api/assets/v2/static/{asset}/" if asset else (data["avatar"] or None)
    return _roundtrip(data)


@app.task
def webhook_activity(
    event: str,
    verb: str,
    field: str | None,
    old_value: Any,
    new_value: Any,
    actor_id: str | None,
    slug: str,
    current_site: str | None,
    event_id: str,
    old_identifier: str | None,
    new_identifier: str | None,
) -> None:
    try:
        sql = (
            "SELECT w.id FROM webhooks w JOIN workspaces ws ON ws.id = w.workspace_id "
            "WHERE ws.slug = %s AND w.is_active AND w.deleted_at IS NULL"
        )
        if event in EVENT_FLAG:
            sql += f" AND w.{EVENT_FLAG[event]}"
        event_data = {"id": event_id} if verb == "deleted" else get_model_data(event, event_id)
        with _cursor() as cur:
            cur.execute(sql, (slug,))
            webhook_ids = [str(r[0]) for r in cur.fetchall()]
        for webhook_id in webhook_ids:
            webhook_send_task.delay(
                webhook_id=webhook_id,
                slug=slug,
                event=event,
                event_data=event_data,
                action=verb,
                current_site=current_site,
                activity={
                    "field": field,
                    "new_value": new_value,
                    "old_value": old_value,
                    "actor": get_model_data("user", actor_id) if actor_id else None,
                    "old_identifier": old_identifier,
                    "new_identifier": new_identifier,
                },
            )
    except DoesNotExist:
        return
    except Exception:
        logger.exception("webhook_activity failed")


# --- webhook_send_task (§5.6) ---


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


ALLOWED_IPS = [ipaddress.ip_network(n, strict=False) for n in _env_list("WEBHOOK_ALLOWED_IPS")]
ALLOWED_HOSTS = {h.lower().rstrip(".") for h in _env_list("WEBHOOK_ALLOWED_HOSTS")}


def validate_url(url: str) -> None:
    """Plane's `utils/ip_address.validate_url`: no private/loopback target outside the allow-lists."""
    parsed = urlparse(url)
    if not parsed.hostname:
        raise ValueError("Invalid URL: No hostname found")
    if parsed.scheme not in ("http", "https"):
        raise ValueError("Invalid URL scheme. Only HTTP and HTTPS are allowed")
    host = parsed.hostname.lower().rstrip(".")
    if host in ALLOWED_HOSTS:
        return
    for *_, sockaddr in socket.getaddrinfo(host, None):
        ip = ipaddress.ip_address(sockaddr[0])
        if (ip.is_private or ip.is_loopback or ip.is_reserved or ip.is_link_local) and not any(
            ip.version == net.version and ip in net for net in ALLOWED_IPS
        ):
            raise ValueError("Access to private/internal networks is not allowed")


WEBHOOK = (
    "SELECT w.id, w.url, w.secret_key, w.workspace_id, w.created_by_id FROM webhooks w "
    "JOIN workspaces ws ON ws.id = w.workspace_id WHERE w.id = %s AND ws.slug = %s AND w.deleted_at IS NULL"
)
LOG_ROW = (
    "INSERT INTO webhook_logs (created_at, updated_at, id, event_type, request_method, request_headers, "
    "request_body, response_status, response_headers, response_body, retry_count, created_by_id, "
    "updated_by_id, webhook, workspace_id, deleted_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL, %s, %s, NULL)"
)


def save_webhook_log(webhook: dict[str, Any], **log: Any) -> None:
    """`WebhookLog.objects.create(**log_data)` with Plane's `str()` of every field."""
    now = datetime.datetime.now(datetime.UTC)
    try:
        with _cursor() as cur:
            cur.execute(
                LOG_ROW,
                (
                    now,
                    now,
                    str(uuid.uuid4()),
                    str(log["event_type"]),
                    str(log["request_method"]),
                    str(log["request_headers"]),
                    str(log["request_body"]),
                    str(log["response_status"]),
                    str(log["response_headers"]),
                    str(log["response_body"]),
                    log["retry_count"],
                    str(webhook["id"]),
                    str(webhook["workspace_id"]),
                ),
            )
    except Exception as e:
        logger.warning("Failed to save webhook log: %s", e)


@app.task
def send_webhook_deactivation_email(
    webhook_id: str, receiver_id: str, current_site: str, reason: str
) -> None:
    logger.warning("webhook %s deactivated (no e-mail to %s in the benchmark)", webhook_id, receiver_id)


@app.task(
    bind=True,
    autoretry_for=(requests.RequestException,),
    retry_backoff=600,
    max_retries=5,
    retry_jitter=True,
)
def webhook_send_task(
    self: Any,
    webhook_id: str,
    slug: str,
    event: str,
    event_data: dict[str, Any] | None,
    action: str,
    current_site: str | None,
    activity: dict[str, Any] | None,
) -> None:
    try:
        with _cursor() as cur:
            cur.execute(WEBHOOK, (webhook_id, slug))
            row = cur.fetchone()
            if row is None:
                raise DoesNotExist(f"Webhook {webhook_id} of {slug} does not exist")
            webhook = dict(zip([c.name for c in cur.description], row, strict=True))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Autopilot",
            "X-Plane-Delivery": str(uuid.uuid4()),
            "X-Plane-Event": event,
        }
        event_data = _roundtrip(event_data)
        activity = _roundtrip(activity)
        action = ACTIONS.get(action, action)
        payload = {
            "event": event,
            "action": action,
            "webhook_id": str(webhook["id"]),
            "workspace_id": str(webhook["workspace_id"]),
            "data": event_data,
            "activity": activity,
        }
        if webhook["secret_key"]:
            headers["X-Plane-Signature"] = hmac.new(
                webhook["secret_key"].encode("utf-8"), json.dumps(payload).encode("utf-8"), hashlib.sha256
            ).hexdigest()
    except Exception:
        logger.exception("Failed to send webhook")
        return

    log = {"request_method": action, "request_headers": headers, "request_body": payload, "event_type": event}
    try:
        validate_url(webhook["url"])
        response = requests.post(webhook["url"], headers=headers, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        save_webhook_log(
            webhook,
            **log,
            response_status=response.status_code,
            response_headers=response.headers,
            response_body=response.text,
            retry_count=self.request.retries,
        )
    except requests.RequestException as e:
        save_webhook_log(
            webhook,
            **log,
            response_status=500,
            response_headers="",
            response_body=str(e),
            retry_count=self.request.retries,
        )
        logger.error("Webhook %s failed with error: %s", webhook["id"], e)
        if self.request.retries >= self.max_retries:
            with _cursor() as cur:
                cur.execute("UPDATE webhooks SET is_active = false WHERE id = %s", (str(webhook["id"]),))
            send_webhook_deactivation_email.delay(
                webhook_id=str(webhook["id"]),
                receiver_id=str(webhook["created_by_id"]) if webhook["created_by_id"] else None,
                reason=str(e),
                current_site=current_site,
            )
            return
        raise requests.RequestException() from e
    except Exception:
        logger.exception("webhook_send_task failed")


# --- worker process ---


def start_worker(
    database_url: str,
    concurrency: int = 2,
    *,
    queue: str | None = None,
    ready_timeout: float = 60.0,
    webhook_timeout_s: float = 30.0,
) -> subprocess.Popen:
    """A prefork worker on a fresh, purged queue, this process's sends routed to it."""
    env = {
        "BENCH_WEBHOOK_TIMEOUT_S": str(webhook_timeout_s),
        "WEBHOOK_ALLOWED_IPS": os.environ.get("WEBHOOK_ALLOWED_IPS", "127.0.0.0/8"),
    }
    queue = queue or f"bench-webhooks-{uuid.uuid4().hex[:12]}"
    return worker.start_worker(
        app, __name__, queue, database_url, concurrency, env=env, ready_timeout=ready_timeout
    )


def purge(proc: subprocess.Popen) -> None:
    """Drop every task still queued for the worker (not those it has reserved or is running)."""
    worker.declare_queue(app, proc.queue, purge=True)  # type: ignore[attr-defined]


def stop_worker(proc: subprocess.Popen, timeout: float = 30.0, *, cold: bool = False) -> None:
    worker.stop_worker(app, proc, timeout, cold=cold)
