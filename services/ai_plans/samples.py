"""Conformance samples for `ai-plans`: every workspace is set to pro, every third then to free.

Effects: each workspace's recorded plan and live-sync flag, its vectorisation jobs by status, and
the purge requests on the embeddings topic, read deduplicated by event id (sent before the commit:
a crash in between sends one again under the same id). A second processing of an event cannot
hide: an upgrade queues a job only once (the partial unique index), and a replayed pro event
after the free one is older and changes nothing. A free workspace shows no active job whichever
of its two events came first (the poison case reorders them): queued then cancelled, or never
queued.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.embeddings import live_sync
from shared.events import new_event, parse_event
from shared.testing.topics import read_topic

EVENT_TYPE = "plane.workspace_plan.v1"


def cases(world: SampleWorld) -> ConsumerSamples:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    events, plans, purged = [], [], []
    for n in range(world.size):
        ws = str(uuid.UUID(int=world.rng.getrandbits(128), version=4))
        pro = {"workspace_id": ws, "plan": "pro", "changed_at": base.isoformat()}
        events.append((ws, new_event(EVENT_TYPE, pro)))
        final = "pro"
        if n % 3 == 0:
            later = (base + timedelta(days=1)).isoformat()
            events.append(
                (ws, new_event(EVENT_TYPE, {"workspace_id": ws, "plan": "free", "changed_at": later}))
            )
            final = "free"
            purged.append(ws)
        plans.append((ws, final, "event", final != "free", None if final == "free" else "queued"))

    def effects() -> dict[str, list[object]]:
        query = text(
            """
            SELECT s.workspace_id::text, s.plan, s.plan_source, s.live_sync_enabled,
                   (SELECT string_agg(status, ',' ORDER BY status) FROM plane_workers.vectorization_jobs j
                    WHERE j.workspace_id = s.workspace_id AND j.status <> 'failed')
            FROM plane_workers.workspace_ai_settings s
            """
        )
        with world.engine.connect() as conn:
            rows = sorted(tuple(r) for r in conn.execute(query))
        requests = set()
        for message in read_topic(world.settings, world.settings.topic(live_sync.TOPIC)):
            event = parse_event(message.value(), max_bytes=world.settings.event_max_bytes)
            requests.add((event.id, event.data["entity_type"], event.data["entity_id"]))
        return {"plans": rows, "purges": sorted((t, i) for _, t, i in requests), "purge_ids": len(requests)}

    expected = {
        "plans": sorted(plans),
        "purges": sorted(("workspace", ws) for ws in purged),
        "purge_ids": len(purged),
    }
    return ConsumerSamples(events=events, effects=effects, expected=expected, produces=(live_sync.TOPIC,))
