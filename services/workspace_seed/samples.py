"""Conformance samples for `workspace-seed`: one new workspace per event, each seeded exactly once.

Effects: per workspace, the row count of every table the seed writes and the work items' numbers.
A lost event shows as zero rows, a second seeding as doubled counts or numbers 8..14.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import new_event
from shared.testing import plane_factory as make

EVENT_TYPE = "plane.workspace_seed.v1"
# What one seeding writes for a workspace without members of its own (the bot is the only one).
PER_WORKSPACE = {
    "workspace_members": 1,
    "projects": 1,
    "project_members": 1,
    "project_user_properties": 1,
    "states": 5,
    "labels": 2,
    "cycles": 2,
    "modules": 3,
    "issues": 7,
    "issue_sequences": 7,
    "issue_activities": 7,
    "issue_labels": 3,
    "cycle_issues": 7,
    "module_issues": 11,
    "issue_views": 1,
    "pages": 2,
    "project_pages": 2,
}


def cases(world: SampleWorld) -> ConsumerSamples:
    with Session(world.engine) as session, session.begin():
        owner = make.user(0)
        session.add(owner)
        session.flush()
        # Each event seeds a workspace (~60 rows): a fifth of the suite's size.
        n = world.scaled(5)
        workspaces = [make.workspace(owner, slug=f"seed-{uuid.uuid4().hex[:10]}") for _ in range(n)]
        session.add_all(workspaces)
        ids = [str(ws.id) for ws in workspaces]
    events = [(wid, new_event(EVENT_TYPE, {"workspace_id": wid})) for wid in ids]
    expected = {wid: (PER_WORKSPACE, list(range(1, 8))) for wid in ids}

    def effects() -> dict[str, tuple[dict[str, int], list[int]]]:
        seen: dict[str, tuple[dict[str, int], list[int]]] = {
            wid: ({t: 0 for t in PER_WORKSPACE}, []) for wid in ids
        }
        with world.engine.connect() as conn:
            for table in PER_WORKSPACE:
                rows = conn.execute(
                    text(
                        f"SELECT workspace_id::text, count(*) FROM {table} "
                        "WHERE workspace_id::text = ANY(:w) GROUP BY 1"
                    ),
                    {"w": ids},
                )
                for wid, n in rows:
                    seen[wid][0][table] = n
            numbers = conn.execute(
                text(
                    "SELECT workspace_id::text, sequence_id FROM issues "
                    "WHERE workspace_id::text = ANY(:w) ORDER BY 2"
                ),
                {"w": ids},
            )
            for wid, n in numbers:
                seen[wid][1].append(n)
        return seen

    return ConsumerSamples(events=events, effects=effects, expected=expected)
