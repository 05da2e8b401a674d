"""The importer on Plane's schema in real PostgreSQL, moto's S3 server and a loopback GitHub.

Round trips go through the export's own code (issue_rows, the JSON and CSV writers): export
project PA, import the file into a new project, export that one, and compare the rows with the
project's name and identifier taken out. GitHub is a real HTTP server on 127.0.0.1 (allowlisted
past the SSRF rules with IMPORT_ALLOWED_IPS), paged with Link headers, refusing once with 403
and a spent rate limit."""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.exports.formats import CsvWriter, JsonWriter
from services.exports.issue_rows import issue_rows
from services.exports.samples import World, seed
from services.imports import run as importer
from services.imports.github import RateLimited, client_for
from services.imports.handler import handle
from services.imports.samples import export_rows, target_project
from shared.embedded.stack import env_for
from shared.events import new_event
from shared.kafka.handler import HandlerContext, PermanentError
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing.plane_rows import insert_one, insert_user
from tests.integration.http_servers import HttpServer, send

TOKEN = "ghp_import_token_never_logged_42"


def export(engine: Engine, world: World, project: str, writer: type) -> bytes:
    out = io.BytesIO()
    w = writer(out)
    for row in issue_rows(engine, world.workspace_id, [project], world.initiator_id, 100):
        w.write(row)
    w.close()
    return out.getvalue()


def new_target(engine: Engine, world: World, identifier: str) -> str:
    """A project with the source's state and estimate values, Ines and Otto members."""
    with engine.begin() as conn:
        project = target_project(
            conn, world.workspace_id, [world.initiator_id, world.outsider_id], identifier
        )
        estimate = insert_one(conn, "estimates", name="Points", type="points", project_id=project,
                              workspace_id=world.workspace_id)  # fmt: skip
        for k in (1, 2, 3):
            insert_one(conn, "estimate_points", key=k, value=str(k), estimate_id=estimate, project_id=project,
                       workspace_id=world.workspace_id)  # fmt: skip
        conn.execute(
            text("UPDATE projects SET estimate_id = :e WHERE id = :p"), {"e": estimate, "p": project}
        )
    return project


def data(world: World, project: str, kind: str, **extra: Any) -> dict[str, Any]:
    base = {
        "kind": kind,
        "workspace_id": world.workspace_id,
        "project_id": project,
        "actor_id": world.initiator_id,
    }
    return base | extra


def normalise(rows: list[dict[str, Any]], identifier: str) -> list[dict[str, Any]]:
    text_rows = json.dumps(rows).replace(f'"{identifier}-', '"X-')
    return [
        {k: v for k, v in r.items() if k not in ("project_name", "project_identifier")}
        for r in json.loads(text_rows)
    ]


def test_json_export_import_export_gives_the_same_rows(engine: Engine, settings: Settings) -> None:
    world = seed(engine, issues_per_project=8, comments_per_issue=2)
    source = export(engine, world, world.projects["A"], JsonWriter)
    target = new_target(engine, world, "PE")
    outcome = importer.run(engine, settings, data(world, target, "plane_json"), body=source)
    assert outcome.status == "done" and outcome.counts["created"] == 8
    again = export(engine, world, target, JsonWriter)
    before, after = normalise(json.loads(source), "PA"), normalise(json.loads(again), "PE")
    assert len(before) == 8 and before[0]["relations"] and before[0]["comments"]
    assert after == before
    # Idempotent: a second run creates nothing, and every issue has one `created` activity.
    second = importer.run(engine, settings, data(world, target, "plane_json"), body=source)
    assert second.counts["created"] == 0 and second.counts["existing"] == 8
    assert export(engine, world, target, JsonWriter) == again
    with engine.connect() as conn:
        activities = conn.execute(
            text(
                "SELECT a.verb, a.field, a.comment, a.actor_id = i.created_by_id, a.created_at = i.created_at"
                " FROM issue_activities a JOIN issues i ON i.id = a.issue_id WHERE i.project_id = :p"
            ),
            {"p": target},
        ).all()
        numbers = conn.execute(
            text("SELECT sequence FROM issue_sequences WHERE project_id = :p ORDER BY 1"), {"p": target}
        ).scalars().all()  # fmt: skip
    assert sorted(activities) == [("created", None, "created the issue", True, True)] * 8
    assert numbers == list(range(1, 9))


def test_csv_export_import_export_gives_the_same_rows(engine: Engine, settings: Settings) -> None:
    world = seed(engine, issues_per_project=8)  # issue 7's name is a formula, guarded in CSV
    source = export(engine, world, world.projects["A"], CsvWriter)
    target = new_target(engine, world, "PF")
    outcome = importer.run(engine, settings, data(world, target, "plane_csv"), body=source)
    assert outcome.counts["created"] == 8
    with engine.connect() as conn:
        names = (
            conn.execute(text("SELECT name FROM issues WHERE project_id = :p"), {"p": target}).scalars().all()
        )
    assert any(n.startswith("=HYPERLINK") for n in names)  # the export's quote is taken off again

    def cells(body: bytes, identifier: str) -> list[list[str]]:
        rows = list(csv.reader(io.StringIO(body.decode().replace(f"{identifier}-", "X-"))))
        return [row[2:] for row in rows]

    assert cells(export(engine, world, target, CsvWriter), "PF") == cells(source, "PA")


