"""Conformance samples for `analytics-events`: recent visits of three users and track events,
captured by the world's receiver standing in for PostHog.

Visits go to distinct entities (every fifth revisits the user's first one), so a user past 20
shows the cap; events carry increasing times, which are the visits' times. Effects: each user's
live visits, the number of rows ever inserted (a duplicate insert shows), and the captures the
receiver got under this case's path, deduplicated by `uuid` (PostHog's own idempotency key).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import Event, new_event
from shared.testing import plane_factory as make

KEEP = 20


def cases(world: SampleWorld) -> ConsumerSamples:
    users, (issue,) = make.project_with_issues(world.engine, 1, n_users=3)
    with world.engine.connect() as conn:
        slug = conn.scalar(text("SELECT slug FROM workspaces WHERE id = :w"), {"w": issue.workspace_id})
    owner = str(users[0].id)
    tag = uuid.uuid4().hex[:8]
    start = datetime.now(UTC) - timedelta(hours=1)
    events: list[tuple[str | None, Event]] = []
    live: dict[str, list[str]] = {str(u.id): [] for u in users}
    first: dict[str, str] = {}
    inserted = 0
    captures = []
    for n in range(world.size):
        user = str(users[n % 3].id)
        if n % 4 == 3:
            name = "workspace_deleted" if n % 8 == 7 else "user_joined_workspace"
            props = {"workspace_slug": slug, "n": n, "role": "owner"}
            event = new_event(
                "plane.track_event.v1",
                {"user_id": user, "event_name": name, "slug": slug, "event_properties": props},
            )
            role = ("owner" if user == owner else "admin") if name == "workspace_deleted" else "owner"
            captures.append((event.id, name, user, role, n))
        else:
            entity = first.get(user) if n % 5 == 0 and user in first else str(uuid.uuid4())
            first.setdefault(user, entity)
            event = new_event(
                "plane.recent_visit.v1",
                {
                    "entity_name": "issue",
                    "entity_identifier": entity,
                    "user_id": user,
                    "project_id": str(issue.project_id),
                    "slug": slug,
                },
            )
            if entity not in live[user]:
                if len(live[user]) >= KEEP:
                    live[user].pop(0)
                live[user].append(entity)
                inserted += 1
        events.append((user, replace(event, time=(start + timedelta(milliseconds=n)).isoformat())))

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT user_id::text, entity_identifier::text, deleted_at IS NULL AS alive"
                    " FROM user_recent_visits WHERE workspace_id = :w"
                ),
                {"w": issue.workspace_id},
            ).all()
        seen: dict[str, tuple[str, str, str, int]] = {}
        for request in world.receiver.requests():
            if request.path != f"/{tag}/batch/":
                continue
            for msg in json.loads(request.body)["batch"]:
                props = msg["properties"]
                seen[msg["uuid"]] = (msg["event"], msg["distinct_id"], props["role"], props["n"])
        return {
            "live": {u: sorted(e for user, e, alive in rows if alive and user == u) for u in live},
            "rows": len(rows),
            "captures": sorted((k, *v) for k, v in seen.items()),
        }

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={
            "live": {u: sorted(entities) for u, entities in live.items()},
            "rows": inserted,
            "captures": sorted(captures),
        },
        delivery="at_least_once",
        env={
            "POSTHOG_API_KEY": "phc_conformance",
            "POSTHOG_HOST": world.receiver.url(f"/{tag}"),
            "POSTHOG_ALLOWED_IPS": "127.0.0.1/32",
        },
    )
