"""The `exports` consumer against real servers: Plane's schema in PostgreSQL, the moto S3 server
over HTTP, the embedded broker and an SMTP capture.

Issue exports are run through `issue_export.run` (the handler's work) where the test is about
their content, and through the consumer process where it is about delivery (kills, R15)."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openpyxl
import pytest
import requests
from sqlalchemy import Engine, text

from services.exports import analytics, issue_export
from services.exports.samples import DANGEROUS_COMMENT, DANGEROUS_NAME, World, export_event, exporter, seed
from shared import registry
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, spawn_consumer, stop_processes, wait_until

PLANE_COLUMNS = [
    "project_name", "project_identifier", "parent", "identifier", "sequence_id", "name", "state_name",
    "priority", "assignees", "subscribers", "created_by_name", "start_date", "target_date",
    "completed_at", "created_at", "updated_at", "archived_at", "estimate", "labels", "cycles",
    "modules", "links", "relations", "comments", "is_draft",
]  # fmt: skip
EXPORTS = registry.consumer("exports")


def no_stop() -> None:
    return None


def run(engine: Engine, settings: Settings, world: World, provider: str, multiple: bool = False,
        projects: list[str] | None = None) -> tuple[str, dict[str, bytes], Any]:  # fmt: skip
    """Export the world's projects A-D; the token, the zip's files and the exporters row."""
    asked = projects or list(world.projects.values())
    token = exporter(engine, world, provider, asked)
    data = export_event(world, provider, token, asked, multiple).data
    assert issue_export.run(engine, settings, data, no_stop) == "completed"
    row = exporter_row(engine, token)
    body = s3_client(settings).get_object(Bucket=settings.aws_s3_bucket_name, Key=row.key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return token, files, row


def exporter_row(engine: Engine, token: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT status, key, url, reason, created_at FROM exporters WHERE token = :t"), {"t": token}
        ).one()


@pytest.fixture
def world(engine: Engine) -> World:
    return seed(engine, issues_per_project=15, comments_per_issue=2)


def test_csv_has_plane_s_columns_values_and_selection(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    token, files, row = run(engine, s3_settings, world, "csv")
    assert row.status == "completed"
    assert row.key == f"{world.workspace_id}/export-{world.slug}-{token[:6]}-{row.created_at.date()}.zip"
    assert list(files) == [f"{world.slug}-{world.workspace_id}.csv"]
    reader = list(csv.reader(io.StringIO(next(iter(files.values())).decode())))
    assert reader[0] == [c.replace("_", " ").title() for c in PLANE_COLUMNS]
    rows = [dict(zip(PLANE_COLUMNS, r, strict=True)) for r in reader[1:]]
    # Projects A and B only: C is archived, the initiator is no member of D.
    assert sorted({r["project_identifier"] for r in rows}) == ["PA", "PB"]
    assert len(rows) == 30
    # Newest first (Plane's -created_at), so issue 15 of each project leads.
    assert [r["sequence_id"] for r in rows[:2]] == ["15", "15"]
    second = next(r for r in rows if r["identifier"] == "PA-2")
    assert second["parent"] == "" and second["state_name"] == "Todo" and second["priority"] == "medium"
    assert json.loads(second["assignees"]) == ["Ines Export"]
    assert json.loads(second["subscribers"]) == ["Otto Outside"]
    assert second["created_by_name"] == "Ines Export" and second["estimate"] == "3"
    assert second["start_date"] == "2024-01-03" and second["target_date"] == ""
    assert second["created_at"] == "2024-01-01T00:00:02Z" and second["completed_at"] == ""
    assert json.loads(second["labels"]) == ["label 3"]
    assert json.loads(second["links"]) == [{"url": "https://example.com/2", "title": "Link 2"}]
    assert json.loads(second["relations"]) == [
        {"type": "blocked_by", "issue": "PA-3", "direction": "outgoing"},
        {"type": "blocked_by", "issue": "PA-1", "direction": "incoming"},
    ]
    comments = json.loads(second["comments"])
    assert [c["comment"] for c in comments] == ["Comment 0 on 2", "Comment 1 on 2"]
    assert comments[0] == {"comment": "Comment 0 on 2", "created_by": "Ines Export",
                           "created_at": "2024-01-01 00:00:02"}  # fmt: skip
    assert second["is_draft"] == "False"
    # R23: formulas neutralised with a leading quote, as Plane's CSV does.
    seventh = next(r for r in rows if r["identifier"] == "PA-7")
    assert seventh["name"] == "'" + DANGEROUS_NAME


def test_json_is_plane_s_dump_and_unchanged(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    _token, files, _row = run(engine, s3_settings, world, "json")
    content = next(iter(files.values())).decode()
    rows = json.loads(content)
    assert content == json.dumps(rows, indent=2, default=str), "byte for byte Plane's json.dumps"
    assert list(rows[0]) == PLANE_COLUMNS
    assert rows[0]["sequence_id"] == 15 and rows[0]["is_draft"] is False and rows[0]["archived_at"] is None
    seventh = next(r for r in rows if r["identifier"] == "PA-7")
    assert seventh["name"] == DANGEROUS_NAME, "JSON is not a spreadsheet: unchanged"
    eleventh = next(r for r in rows if r["identifier"] == "PB-11")
    assert eleventh["comments"][0]["comment"] == DANGEROUS_COMMENT


def test_xlsx_cells_are_strings_never_formulas(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    _token, files, _row = run(engine, s3_settings, world, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(next(iter(files.values())))).active
    table = list(sheet.iter_rows())
    assert [c.value for c in table[0]] == [c.replace("_", " ").title() for c in PLANE_COLUMNS]
    assert len(table) == 31
    dangerous = [c for r in table[1:] for c in r if isinstance(c.value, str) and c.value[:2] in ("'=", "'@")]
    assert len(dangerous) == 4  # the names of issues 7 and 14 in A and B
    assert any(DANGEROUS_COMMENT in str(c.value) for r in table[1:] for c in r)  # inside the joined list
    for row in table[1:]:
        for cell in row:
            assert cell.data_type != "f", (cell.coordinate, cell.value)
            if isinstance(cell.value, str):
                assert cell.value[0] not in "=+-@\t\r", (cell.coordinate, cell.value)
    header = [c.value for c in table[0]]
    first = {h: c.value for h, c in zip(header, table[1], strict=True)}
    assert first["Sequence Id"] == 15 and first["Is Draft"] is False
    assert first["Assignees"] == "Ines Export"  # Plane's ", " join
    assert first["Links"] == "{'url': 'https://example.com/15', 'title': 'Link 15'}"  # Plane's str()


def test_multiple_is_one_file_per_project_in_one_zip(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    _token, files, _row = run(engine, s3_settings, world, "json", multiple=True)
    projects = list(world.projects.values())
    assert list(files) == [f"{world.slug}-{p}.json" for p in projects]
    counts = [len(json.loads(files[f"{world.slug}-{p}.json"])) for p in projects]
    assert counts == [15, 15, 0, 0], "C archived and D not a member: empty files, as Plane writes them"


def test_object_is_private_and_its_link_expires(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    """R22: anonymous GET 403; the presigned link works and is signed (SigV4) to expire after
    EXPORT_LINK_EXPIRY_S. moto 5 does not enforce a presigned URL's expiry (it serves an expired
    link), so the expiry is checked in the signed query, which S3 and MinIO enforce."""
    settings = replace(s3_settings, export_link_expiry_s=2)
    _token, _files, row = run(engine, settings, world, "csv")
    bucket_url = f"{settings.aws_s3_endpoint_url}/{settings.aws_s3_bucket_name}/{row.key}"
    assert requests.get(bucket_url, timeout=10).status_code == 403
    assert requests.get(row.url, timeout=10).status_code == 200
    query = parse_qs(urlsplit(row.url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["2"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60
    assert "X-Amz-Expires=604800" in run(engine, s3_settings, world, "csv")[2].url  # Plane's 7 days


def test_presigned_host_is_configurable(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    settings = replace(s3_settings, export_presign_endpoint_url="https://files.plane.example")
    _token, _files, row = run(engine, settings, world, "csv")
    assert row.url.startswith(
        f"https://files.plane.example/{settings.aws_s3_bucket_name}/{world.workspace_id}/"
    )


def test_rerunning_a_token_makes_one_object(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    token, _files, row = run(engine, s3_settings, world, "csv")
    data = export_event(world, "csv", token, list(world.projects.values()), False).data
    assert issue_export.run(engine, s3_settings, data, no_stop) == "done-before"
    with engine.begin() as conn:  # a row set back by hand: the export runs again, same key
        conn.execute(text("UPDATE exporters SET status = 'queued' WHERE token = :t"), {"t": token})
    assert issue_export.run(engine, s3_settings, data, no_stop) == "completed"
    s3 = s3_client(s3_settings)
    listed = s3.list_objects_v2(Bucket=s3_settings.aws_s3_bucket_name, Prefix=f"{world.workspace_id}/")
    assert [o["Key"] for o in listed["Contents"]] == [row.key]


def test_an_unfinished_upload_of_a_killed_attempt_is_aborted(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    token = exporter(engine, world, "csv", [world.projects["A"]])
    created = exporter_row(engine, token).created_at
    key = issue_export.export_key(world.workspace_id, world.slug, token, created)
    s3 = s3_client(s3_settings)
    bucket = s3_settings.aws_s3_bucket_name
    left = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=left, PartNumber=1, Body=b"x" * (5 << 20))
    data = export_event(world, "csv", token, [world.projects["A"]], False).data
    assert issue_export.run(engine, s3_settings, data, no_stop) == "completed"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_unsupported_provider_and_missing_bucket_fail_as_plane_records(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    token = exporter(engine, world, "pdf", [world.projects["A"]])
    data = export_event(world, "pdf", token, [world.projects["A"]], False).data
    assert issue_export.run(engine, s3_settings, data, no_stop) == "failed"
    assert exporter_row(engine, token).reason == "Unsupported format: pdf. Available: ['csv', 'json', 'xlsx']"
    token = exporter(engine, world, "csv", [world.projects["A"]])
    data = export_event(world, "csv", token, [world.projects["A"]], False).data
    missing = replace(s3_settings, aws_s3_bucket_name=f"gone-{uuid.uuid4().hex[:6]}")
    assert issue_export.run(engine, missing, data, no_stop) == "failed"
    row = exporter_row(engine, token)
    assert row.status == "failed" and row.reason.startswith("NoSuchBucket") and row.url is None


def test_a_stop_abandons_the_export_with_nothing_written(engine, s3_settings, world) -> None:  # type: ignore[no-untyped-def]
    from services.exports.strategy import Interrupted

    def stop() -> None:
        raise Interrupted()

    token = exporter(engine, world, "csv", [world.projects["A"]])
    data = export_event(world, "csv", token, [world.projects["A"]], False).data
    with pytest.raises(Interrupted):
        issue_export.run(engine, s3_settings, data, stop)
    s3 = s3_client(s3_settings)
    assert s3.list_objects_v2(Bucket=s3_settings.aws_s3_bucket_name).get("KeyCount") == 0
    assert exporter_row(engine, token).status == "processing"
    with engine.connect() as conn:  # the advisory lock went with the attempt
        assert conn.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")) == 0


# --- analytics -------------------------------------------------------------------------------


def test_analytics_rows_are_plane_s_shapes(engine, world) -> None:  # type: ignore[no-untyped-def]
    members = [world.projects["A"], world.projects["B"]]
    table = analytics.rows(
        engine, world.slug, {"x_axis": "priority", "y_axis": "issue_count", "project": members}
    )
    assert table == [
        ["Priority", "Issue Count"],
        ["low", 6],
        ["medium", 6],
        ["high", 6],
        ["urgent", 6],
        ["none", 6],
    ]
    by_label = {"x_axis": "labels__id", "y_axis": "estimate", "segment": "priority"}
    table = analytics.rows(engine, world.slug, by_label | {"project": [world.projects["A"]]})
    assert table[0] == ["Label", "Estimate", "high", "low", "medium", "none", "urgent"]
    assert sorted(r[0] for r in table[1:]) == ["label 1", "label 2", "label 3"]
    # label 1: issues 3, 6, 9, 12, 15 (estimate points 1 + seq % 3 -> value "1"): 5 x 1.0
    label1 = next(r for r in table[1:] if r[0] == "label 1")
    assert label1[1] == 5.0
    table = analytics.rows(engine, world.slug, {"x_axis": "created_at", "y_axis": "issue_count"})
    # No permission check (Plane's has none): D counts, archived C does not.
    assert table == [["Created At", "Issue Count"], ["2024-1", 45]]


def test_analytics_csv_is_mailed_with_its_attachment(engine, s3_settings, smtp, world) -> None:  # type: ignore[no-untyped-def]
    settings = replace(s3_settings, email_host="127.0.0.1", email_port=smtp.port, email_use_tls=False,
                       email_use_ssl=False, email_rate_limit_per_s=0.0)  # fmt: skip
    data = {"x_axis": "priority", "y_axis": "issue_count", "project": [world.projects["A"]]}
    event = new_event(
        "plane.analytics_export.v1", {"email": "ines@example.com", "data": data, "slug": world.slug}
    )
    producer = EventProducer(settings)
    producer.send(EXPORTS.topic, event, key=world.workspace_id)
    producer.close()
    with consumer_thread(EXPORTS, settings):
        mails = wait_until(lambda: list(read_topic(settings, settings.topic("emails"))), 60)
    with consumer_thread(registry.consumer("emails"), settings):
        wait_until(lambda: smtp.messages, 60)
    message = smtp.messages[0].message
    assert message["Subject"] == "Your Export is ready" and list(smtp.messages[0].recipients) == [
        "ines@example.com"
    ]
    attachment = next(p for p in message.walk() if p.get_filename())
    assert attachment.get_filename() == f"{world.slug}-analytics.csv"
    content = attachment.get_payload(decode=True).decode()
    assert content.splitlines() == ['"Priority","Issue Count"', '"low","3"', '"medium","3"', '"high","3"',
                                    '"urgent","3"', '"none","3"']  # fmt: skip
    assert len(mails) == 1


def test_analytics_csv_neutralises_formulas() -> None:
    from services.emails.mails_exports import analytics_csv

    table = [["Label", "Issue Count"], ["=cmd()", 2], ["+1", 1], ["@x", 0]]
    assert analytics_csv(table).decode().splitlines() == [
        '"Label","Issue Count"', "\"'=cmd()\",\"2\"", "\"'+1\",\"1\"", "\"'@x\",\"0\"",
    ]  # fmt: skip


# --- the consumer: long exports and kills ----------------------------------------------------------


def _produce(settings: Settings, event: Any, key: str) -> None:
    producer = EventProducer(settings)
    producer.send(EXPORTS.topic, event, key=key)
    producer.close()


def test_long_export_outlasts_max_poll_interval_once(engine, s3_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """R15: an export of ~3x max.poll.interval.ms (10 s) completes once, no rebalance, and a second
    member joining meanwhile does not start it."""
    world = seed(engine, issues_per_project=32, comments_per_issue=0)
    token = exporter(engine, world, "csv", [world.projects["A"]])
    _produce(s3_settings, export_event(world, "csv", token, [world.projects["A"]], False), world.workspace_id)
    env = {"KAFKA_MAX_POLL_INTERVAL_MS": "10000", "EXPORT_PAGE_SIZE": "1", "EXPORT_PAGE_PAUSE_MS": "1000",
           "LOG_LEVEL": "INFO"}  # fmt: skip
    logs = [open(tmp_path / f"member{i}.log", "wb") for i in range(2)]  # noqa: SIM115
    first = spawn_consumer(EXPORTS.name, s3_settings, stderr=logs[0], **env)
    procs = [first]
    try:
        wait_until(lambda: exporter_row(engine, token).status == "processing", 60)
        started = time.monotonic()
        procs.append(spawn_consumer(EXPORTS.name, s3_settings, stderr=logs[1], **env))
        wait_until(lambda: exporter_row(engine, token).status == "completed", 120, 0.5)
        took = time.monotonic() - started
    finally:
        stop_processes(procs)
        for f in logs:
            f.close()
    assert took > 30, f"the export took {took:.0f} s, not 3x max.poll.interval.ms"
    text_logs = "".join((tmp_path / f"member{i}.log").read_text() for i in range(2))
    assert "MAXPOLL" not in text_logs and "max.poll.interval" not in text_logs.lower()
    assert text_logs.count("export written") == 1, text_logs[-3000:]
    listed = s3_client(s3_settings).list_objects_v2(Bucket=s3_settings.aws_s3_bucket_name)["Contents"]
    assert len(listed) == 1


def test_export_killed_mid_way_is_written_once_after_restart(engine, s3_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = seed(engine, issues_per_project=20, comments_per_issue=0)
    token = exporter(engine, world, "xlsx", [world.projects["A"]])
    _produce(
        s3_settings, export_event(world, "xlsx", token, [world.projects["A"]], False), world.workspace_id
    )
    env = {"EXPORT_PAGE_SIZE": "2", "EXPORT_PAGE_PAUSE_MS": "300", "KAFKA_SESSION_TIMEOUT_MS": "3000"}
    log = open(tmp_path / "consumer.log", "wb")  # noqa: SIM115
    victim = spawn_consumer(EXPORTS.name, s3_settings, stderr=log, **env)
    try:
        wait_until(lambda: exporter_row(engine, token).status == "processing", 60)
        time.sleep(1.0)
        victim.kill()
        victim.wait()
        assert exporter_row(engine, token).status == "processing"
        survivor = spawn_consumer(EXPORTS.name, s3_settings, stderr=log, **env)
        wait_until(lambda: exporter_row(engine, token).status == "completed", 120, 0.5)
        stop_processes([survivor])
    finally:
        log.close()
    s3 = s3_client(s3_settings)
    bucket = s3_settings.aws_s3_bucket_name
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [exporter_row(engine, token).key]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    body = s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        sheet = openpyxl.load_workbook(io.BytesIO(archive.read(archive.namelist()[0]))).active
    assert sheet.max_row == 21
