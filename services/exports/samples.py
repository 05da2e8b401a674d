"""Seeded exports for the conformance suite, the tests and the benchmark, and the samples.

`seed` builds one workspace in Plane's tables, set-based (INSERT ... SELECT), so 100,000 issues
take seconds: an initiator who is an active member of projects A and B and of an archived project
C, and not of D; per project a state, an estimate, labels, cycles and modules; issues with
assignees, subscribers, labels, a cycle, a module, links, relations and comments. Every seventh
issue's name starts with a formula (`=HYPERLINK(...)`), every eleventh comment with `@SUM(...)`.

The conformance samples are issue exports (csv, json, xlsx; single file and `multiple`) of a small
world, every fifth an analytics export. Effects: each token's exporters row (status, key) and
its object in S3 (the zip's file names and row counts), and the analytics mails produced to the
emails topic, by id (a redelivery produces the same id, which the emails consumer sends once).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import Event, new_event
from shared.storage import s3_client
from shared.testing.plane_rows import insert_many, insert_one, insert_select, insert_user
from shared.testing.topics import read_topic

DANGEROUS_NAME = '=HYPERLINK("https://evil.example","x")'
DANGEROUS_COMMENT = "@SUM(1+1)*cmd|' /C calc'!A0"


@dataclass(frozen=True)
class World:
    workspace_id: str
    slug: str
    initiator_id: str
    outsider_id: str
    projects: dict[str, str]  # "A", "B" (member), "C" (archived, member), "D" (not a member)
    issues_per_project: int


def seed(engine: Engine, issues_per_project: int, comments_per_issue: int = 1) -> World:
    with engine.begin() as conn:
        initiator = insert_user(conn, first_name="Ines", last_name="Export", is_active=True)
        outsider = insert_user(conn, first_name="Otto", last_name="Outside", is_active=True)
        slug = f"ex-{uuid.uuid4().hex[:8]}"
        ws = insert_one(conn, "workspaces", name="Exports", slug=slug, owner_id=initiator)
        projects = {}
        for letter in "ABCD":
            archived = datetime.now(UTC) if letter == "C" else None
            projects[letter] = str(
                insert_one(
                    conn,
                    "projects",
                    name=f"Project {letter}",
                    identifier=f"P{letter}",
                    workspace_id=ws,
                    archived_at=archived,
                    network=2,
                    timezone="UTC",
                )
            )
            if letter != "D":
                insert_one(
                    conn,
                    "project_members",
                    project_id=projects[letter],
                    workspace_id=ws,
                    member_id=initiator,
                    role=20,
                    is_active=True,
                )
            _project_rows(
                conn,
                ws,
                projects[letter],
                letter,
                initiator,
                outsider,
                issues_per_project,
                comments_per_issue,
            )
        conn.execute(text("ANALYZE issues"))
    return World(str(ws), slug, str(initiator), str(outsider), projects, issues_per_project)


def _project_rows(
    conn: Connection, ws: Any, project: str, letter: str, user: Any, other: Any, n: int, comments: int
) -> None:
    p = {"ws": str(ws), "project": project, "user": str(user), "other": str(other), "letter": letter}
    ids = "CAST(:ws AS uuid)", "CAST(:project AS uuid)"
    common = {"workspace_id": ids[0], "project_id": ids[1]}
    state = insert_one(
        conn,
        "states",
        name="Todo",
        group="unstarted",
        project_id=project,
        workspace_id=ws,
        color="#000",
        slug="todo",
        sequence=1,
    )
    estimate = insert_one(
        conn, "estimates", name="Points", type="points", project_id=project, workspace_id=ws
    )
    points = [
        insert_one(
            conn,
            "estimate_points",
            key=k,
            value=str(k),
            estimate_id=estimate,
            project_id=project,
            workspace_id=ws,
        )
        for k in (1, 2, 3)
    ]
    for kind, extra in (
        ("labels", {"color": "'#fff'"}),
        ("cycles", {"owned_by_id": "CAST(:user AS uuid)"}),
        ("modules", {"status": "'backlog'"}),
    ):
        insert_many(conn, kind, 3, {"name": f"'{kind[:-1]} ' || g", **common, **extra}, p)
    p |= {"state": str(state), "points": [str(x) for x in points]}
    insert_many(
        conn,
        "issues",
        n,
        {
            "name": f"CASE WHEN g % 7 = 0 THEN '{DANGEROUS_NAME.replace(chr(39), chr(39) * 2)}' "
            "ELSE 'Issue ' || :letter || '-' || g END",
            "sequence_id": "g",
            "priority": "(ARRAY['urgent','high','medium','low','none'])[1 + g % 5]",
            "state_id": "CAST(:state AS uuid)",
            "estimate_point_id": "CAST((:points)[1 + g % 3] AS uuid)",
            "created_by_id": "CAST(:user AS uuid)",
            "start_date": "DATE '2024-01-01' + (g % 30)",
            "created_at": "TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 second'",
            "updated_at": "TIMESTAMPTZ '2024-02-01 00:00:00+00' + g * INTERVAL '1 second'",
            "description_json": "'{}'::jsonb",
            "description_html": "'<p></p>'",
            "sort_order": "g",
            **common,
        },
        p,
    )
    mine = "issues i WHERE i.project_id = CAST(:project AS uuid)"
    link = {**common, "issue_id": "i.id", "created_at": "i.created_at", "updated_at": "i.created_at"}
    insert_select(conn, "issue_assignees", link | {"assignee_id": "CAST(:user AS uuid)"}, mine, p)
    insert_select(conn, "issue_subscribers", link | {"subscriber_id": "CAST(:other AS uuid)"}, mine, p)
    for kind, column in (("labels", "label_id"), ("cycles", "cycle_id"), ("modules", "module_id")):
        table = {"labels": "issue_labels", "cycles": "cycle_issues", "modules": "module_issues"}[kind]
        pick = (
            f"(SELECT id FROM {kind} WHERE project_id = i.project_id"
            " ORDER BY name LIMIT 1 OFFSET i.sequence_id % 3)"
        )
        insert_select(conn, table, link | {column: pick}, mine, p)
    insert_select(
        conn,
        "issue_links",
        link
        | {
            "url": "'https://example.com/' || i.sequence_id",
            "title": "'Link ' || i.sequence_id",
            "metadata": "'{}'",
        },
        mine,
        p,
    )
    # Issue n is blocked by issue n + 1 (a join, not a subquery per row: the seed stays linear).
    following = (
        "issues i JOIN issues o ON o.project_id = i.project_id AND o.sequence_id = i.sequence_id + 1"
        " WHERE i.project_id = CAST(:project AS uuid)"
    )
    relation = {"relation_type": "'blocked_by'", "related_issue_id": "o.id"}
    insert_select(conn, "issue_relations", link | relation, following, p)
    for c in range(comments):
        text_sql = (
            f"CASE WHEN i.sequence_id % 11 = 0 THEN '{DANGEROUS_COMMENT.replace(chr(39), chr(39) * 2)}' "
            f"ELSE 'Comment {c} on ' || i.sequence_id END"
        )
        insert_select(
            conn,
            "issue_comments",
            link
            | {
                "comment_stripped": text_sql,
                "comment_html": "'<p></p>'",
                "actor_id": "CAST(:user AS uuid)",
                "access": "'INTERNAL'",
                "created_at": f"i.created_at + INTERVAL '{c} minute'",
            },
            mine,
            p,
        )


def exporter(engine: Engine, world: World, provider: str, projects: list[str]) -> str:
    """An exporters row as Plane's ExportIssuesEndpoint creates it (status queued); its token."""
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        insert_one(
            conn,
            "exporters",
            workspace_id=world.workspace_id,
            project=projects,
            provider=provider,
            status="queued",
            token=token,
            initiated_by_id=world.initiator_id,
            type="issue_exports",
            reason="",
            key="",
        )
    return token


