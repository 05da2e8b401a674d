"""Conformance samples for model-activity: creates and multi-field updates of Plane's models.

At-least-once toward webhook-events (a run killed after its activities were confirmed and before
its claim committed emits them again, with the same ids, which webhook-events claims), so the
effects are read deduplicated by activity id: a repeat with another id, or a lost one, shows.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy.orm import Session

from services.model_activity.handler import ACTIVITY_NAMESPACE, ACTIVITY_TOPIC
from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import Event, new_event
from shared.testing import plane_factory as make
from shared.testing.topics import read_topic

MODELS = ("project", "issue", "cycle", "module", "issue_comment")


def cases(world: SampleWorld) -> ConsumerSamples:
    """`world.size` events: every fifth a create, the others change one to three fields."""
    with Session(world.engine, expire_on_commit=False) as session, session.begin():
        owner = make.user(0)
        ws = make.workspace(owner, slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add_all([owner, ws])
    events: list[tuple[str | None, Event]] = []
    expected = []
    for n in range(world.size):
        model_id = str(uuid.UUID(int=world.rng.getrandbits(128)))
        data = {"model_name": MODELS[n % len(MODELS)], "model_id": model_id, "slug": ws.slug}
        data |= {"actor_id": str(owner.id), "origin": "https://plane.test"}
        if n % 5 == 0:
            data |= {"requested_data": {"name": f"New {n}"}, "current_instance": None}
            changed = [(None, "created", None, None)]
        else:
            fields = [f"field_{k}" for k in range(1 + n % 3)]
            current = {f: f"old {n}" for f in fields} | {"same": n}
            data |= {"requested_data": {f: f"new {n}" for f in fields} | {"same": n, "unknown": 1}}
            data |= {"current_instance": json.dumps(current)}
            changed = [(f, "updated", f"old {n}", f"new {n}") for f in fields]
        event = new_event("plane.model_activity.v1", data)
        events.append((model_id, event))
        for field, verb, old, new in changed:
            activity_id = str(uuid.uuid5(ACTIVITY_NAMESPACE, f"{event.id}:{field or ''}"))
            expected.append((activity_id, model_id, str(ws.id), verb, field, old, new))

    def effects() -> list[tuple[object, ...]]:
        seen = set()
        for message in read_topic(world.settings, world.settings.topic(ACTIVITY_TOPIC)):
            activity = json.loads(message.value())
            d = activity["data"]
            assert message.key() == d["workspace_id"].encode(), "keyed by workspace id"
            values = (d["verb"], d["field"], d["old_value"], d["new_value"])
            seen.add((activity["id"], d["event_id"], d["workspace_id"], *values))
        return sorted(seen, key=repr)

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected=sorted(expected, key=repr),
        produces=(ACTIVITY_TOPIC,),
        delivery="at_least_once",
    )
