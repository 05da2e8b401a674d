"""webhook-events: one `plane.webhook_activity.v1` in, one delivery per subscribed webhook out.

Plane's `webhook_activity` semantics: the workspace's webhooks with the event's flag set; `data`
is the object serialised now (a snapshot), or just `{"id"}` for a deletion; `activity` carries the
changed field and the actor. Differences:
- Inactive webhooks get their delivery too. The delivery consumer records it as skipped, with its
  payload, so `plane-workers webhooks replay` can send what an endpoint missed while it was off.
- The delivery id is derived from (event id, webhook id), so a re-run fan-out produces the same
  deliveries and receivers see the same `webhook-id`.
- A body over WEBHOOK_PAYLOAD_MAX_BYTES is sent thin (`data` is `{"id"}`) instead of unbounded.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from services.webhooks.payload import SharedBody, model_data, user_lite
from services.webhooks.signing import plane_body
from shared.events import Event
from shared.events.envelope import DEFAULT_SOURCE
from shared.kafka.handler import HandlerContext

log = logging.getLogger(__name__)

DELIVERY_TOPIC = "webhook-deliveries"
DELIVERY_TYPE = "plane.webhook_delivery.v1"
DELIVERY_NAMESPACE = uuid.UUID("6f1c2b2e-3d7a-5b8e-9c41-2a0d5e7f9b13")

# Which `webhooks` flag an event kind needs; kinds not listed go to every webhook (as in Plane).
FLAG = {
    "project": "project",
    "issue": "issue",
    "module": "module",
    "module_issue": "module",
    "cycle": "cycle",
    "cycle_issue": "cycle",
    "issue_comment": "issue_comment",
}


def handle(event: Event, ctx: HandlerContext) -> None:
    assert ctx.session is not None, "registered with idempotency='transaction'"
    conn = ctx.session.connection()
    data = event.data
    workspace_id = data.get("workspace_id") or _workspace_by_slug(conn, data["slug"])
    if workspace_id is None:
        log.info("no workspace %r: nothing to deliver", data["slug"])
        return
    webhooks = _subscribed(conn, uuid.UUID(str(workspace_id)), data["event"])
    if not webhooks:
        return

    kind, verb = data["event"], data["verb"]
    obj = {"id": data["event_id"]} if verb == "deleted" else model_data(conn, kind, data["event_id"])
    actor = user_lite(conn, data["actor_id"]) if data.get("actor_id") else None
    activity = {
        "field": data.get("field"),
        "new_value": data.get("new_value"),
        "old_value": data.get("old_value"),
        "actor": actor,
        "old_identifier": data.get("old_identifier"),
        "new_identifier": data.get("new_identifier"),
    }
    body = SharedBody.of(workspace_id, kind, verb, obj, activity)
    # Every body has the same length: they differ only in the webhook id, 36 characters each.
    cap = ctx.settings.webhook_payload_max_bytes
    if len(plane_body(body.for_webhook(webhooks[0]))) > cap:
        log.warning("%s %s: body over %d bytes, sent thin", kind, data["event_id"], cap)
        body = SharedBody.of(workspace_id, kind, verb, {"id": data["event_id"]}, activity)
    deliveries = []
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for webhook_id in webhooks:
        payload = body.for_webhook(webhook_id)
        # Built, not validated: the schema is checked where it matters, on consume, and
        # validating a hundred payloads per event would cost more than producing them.
        delivery = Event(
            id=str(uuid.uuid5(DELIVERY_NAMESPACE, f"{event.id}:{webhook_id}")),
            type=DELIVERY_TYPE,
            source=DEFAULT_SOURCE,
            time=now,
            data=delivery_data(payload, slug=data["slug"], current_site=data.get("current_site")),
            subject=str(webhook_id),
        )
        deliveries.append((str(webhook_id), delivery))
    # Confirmed by the broker before the runtime commits this event's claim.
    ctx.producer.send_many(DELIVERY_TOPIC, deliveries)


def delivery_data(payload: dict[str, Any], *, slug: str, current_site: str | None) -> dict[str, Any]:
    """A `plane.webhook_delivery.v1`'s data for one webhook's body (build_payload's)."""
    return {
        "webhook_id": payload["webhook_id"],
        "workspace_id": payload["workspace_id"],
        "slug": slug,
        "current_site": current_site,
        "event": payload["event"],
        "action": payload["action"],
        "payload": payload,
    }


def _workspace_by_slug(conn: Connection, slug: str) -> uuid.UUID | None:
    query = text("SELECT id FROM workspaces WHERE slug = :slug AND deleted_at IS NULL")
    return conn.execute(query, {"slug": slug}).scalar()


def _subscribed(conn: Connection, workspace_id: uuid.UUID, kind: str) -> list[uuid.UUID]:
    flag = FLAG.get(kind)
    condition = f"AND {flag}" if flag else ""  # flag is one of FLAG's values, never user input
    query = text(
        f"SELECT id FROM webhooks WHERE workspace_id = :ws AND deleted_at IS NULL {condition} ORDER BY id"
    )
    return list(conn.execute(query, {"ws": workspace_id}).scalars())