def export_event(world: World, provider: str, token: str, projects: list[str], multiple: bool) -> Event:
    data = {
        "provider": provider,
        "workspace_id": world.workspace_id,
        "project_ids": projects,
        "token_id": token,
        "multiple": multiple,
        "slug": world.slug,
    }
    return new_event("plane.issue_export.v1", data)


def zip_summary(body: bytes) -> list[tuple[str, int]]:
    """(file name, rows) of each file in an export zip (rows: data rows, header not counted)."""
    summary = []
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        for name in archive.namelist():
            content = archive.read(name)
            if name.endswith(".json"):
                rows = len(json.loads(content))
            elif name.endswith(".csv"):
                rows = max(0, len(content.decode().splitlines()) - 1)  # one line per row in these samples
            else:
                import openpyxl

                sheet = openpyxl.load_workbook(io.BytesIO(content), read_only=True).active
                rows = max(0, (sheet.max_row or 0) - 1) if sheet.max_row and sheet.max_column else 0
            summary.append((name, rows))
    return summary


def cases(world: SampleWorld) -> ConsumerSamples:
    seeded = seed(world.engine, issues_per_project=3)
    providers = ("csv", "json", "xlsx")
    members = [seeded.projects["A"], seeded.projects["B"]]
    asked = [*members, seeded.projects["C"], seeded.projects["D"]]
    events: list[tuple[str | None, Event]] = []
    expected_exports: dict[str, tuple[str, list[tuple[str, int]]]] = {}
    expected_mails = []
    # Each event writes a file to S3 (and every fifth sends a mail): a fifth as many.
    for n in range(world.scaled(5)):
        if n % 5 == 4:
            data = {"x_axis": "priority", "y_axis": "issue_count", "project": members}
            event = new_event(
                "plane.analytics_export.v1",
                {"email": f"ines{n}@example.com", "data": data, "slug": seeded.slug},
            )
            events.append((seeded.workspace_id, event))
            from services.exports.analytics import MAIL_NAMESPACE

            expected_mails.append((str(uuid.uuid5(MAIL_NAMESPACE, event.id)), f"ines{n}@example.com"))
            continue
        provider, multiple = providers[n % 3], n % 2 == 0
        token = exporter(world.engine, seeded, provider, asked)
        events.append((seeded.workspace_id, export_event(seeded, provider, token, asked, multiple)))
        per = seeded.issues_per_project
        if multiple:
            files = [(f"{seeded.slug}-{p}.{provider}", per if p in members else 0) for p in asked]
        else:
            files = [(f"{seeded.slug}-{seeded.workspace_id}.{provider}", per * len(members))]
        expected_exports[token] = ("completed", files)

    settings = world.settings

    def effects() -> dict[str, object]:
        s3 = s3_client(settings)
        bucket = settings.aws_s3_bucket_name
        with world.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT token, status, key FROM exporters WHERE workspace_id = CAST(:ws AS uuid)"),
                {"ws": seeded.workspace_id},
            ).all()
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{seeded.workspace_id}/").get("Contents", [])
        objects = {o["Key"] for o in listed}
        exports = {}
        for token, status, key in rows:
            if status != "completed":
                exports[token] = (status, [])
                continue
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            exports[token] = (status, zip_summary(body))
        mails = set()
        for message in read_topic(settings, settings.topic("emails")):
            mail = json.loads(message.value())
            if mail["data"].get("slug") == seeded.slug:
                mails.add((mail["id"], mail["data"]["email"]))
        return {"exports": exports, "objects": len(objects), "mails": sorted(mails)}

    return ConsumerSamples(
        events=events,
        effects=effects,
        expected={
            "exports": expected_exports,
            "objects": len(expected_exports),
            "mails": sorted(expected_mails),
        },
        delivery="at_least_once",
        produces=("emails",),
    )
