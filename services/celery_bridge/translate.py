"""A decoded Celery task into the event our consumer takes: bound, looked up, validated.

The event id is derived from the Celery task id (uuid5), so a message delivered twice (the bridge
died between the Kafka write and the AMQP ack) becomes the same event twice, and the consumer's
event-id claim absorbs the second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from services.celery_bridge.protocol import TaskMessage, to_json_value
from services.celery_bridge.tasks import Route
from shared.events import InvalidEvent, new_event

# uuid5 namespace of bridged event ids: uuid5(NAMESPACE, celery task id).
NAMESPACE = uuid.UUID("6d1f3b8e-2c4a-5e7f-9a1b-3c5d7e9f1a2b")
SOURCE = "/plane-workers/celery-bridge"


class InvalidArguments(Exception):
    """The task's arguments can never make a valid event (Celery would have failed the call)."""


class LookupUnavailable(Exception):
    """Plane's database did not answer a lookup: try the message again later."""


@dataclass(frozen=True)
class Outgoing:
    topic: str  # logical
    key: str | None
    value: bytes
    event_id: str


def event_id(task_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, task_id))


class Lookups:
    """What some events need from Plane's database; workspace ids are cached (a slug never moves)."""

    def __init__(self, engine: Engine, cache_size: int = 10_000) -> None:
        self._engine = engine
        self._workspaces: dict[str, str | None] = {}
        self._cache_size = cache_size

    def workspace_by_slug(self, slug: str) -> str | None:
        if slug in self._workspaces:
            return self._workspaces[slug]
        found = self._scalar("SELECT id FROM workspaces WHERE slug = :slug AND deleted_at IS NULL", slug=slug)
        if found is not None:  # a missing one may be created later: not cached
            if len(self._workspaces) >= self._cache_size:
                self._workspaces.clear()
            self._workspaces[slug] = str(found)
        return None if found is None else str(found)

    def webhook_workspace(self, webhook_id: str, slug: str) -> str | None:
        """The workspace of a live webhook in the workspace `slug`, as Plane's task gets it."""
        found = self._scalar(
            "SELECT w.workspace_id FROM webhooks w JOIN workspaces ws ON ws.id = w.workspace_id "
            "WHERE w.id = CAST(:id AS uuid) AND ws.slug = :slug AND w.deleted_at IS NULL",
            id=webhook_id,
            slug=slug,
        )
        return None if found is None else str(found)

    def _scalar(self, sql: str, **params: Any) -> Any:
        try:
            with self._engine.connect() as conn:
                return conn.execute(text(sql), params).scalar()
        except DBAPIError as exc:
            if exc.connection_invalidated or exc.orig is None or _is_unavailable(exc):
                raise LookupUnavailable(str(exc.orig or exc).splitlines()[0]) from None
            raise InvalidArguments(f"lookup failed: {str(exc.orig).splitlines()[0]}") from None


def _is_unavailable(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "pgcode", None) or ""
    return not code or code.startswith(("08", "57P0")) or code == "53300"


def translate(task: TaskMessage, route: Route, lookups: Lookups | None) -> Outgoing:
    try:
        bound = route.bind(task.args, task.kwargs)
    except TypeError as exc:
        raise InvalidArguments(f"{route.plane_task}: {exc}") from None
    try:
        data: dict[str, Any] = to_json_value(bound)
    except TypeError as exc:
        raise InvalidArguments(f"{route.plane_task}: {exc}") from None
    if route.prepare is not None:
        data = route.prepare(data)
    key_only: dict[str, str] = {}  # what keys the message without being in the event
    if route.needs in ("workspace", "workspace_key") and lookups is not None:
        workspace = lookups.workspace_by_slug(str(data.get("slug")))
        if workspace is not None:
            (data if route.needs == "workspace" else key_only)["workspace_id"] = workspace
    elif route.needs == "webhook":
        if lookups is None:
            raise InvalidArguments(f"{route.plane_task} needs DATABASE_URL to find the webhook's workspace")
        data = _delivery(data, lookups)
    identifier = event_id(task.id)
    try:
        event = new_event(route.event_type, data, source=SOURCE, event_id=identifier)
    except InvalidEvent as exc:
        raise InvalidArguments(f"{route.plane_task}: not a valid {route.event_type}: {exc}") from None
    return Outgoing(route.topic, route.key(data | key_only), event.to_json(), identifier)


def _delivery(args: Mapping[str, Any], lookups: Lookups) -> dict[str, Any]:
    """webhook_send_task's arguments as the delivery the webhook-events fan-out would have made."""
    from services.webhooks.fanout import delivery_data
    from services.webhooks.payload import build_payload

    webhook_id, slug = str(args["webhook_id"]), str(args["slug"])
    try:
        uuid.UUID(webhook_id)
    except ValueError:
        raise InvalidArguments(f"webhook_send_task: webhook_id {webhook_id!r} is not a UUID") from None
    workspace_id = lookups.webhook_workspace(webhook_id, slug)
    if workspace_id is None:
        # Plane's task logs Webhook.DoesNotExist and returns; here it stays visible in the DLQ.
        raise InvalidArguments(f"webhook_send_task: no live webhook {webhook_id} in workspace {slug!r}")
    payload = build_payload(
        webhook_id, workspace_id, args["event"], args["action"], args["event_data"], args["activity"]
    )
    return delivery_data(payload, slug=slug, current_site=args["current_site"])
