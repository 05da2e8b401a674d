"""Conformance samples for issue-activity: creates and field updates over a handful of issues.

The rows are exactly-once (their ids derive from the event id); the notifications and embed
events it hands on are at-least-once toward their consumers (a batch run again sends them again
with the same ids), so they are read deduplicated by id: a repeat with another id, or a lost one,
still shows.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.issue_activity.handler import EMBEDDINGS_TOPIC, NOTIFICATIONS_TOPIC
from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import Event, new_event
from shared.testing import plane_factory as make
from shared.testing.topics import read_topic

ISSUES = 8
EPOCH = 1764547200


def cases(world: SampleWorld) -> ConsumerSamples:
    """`world.size` events over ISSUES issues: each issue's first event a rename, then changes of
    priority, target date and name, every third asking for notifications."""
    with Session(world.engine, expire_on_commit=False) as session, session.begin():
        actor = make.user(0)
        ws = make.workspace(actor, slug=f"ws-{uuid.uuid4().hex[:8]}")
        project = make.project(ws)
        issues = [make.issue(project, n + 1, name=f"Issue {n}") for n in range(ISSUES)]
        session.add_all([actor, ws, project, *issues])
    events: list[tuple[str | None, Event]] = []
    for n in range(world.size):
        issue = issues[n % ISSUES]
        field, old, new = [
            ("name", f"Issue {n % ISSUES}", f"Issue {n % ISSUES} v{n}"),
            ("priority", "none", ["low", "medium", "high", "urgent"][n % 4]),
            ("target_date", None, f"2027-01-{1 + n % 28:02d}"),
        ][(n // ISSUES) % 3]
        data = {
            "type": "issue.activity.updated",
            "requested_data": json.dumps({field: new}),
            "current_instance": json.dumps({field: old}),
            "issue_id": str(issue.id),
            "actor_id": str(actor.id),
            "project_id": str(project.id),
            "epoch": EPOCH + n,
            "subscriber": False,
            "notification": n % 3 == 0,
            "origin": "https://plane.example",
        }
        events.append((str(issue.id), new_event("plane.issue_activity.v1", data)))

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT issue_id::text, field, old_value, new_value, epoch FROM issue_activities"
                    " WHERE project_id = :p ORDER BY epoch, field"
                ),
                {"p": project.id},
            ).all()
            origins = conn.execute(
                text(
                    "SELECT count(*) FROM plane_workers.issue_origins WHERE origin = 'https://plane.example'"
                )
            ).scalar()
        handed_on = {
            topic: len(
                {json.loads(m.value())["id"] for m in read_topic(world.settings, world.settings.topic(topic))}
            )
            for topic in (NOTIFICATIONS_TOPIC, EMBEDDINGS_TOPIC)
        }
        return {"rows": [tuple(r) for r in rows], "origins": origins, "handed_on": handed_on}

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected=_expected(events, min(world.size, ISSUES)),
        produces=(NOTIFICATIONS_TOPIC, EMBEDDINGS_TOPIC),
    )


def _expected(events: list[tuple[str | None, Event]], issues: int) -> dict[str, object]:
    rows = []
    for _, event in events:
        data = event.data
        ((field, new),) = json.loads(data["requested_data"]).items()
        ((_, old),) = json.loads(data["current_instance"]).items()
        # Plane writes a date set from nothing with old_value "" (str of its empty tracker value).
        rows.append((data["issue_id"], field, "" if old is None else old, new, data["epoch"]))
    rows.sort(key=lambda r: (r[4], r[1]))
    notified = sum(1 for _, e in events if e.data["notification"])
    renamed = sum(1 for _, e in events if "name" in json.loads(e.data["requested_data"]))
    return {
        "rows": rows,
        "origins": issues,
        "handed_on": {NOTIFICATIONS_TOPIC: notified, EMBEDDINGS_TOPIC: renamed},
    }
