"""Conformance samples for webhook-events (fan-out) and webhook-deliveries (HTTP).

Both are at-least-once toward what they feed: a fan-out killed after its deliveries were
confirmed but before its claim committed emits them again, and a delivery process killed after a
POST but before recording it posts again. Each repeat carries the same id (the delivery id is
derived from event and webhook; `webhook-id` is the delivery id), so the effects are read
deduplicated by that id: a repeat with another id, or a lost one, still shows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.webhooks.fanout import DELIVERY_NAMESPACE, DELIVERY_TOPIC
from services.webhooks.payload import build_payload
from services.webhooks.signing import plane_body
from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import Event, new_event
from shared.testing import plane_factory as make
from shared.testing.topics import read_topic

WEBHOOKS = 4
LOOPBACK = {"WEBHOOK_ALLOWED_IPS": "127.0.0.0/8", "WEBHOOK_TIMEOUT_S": "5"}


class Seeded(NamedTuple):
    workspace_id: uuid.UUID
    slug: str
    owner_id: uuid.UUID
    issue_id: uuid.UUID
    hooks: list[uuid.UUID]  # each at world.receiver.url(f"/hook/{n}")


def _workspace(world: SampleWorld) -> Seeded:
    with Session(world.engine, expire_on_commit=False) as session, session.begin():
        owner = make.user(0)
        ws = make.workspace(owner, slug=f"ws-{uuid.uuid4().hex[:8]}")
        project = make.project(ws)
        issue = make.issue(project, 1, name="Hooked")
        hooks = [make.webhook(ws, world.receiver.url(f"/hook/{n}")) for n in range(WEBHOOKS)]
        session.add_all([owner, ws, project, issue, *hooks])
    return Seeded(ws.id, ws.slug, owner.id, issue.id, [h.id for h in hooks])


def fanout(world: SampleWorld) -> ConsumerSamples:
    """`world.size` issue updates; every webhook but the one without the issue flag gets each."""
    seeded = _workspace(world)
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE webhooks SET issue = false WHERE id = :id"), {"id": seeded.hooks[0]})
    subscribed = seeded.hooks[1:]
    events, expected = [], []
    for n in range(world.size):
        data = {
            "event": "issue",
            "verb": "updated",
            "field": "name",
            "old_value": f"Old {n}",
            "new_value": "Hooked",
            "actor_id": str(seeded.owner_id),
            "slug": seeded.slug,
            "current_site": "http://plane.test",
            "event_id": str(seeded.issue_id),
        }
        event = new_event("plane.webhook_activity.v1", data)
        events.append((str(seeded.workspace_id), event))
        expected += [(str(uuid.uuid5(DELIVERY_NAMESPACE, f"{event.id}:{h}")), str(h), n) for h in subscribed]

    def effects() -> list[tuple[str, str, int]]:
        seen = set()
        for message in read_topic(world.settings, world.settings.topic(DELIVERY_TOPIC)):
            delivery = json.loads(message.value())
            activity = delivery["data"]["payload"]["activity"]
            n = int(activity["old_value"].removeprefix("Old "))
            seen.add((delivery["id"], delivery["data"]["webhook_id"], n))
        return sorted(seen)

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected=sorted(expected),
        produces=(DELIVERY_TOPIC,),
        delivery="at_least_once",
    )


def deliveries(world: SampleWorld) -> ConsumerSamples:
    """`world.size` deliveries over WEBHOOKS loopback endpoints that answer 200."""
    seeded = _workspace(world)
    events: list[tuple[str | None, Event]] = []
    expected = []
    for n in range(world.size):
        hook, path = seeded.hooks[n % WEBHOOKS], f"/hook/{n % WEBHOOKS}"
        payload = build_payload(hook, seeded.workspace_id, "issue", "PATCH", {"n": n}, None)
        event = new_event(
            "plane.webhook_delivery.v1",
            {
                "webhook_id": str(hook),
                "workspace_id": str(seeded.workspace_id),
                "event": "issue",
                "action": payload["action"],
                "payload": payload,
            },
        )
        events.append((str(hook), event))
        expected.append((event.id, path, _digest(plane_body(payload)), "succeeded"))

    def effects() -> list[tuple[str, str, str, str]]:
        with world.engine.connect() as conn:
            status = dict(
                conn.execute(
                    text("SELECT delivery_id::text, status FROM plane_workers.webhook_deliveries")
                ).all()
            )
        requests = world.receiver.requests()
        received = {(r.headers.get("webhook-id", ""), r.path, _digest(r.body)) for r in requests}
        return sorted((i, path, digest, status.get(i, "")) for i, path, digest in received)

    return ConsumerSamples(
        events=events, effects=effects, expected=sorted(expected), env=LOOPBACK, delivery="at_least_once"
    )


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]
