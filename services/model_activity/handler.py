"""model-activity: Plane's `model_activity`, one `plane.webhook_activity.v1` per changed field.

Plane's rule: no previous instance means the model was created (one `created` activity, no
field); otherwise every key of the request body that the previous instance also has and whose
value differs is one `updated` activity with the old and new value. No database writes.
Differences:
- Each activity's id is derived from (this event's id, field), so a re-run emits the same ids
  and webhook-events, which claims ids, fans each out once.
- The workspace id is looked up once here and carried on, so webhook-events is keyed by it as
  the topic catalogue says (Plane passes the slug, and looks the workspace up per activity).
- A string value longer than the activity schema allows is cut, with a log line: the delivery's
  `data` carries the whole object anyway (Plane passed it through, unbounded, to Celery).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sqlalchemy import text

from shared.events import Event
from shared.events.envelope import DEFAULT_SOURCE
from shared.kafka.handler import HandlerContext, PermanentError

log = logging.getLogger(__name__)

ACTIVITY_TOPIC = "webhook-events"
ACTIVITY_TYPE = "plane.webhook_activity.v1"
ACTIVITY_NAMESPACE = uuid.UUID("0d6b7c1e-58a4-5f3b-9e2d-7a41c8f06b25")
MAX_VALUE_CHARS = 65536  # plane.webhook_activity.v1's maxLength for old_value and new_value

_WORKSPACE = text("SELECT id FROM workspaces WHERE slug = :slug AND deleted_at IS NULL")


def changes(requested: dict[str, Any] | None, current: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The activities Plane's model_activity emits, in the order of the request's keys."""
    if current is None:
        return [{"verb": "created", "field": None, "old_value": None, "new_value": None}]
    return [
        {"verb": "updated", "field": key, "old_value": current[key], "new_value": value}
        for key, value in (requested or {}).items()
        if key in current and current[key] != value
    ]


def handle(event: Event, ctx: HandlerContext) -> None:
    assert ctx.session is not None, "registered with idempotency='transaction'"
    data = event.data
    activities = changes(data.get("requested_data"), _previous(data.get("current_instance")))
    if not activities:
        return
    slug = data["slug"]
    workspace_id = data.get("workspace_id") or ctx.session.execute(_WORKSPACE, {"slug": slug}).scalar()
    if workspace_id is None:
        log.info("no workspace %r: no webhook wants %s %s", slug, data["model_name"], data["model_id"])
        return
    out = []
    for activity in activities:
        field = activity["field"]
        out.append(
            Event(
                id=str(uuid.uuid5(ACTIVITY_NAMESPACE, f"{event.id}:{field or ''}")),
                type=ACTIVITY_TYPE,
                source=DEFAULT_SOURCE,
                time=event.time,
                data={
                    "event": data["model_name"],
                    "verb": activity["verb"],
                    "field": field,
                    "old_value": _bounded(activity["old_value"], field),
                    "new_value": _bounded(activity["new_value"], field),
                    "actor_id": data.get("actor_id"),
                    "slug": data["slug"],
                    "workspace_id": str(workspace_id),
                    "current_site": data.get("origin"),
                    "event_id": data["model_id"],
                    "old_identifier": None,
                    "new_identifier": None,
                },
                subject=data["model_id"],
            )
        )
    # Confirmed by the broker before the runtime commits this event's claim.
    ctx.producer.send_many(ACTIVITY_TOPIC, [(str(workspace_id), e) for e in out])


def _previous(raw: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if raw is None or isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PermanentError(f"current_instance is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PermanentError(f"current_instance is JSON {type(value).__name__}, not an object")
    return value


def _bounded(value: Any, field: str | None) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        log.warning("%s: a value of %d characters cut to %d", field, len(value), MAX_VALUE_CHARS)
        return value[:MAX_VALUE_CHARS]
    return value