def test_unknown_state_and_assignee_map_to_the_default_and_are_counted(
    engine: Engine, settings: Settings
) -> None:
    with engine.begin() as conn:
        ada = insert_user(conn, first_name="Ada", last_name="Import", display_name="ada", is_active=True)
        ws = insert_one(conn, "workspaces", name="W", slug=f"w-{uuid.uuid4().hex[:8]}", owner_id=ada)
        project = target_project(conn, ws, [ada], "IM")
    body = json.dumps(export_rows("S")).encode()
    world = World(str(ws), "w", str(ada), str(ada), {}, 0)
    outcome = importer.run(engine, settings, data(world, project, "plane_json"), body=body)
    assert outcome.counts["created"] == 3
    assert outcome.counts["assignees_dropped"] == 1  # "Nobody Known"
    assert outcome.counts["labels_created"] == 2  # bug, ui: created once each
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.external_id, s.name, i.priority, i.completed_at IS NOT NULL FROM issues i"
                " JOIN states s ON s.id = i.state_id WHERE i.project_id = :p ORDER BY i.sequence_id"
            ),
            {"p": project},
        ).all()
    assert rows == [
        ("S-1", "Todo", "high", False),
        ("S-2", "Done", "none", True),
        ("S-3", "Todo", "urgent", False),
    ]


def test_a_malformed_file_is_dead_lettered_and_refused_by_the_cli(
    engine: Engine, s3_settings: Settings, tmp_path: Any
) -> None:
    with engine.begin() as conn:
        ada = insert_user(conn, first_name="Ada", last_name="Import", is_active=True)
        ws = insert_one(conn, "workspaces", name="W", slug=f"w-{uuid.uuid4().hex[:8]}", owner_id=ada)
        project = target_project(conn, ws, [ada], "BAD")
    key = f"{ws}/imports/broken.json"
    s3_client(s3_settings).put_object(
        Bucket=s3_settings.aws_s3_bucket_name, Key=key, Body=b'[{"identifier": '
    )
    event = new_event("plane.issue_import.v1", {"kind": "plane_json", "workspace_id": str(ws),
                      "project_id": project, "actor_id": str(ada), "key": key})  # fmt: skip
    ctx = HandlerContext("imports", s3_settings, None, None)  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="not JSON"):
        handle(event, ctx)
    outside = new_event("plane.issue_import.v1", {**event.data, "key": "other-workspace/x.json"})
    with pytest.raises(PermanentError, match="prefix"):
        handle(outside, ctx)
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"[1, 2]")
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "import", str(broken), "--project", project],
        env=env_for(s3_settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "a row is not an object" in result.stderr
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM issues WHERE project_id = :p"), {"p": project}) == 0


def gh_issue(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": 9000 + n, "number": n, "title": f"GitHub issue {n}", "body": f"Line one <b>{n}</b>\n\nSecond",
        "state": "open", "labels": [{"name": "bug", "color": "d73a4a"}], "assignees": [{"login": "ada"}],
        "user": {"login": "ada"}, "created_at": f"2024-05-0{n}T08:00:00Z",
        "updated_at": f"2024-05-0{n}T09:00:00Z",
        "html_url": f"https://github.com/o/r/issues/{n}", **extra,
    }  # fmt: skip


def test_github_import_pages_waits_out_a_rate_limit_and_skips_pull_requests(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = HttpServer()
    refused = []

    def issues(h: Any) -> None:
        page = "page=2" in h.path
        if page and not refused:
            refused.append(h.path)
            reset = str(int(time.time()) + 1)
            send(h, 403, b'{"message": "API rate limit exceeded"}',
                 {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})  # fmt: skip
            return
        if not page:
            body = [gh_issue(1), gh_issue(2, pull_request={"url": "x"}), gh_issue(3)]
            link = {"Link": f'<{server.url("/repos/o/r/issues")}?state=all&page=2>; rel="next"'}
        else:
            closed = {"state": "closed", "closed_at": "2024-05-09T10:00:00Z", "assignees": [{"login": "zed"}]}
            body, link = [gh_issue(4, **closed), gh_issue(5)], {}
        send(h, 200, json.dumps(body).encode(), {"Content-Type": "application/json", **link})

    server.routes["/repos/o/r/issues"] = issues
    gh_settings = replace(
        settings, github_api_url=server.url(""), import_allowed_ips=("127.0.0.1/32",), github_token=TOKEN,
        import_github_max_wait_s=5.0,
    )  # fmt: skip
    with engine.begin() as conn:
        ada = insert_user(conn, first_name="Ada", last_name="L", display_name="ada", is_active=True)
        ws = insert_one(conn, "workspaces", name="G", slug=f"g-{uuid.uuid4().hex[:8]}", owner_id=ada)
        project = target_project(conn, ws, [ada], "GH")
    world = World(str(ws), "g", str(ada), str(ada), {}, 0)
    event = data(world, project, "github", repository="o/r")
    try:
        with client_for(gh_settings) as client:
            outcome = importer.run(engine, gh_settings, event, client=client)
            assert outcome.status == "done"
            assert outcome.counts["created"] == 4 and outcome.counts["pages"] == 2
            assert outcome.counts["pull_requests_skipped"] == 1 and outcome.counts["assignees_dropped"] == 1
            assert [r.path.split("?")[1].count("page=2") for r in server.requests] == [0, 1, 1]
            assert {r.headers.get("Authorization") for r in server.requests} == {f"Bearer {TOKEN}"}
            again = importer.run(engine, gh_settings, event, client=client)
            assert again.counts["created"] == 0 and again.counts["existing"] == 4
            # A limit that resets in an hour is not slept through: the retry tiers wait.
            server.routes["/repos/o/r/issues"] = lambda h: send(
                h, 429, b"", {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)}
            )
            with pytest.raises(RateLimited) as limited:
                importer.run(engine, gh_settings, event, client=client)
            assert TOKEN not in str(limited.value) and TOKEN not in caplog.text
    finally:
        server.close()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.external_id, s.name, i.completed_at IS NOT NULL, i.description_html, l.color,"
                " (SELECT count(*) FROM issue_assignees a WHERE a.issue_id = i.id)"
                " FROM issues i JOIN states s ON s.id = i.state_id"
                " JOIN issue_labels il ON il.issue_id = i.id JOIN labels l ON l.id = il.label_id"
                " WHERE i.project_id = :p AND i.external_source = 'github' ORDER BY i.sequence_id"
            ),
            {"p": project},
        ).all()
    assert [r[0] for r in rows] == ["9001", "9003", "9004", "9005"]
    assert rows[2][1:3] == ("Done", True) and rows[0][1:3] == ("Todo", False)
    assert rows[0][3] == "<p>Line one &lt;b&gt;1&lt;/b&gt;</p><p>Second</p>"
    assert {r[4] for r in rows} == {"#d73a4a"} and [r[5] for r in rows] == [1, 1, 0, 1]


