"""Conformance samples for `imports`: per event, a file of our export's JSON in the uploads bucket
imported into a project of its own (so retries that reorder events cannot reorder numbers).

Effects: per project, each issue's (external id, sequence id, name, state, labels, assignees)
and its count of `created` activity rows. A lost event shows as a missing project's issues, a
second import as doubled rows or numbers past 3. IMPORT_BATCH_SIZE=1 makes every import three
transactions, so a kill lands half-way through one.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import new_event
from shared.storage import s3_client
from shared.testing.plane_rows import insert_one, insert_user

EVENT_TYPE = "plane.issue_import.v1"


def target_project(conn: Connection, workspace_id: Any, members: list[Any], identifier: str) -> str:
    """A project with Plane's usual states (Todo the default) and the members given."""
    project = insert_one(
        conn, "projects", name=f"Import {identifier}", identifier=identifier, workspace_id=workspace_id,
        network=2, timezone="UTC",
    )  # fmt: skip
    for n, (name, group, default) in enumerate(
        [("Backlog", "backlog", False), ("Todo", "unstarted", True), ("Done", "completed", False)]
    ):
        insert_one(
            conn, "states", name=name, group=group, default=default, project_id=project,
            workspace_id=workspace_id, color="#000", slug=name.lower(), sequence=15000 * (n + 1),
        )  # fmt: skip
    for member in members:
        insert_one(
            conn, "project_members", project_id=project, workspace_id=workspace_id, member_id=member, role=20,
            is_active=True,
        )  # fmt: skip
    return str(project)


def export_rows(prefix: str) -> list[dict[str, Any]]:
    """Three rows as our export writes them (newest first)."""
    return [
        {
            "identifier": f"{prefix}-{n}",
            "sequence_id": n,
            "name": f"Imported {prefix} {n}",
            "state_name": ("Todo", "Done", "Nowhere")[n - 1],
            "priority": ("high", "none", "urgent")[n - 1],
            "assignees": ["Ada Import", "Nobody Known"] if n == 1 else [],
            "labels": ["bug"] if n != 2 else ["bug", "ui"],
            "created_at": f"2024-03-0{n}T10:00:00Z",
            "updated_at": f"2024-03-0{n}T11:00:00Z",
        }
        for n in (3, 2, 1)
    ]


def cases(world: SampleWorld) -> ConsumerSamples:
    settings = world.settings
    s3 = s3_client(settings)
    with world.engine.begin() as conn:
        ada = insert_user(conn, first_name="Ada", last_name="Import", display_name="ada", is_active=True)
        ws = insert_one(conn, "workspaces", name="Imports", slug=f"im-{uuid.uuid4().hex[:8]}", owner_id=ada)
        # Each event imports a file: a fifth of the suite's size.
        projects = [target_project(conn, ws, [ada], f"I{n}") for n in range(world.scaled(5))]
    events = []
    expected = {}
    for n, project in enumerate(projects):
        key = f"{ws}/imports/sample-{n}.json"
        s3.put_object(
            Bucket=settings.aws_s3_bucket_name, Key=key, Body=json.dumps(export_rows(f"S{n}")).encode()
        )
        data = {
            "kind": "plane_json",
            "workspace_id": str(ws),
            "project_id": project,
            "actor_id": str(ada),
            "key": key,
        }
        events.append((project, new_event(EVENT_TYPE, data)))
        expected[project] = [
            [f"S{n}-1", 1, f"Imported S{n} 1", "Todo", ["bug"], ["Ada"], 1],
            [f"S{n}-2", 2, f"Imported S{n} 2", "Done", ["bug", "ui"], [], 1],
            [f"S{n}-3", 3, f"Imported S{n} 3", "Todo", ["bug"], [], 1],
        ]

    def effects() -> dict[str, list[list[Any]]]:
        seen: dict[str, list[list[Any]]] = {p: [] for p in projects}
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    """
                    SELECT i.project_id::text, i.external_id, i.sequence_id, i.name, s.name,
                           ARRAY(SELECT l.name FROM issue_labels il JOIN labels l ON l.id = il.label_id
                                 WHERE il.issue_id = i.id ORDER BY l.name),
                           ARRAY(SELECT u.first_name FROM issue_assignees a
                                 JOIN users u ON u.id = a.assignee_id
                                 WHERE a.issue_id = i.id ORDER BY u.first_name),
                           (SELECT count(*) FROM issue_activities a
                            WHERE a.issue_id = i.id AND a.verb = 'created')
                    FROM issues i LEFT JOIN states s ON s.id = i.state_id
                    WHERE i.project_id::text = ANY(:p) ORDER BY i.project_id, i.sequence_id, i.id
                    """
                ),
                {"p": projects},
            )
            for project, *values in rows:
                seen[project].append([*values[:4], list(values[4]), list(values[5]), values[6]])
        return seen

    return ConsumerSamples(events=events, effects=effects, expected=expected, env={"IMPORT_BATCH_SIZE": "1"})