def test_a_long_import_hands_itself_on_and_the_cli_resolves_slug_and_identifier(
    engine: Engine, s3_settings: Settings, tmp_path: Any
) -> None:
    """Each handler call does one batch (a budget of about nothing) and sends a continuation with
    its cursor; following them to the end imports every row once. Then the CLI, by SLUG/IDENT."""
    from shared.events import parse_event
    from shared.events.producer import EventProducer
    from shared.testing.topics import read_topic

    settings = replace(s3_settings, import_batch_size=2, kafka_max_poll_interval_ms=1)
    slug = f"w-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        ada = insert_user(conn, first_name="Ada", last_name="Import", display_name="ada", is_active=True)
        ws = insert_one(conn, "workspaces", name="W", slug=slug, owner_id=ada)
        project = target_project(conn, ws, [ada], "LONG")
    rows = [{**export_rows("L")[0], "identifier": f"L-{n}", "name": f"Long {n}",
             "created_at": f"2024-03-01T10:00:{n:02d}Z"} for n in range(5)]  # fmt: skip
    key = f"{ws}/imports/long.json"
    s3_client(settings).put_object(
        Bucket=settings.aws_s3_bucket_name, Key=key, Body=json.dumps(rows).encode()
    )
    event = new_event("plane.issue_import.v1", {"kind": "plane_json", "workspace_id": str(ws),
                      "project_id": project, "actor_id": str(ada), "key": key})  # fmt: skip
    producer = EventProducer(settings)
    ctx = HandlerContext("imports", settings, producer, None)
    cursors = []
    for _ in range(10):
        handle(event, ctx)
        sent = [
            parse_event(m.value(), max_bytes=10**6)
            for m in read_topic(s3_settings, settings.topic("imports"))
        ]
        if not sent or sent[-1].id == event.id:
            break
        event = sent[-1]
        cursors.append(event.data["cursor"])
    # 5 rows in batches of 2 (issues 0-1, 2-3, 4), then the relations pass (3 batches again).
    assert cursors == [{"phase": "issues", "start": 2}, {"phase": "issues", "start": 4},
                       {"phase": "relations", "start": 0}, {"phase": "relations", "start": 2},
                       {"phase": "relations", "start": 4}]  # fmt: skip
    with engine.connect() as conn:
        numbers = conn.execute(
            text("SELECT external_id, sequence_id FROM issues WHERE project_id = :p ORDER BY 2"),
            {"p": project},
        ).all()
    assert numbers == [(f"L-{n}", n + 1) for n in range(5)]
    file = tmp_path / "more.json"
    file.write_text(json.dumps([*rows, {**rows[0], "identifier": "L-9", "name": "Late"}]))
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "import", str(file), "--project", f"{slug}/long"],
        env=env_for(s3_settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["created"] == 1 and counts["existing"] == 5
