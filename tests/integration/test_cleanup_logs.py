"""The log and version cleanup jobs on Plane's schema, with a real S3 archive (moto server).

Which rows are due is computed here in Python from the seeded rows (retention on a timestamp, or
newest-N per page/issue by (created_at, id)), independently of the jobs' SQL. Every run uses one
scheduled time, so rows seeded on either side of the cut-off land where they should.
"""

from __future__ import annotations

import base64
import math
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, text

from cronjobs import cleanup_logs
from shared import registry
from shared.archive import Archive, ArchiveError, decode_rows
from shared.cron.runtime import EXIT_FAILED, EXIT_OK, run_job
from shared.db.state import JobRun
from shared.embedded.stack import env_for
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing.plane_rows import insert_many, insert_one, insert_user

NOW = datetime.now(UTC).replace(microsecond=0)  # every run's scheduled time
CUTOFF = NOW - timedelta(days=60)  # the test settings keep 60 days
KEEP = 20  # VERSION_HISTORY_KEEP default

Row = dict[str, Any]


@dataclass(frozen=True)
class Parents:
    params: dict[str, Any]  # :u, :u2, :w, :p (users, workspace, project) plus :now and :cutoff
    issues: list[uuid.UUID]
    pages: list[uuid.UUID]


def add_parents(conn: Connection) -> Parents:
    user, other = insert_user(conn), insert_user(conn)
    ws = insert_one(conn, "workspaces", name="ws", slug=f"ws-{uuid.uuid4().hex[:8]}", owner_id=user)
    proj = insert_one(conn, "projects", name="p", identifier="P", network=2, workspace_id=ws)
    issues = [
        insert_one(
            conn, "issues", name=f"i{n}", sequence_id=n, priority="none", project_id=proj, workspace_id=ws
        )
        for n in range(1, 5)
    ]
    pages = [insert_one(conn, "pages", name=f"page {n}", owned_by_id=user, workspace_id=ws) for n in range(5)]
    params = {"u": user, "u2": other, "w": ws, "p": proj, "now": NOW, "cutoff": CUTOFF}
    return Parents(params, issues, pages)


# SQL expressions over `g` (1..n) shared by the seeds.
MINUTES_BEFORE_CUTOFF = "CAST(:cutoff AS timestamptz) - g * interval '1 minute'"
DAYS_AGO = "CAST(:now AS timestamptz) - g * interval '1 hour' - :days * interval '1 day'"
SOFT_DELETED_EVERY_7TH = "CASE WHEN g % 7 = 0 THEN CAST(:now AS timestamptz) END"


def seed_timed(
    conn: Connection, table: str, column: str, columns: dict[str, str], params: dict[str, Any]
) -> None:
    """Rows due (before the cut-off, one exactly on it) and kept (one just after, recent ones)."""
    due = {column: MINUTES_BEFORE_CUTOFF, "created_at": MINUTES_BEFORE_CUTOFF}
    recent = {column: DAYS_AGO, "created_at": DAYS_AGO}
    n_due = params["n_due"]
    insert_many(conn, table, n_due - 1, {**columns, **due, "deleted_at": SOFT_DELETED_EVERY_7TH}, params)
    insert_many(conn, table, 1, {**columns, column: ":cutoff"}, params)
    insert_many(conn, table, 1, {**columns, column: "CAST(:cutoff AS timestamptz) + interval '1 ms'"}, params)
    insert_many(
        conn, table, 30, {**columns, **recent, "deleted_at": SOFT_DELETED_EVERY_7TH}, {**params, "days": 10}
    )


def seed_api_logs(conn: Connection, parents: Parents) -> None:
    columns = {
        "token_identifier": "'plane_api_' || g",
        "path": "'/api/v1/workspaces/ws/issues/' || g || '/'",
        "method": "'PATCH'",
        "query_params": "'expand=assignees'",
        "headers": "json_build_object('User-Agent', 'curl/8')::text",
        "body": "json_build_object('name', 'Résumé ✓ ' || g)::text",
        "response_code": "200 + g % 3",
        "ip_address": "CAST('10.0.' || g % 250 || '.1' AS inet)",
        "created_by_id": ":u",
    }
    seed_timed(conn, "api_activity_logs", "created_at", columns, {**parents.params, "n_due": 1200})


def seed_email_logs(conn: Connection, parents: Parents) -> None:
    columns = {
        "receiver_id": ":u",
        "triggered_by_id": ":u2",
        "entity_identifier": "gen_random_uuid()",
        "entity_name": "'issue'",
        "entity": "'issue'",
        "data": "jsonb_build_object('issue', jsonb_build_object('name', 'Issue ' || g), 'changes', "
        "jsonb_build_array(g, 'state', null))",
        "old_value": "NULL",
        "new_value": "'Done'",
        "processed_at": ":cutoff",
    }
    seed_timed(conn, "email_notification_logs", "sent_at", columns, {**parents.params, "n_due": 1100})
    # Old but never sent: Plane never purges these, neither do we.
    never_sent = {**columns, "created_at": DAYS_AGO, "sent_at": "NULL", "processed_at": "NULL"}
    insert_many(conn, "email_notification_logs", 40, never_sent, {**parents.params, "days": 200})


def seed_webhook_logs(conn: Connection, parents: Parents) -> None:
    columns = {
        "workspace_id": ":w",
        "webhook": "gen_random_uuid()",
        "event_type": "'issue'",
        "request_method": "'POST'",
        "request_headers": "json_build_object('Content-Type', 'application/json')::text",
        "request_body": "json_build_object('event', 'issue', 'n', g)::text",
        "response_status": "'200'",
        "response_headers": "'{}'",
        "response_body": "'ok'",
        "retry_count": "g % 3",
    }
    seed_timed(conn, "webhook_logs", "created_at", columns, {**parents.params, "n_due": 2500})


def seed_versions(
    conn: Connection, table: str, owners: list[dict[str, Any]], sizes: list[int], params: dict[str, Any]
) -> None:
    """`sizes[i]` versions of `owners[i]` (its key columns), an hour apart, every 7th soft-deleted;
    an owner of TIED versions has them all at one created_at (ties broken by id)."""
    columns = {
        "owned_by_id": ":u",
        "workspace_id": ":w",
        "description_html": "'<p>v' || g || '</p>'",
        "description_stripped": "'v' || g",
        "description_json": "jsonb_build_object('type', 'doc', 'content', jsonb_build_array("
        "jsonb_build_object('type', 'paragraph', 'text', 'v' || g)))",
        # Bytes that are not UTF-8 (0x00, 0xff), as Yjs state is.
        "description_binary": "decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex')",
        "created_at": DAYS_AGO,
        "last_saved_at": DAYS_AGO,
        "deleted_at": SOFT_DELETED_EVERY_7TH,
    }
    for owner, size in zip(owners, sizes, strict=True):
        n, tied = (size, False) if size > 0 else (-size, True)
        exprs = {**columns, **{name: f":o_{name}" for name in owner}}
        if tied:
            exprs |= {"created_at": ":cutoff", "last_saved_at": ":cutoff"}
        owner_params = {f"o_{name}": value for name, value in owner.items()}
        insert_many(conn, table, n, exprs, {**params, **owner_params, "days": 0})


TIED = -1  # a size times TIED: that many versions, all created at the same instant
PAGE_SIZES = [45, 20, 5, 300, 22 * TIED]  # due: 25 + 0 + 0 + 280 + 2 = 307
ISSUE_SIZES = [30, 20, 1, 261]  # due: 10 + 0 + 0 + 241 = 251


def seed_page_versions(conn: Connection, parents: Parents) -> None:
    owners = [{"page_id": page} for page in parents.pages]
    seed_versions(conn, "page_versions", owners, PAGE_SIZES, parents.params)


def seed_description_versions(conn: Connection, parents: Parents) -> None:
    owners = [{"issue_id": issue, "project_id": parents.params["p"]} for issue in parents.issues]
    seed_versions(conn, "issue_description_versions", owners, ISSUE_SIZES, parents.params)


def due_by_time(column: str) -> Callable[[list[Row]], set[uuid.UUID]]:
    return lambda rows: {r["id"] for r in rows if r[column] is not None and r[column] <= CUTOFF}


def due_beyond_newest(owner: str) -> Callable[[list[Row]], set[uuid.UUID]]:
    def due(rows: list[Row]) -> set[uuid.UUID]:
        by_owner: dict[Any, list[Row]] = defaultdict(list)
        for row in rows:
            by_owner[row[owner]].append(row)
        newest_first = (
            sorted(g, key=lambda r: (r["created_at"], r["id"]), reverse=True) for g in by_owner.values()
        )
        return {r["id"] for versions in newest_first for r in versions[KEEP:]}

    return due


@dataclass(frozen=True)
class Case:
    job: str
    table: str
    seed: Callable[[Connection, Parents], None]
    due: Callable[[list[Row]], set[uuid.UUID]]
    n_due: int  # by construction, to check the seed and the Python rule agree
    batch_size: int
    json_column: str | None  # a json/jsonb column, where the table has one
    time_column: str

    def __str__(self) -> str:
        return self.job


B, VB = cleanup_logs.BATCH_SIZE, cleanup_logs.VERSION_BATCH_SIZE
CASES = [
    Case("cleanup-api-logs", "api_activity_logs", seed_api_logs, due_by_time("created_at"), 1200, B,
         None, "created_at"),
    Case("cleanup-email-logs", "email_notification_logs", seed_email_logs, due_by_time("sent_at"), 1100, B,
         "data", "sent_at"),
    Case("cleanup-page-versions", "page_versions", seed_page_versions, due_beyond_newest("page_id"), 307, VB,
         "description_json", "created_at"),
    Case("cleanup-description-versions", "issue_description_versions", seed_description_versions,
         due_beyond_newest("issue_id"), 251, VB, "description_json", "last_saved_at"),
    Case("cleanup-webhook-logs", "webhook_logs", seed_webhook_logs, due_by_time("created_at"), 2500, B,
         None, "created_at"),
]  # fmt: skip
CASE = {c.job: c for c in CASES}
NEW_CASES = [c for c in CASES if c.job != "cleanup-api-logs"]  # api-logs' own tests cover the rest


def seed(engine: Engine, case: Case) -> tuple[dict[uuid.UUID, Row], set[uuid.UUID]]:
    """Seed `case`'s table; return every row by id and the ids due."""
    with engine.begin() as conn:
        case.seed(conn, add_parents(conn))
    rows = table_rows(engine, case.table)
    due = case.due(list(rows.values()))
    assert len(due) == case.n_due and len(rows) > len(due)
    assert any(rows[i]["deleted_at"] for i in due), "soft-deleted rows are among the due ones"
    assert any(row["deleted_at"] for i, row in rows.items() if i not in due), "and among the kept ones"
    return rows, due


def table_rows(engine: Engine, table: str) -> dict[uuid.UUID, Row]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table}")).mappings()
        # bytea comes back as memoryview; bytes compare by value however they were made.
        return {
            row["id"]: {c: bytes(v) if isinstance(v, memoryview) else v for c, v in row.items()}
            for row in rows
        }


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(text(f"SELECT count(*) FROM {table}"))


def run(case: Case, settings: Settings, *, dry_run: bool = False) -> tuple[int, dict[str, int]]:
    code, ctx = run_job(registry.job(case.job), settings, dry_run=dry_run, scheduled_for=NOW)
    assert ctx is not None
    return code, dict(ctx.counts)


def archived_objects(settings: Settings, table: str) -> dict[str, list[Row]]:
    client = s3_client(settings)
    prefix = f"{settings.archive_s3_prefix}{table}/"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.archive_s3_bucket, Prefix=prefix)
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    return {
        key: decode_rows(client.get_object(Bucket=settings.archive_s3_bucket, Key=key)["Body"].read())
        for key in keys
    }


def from_archive(archived: Any, original: Any) -> Any:
    """`archived` decoded by the type of the database value, per shared.archive's format."""
    if archived is None or original is None:
        return archived
    if isinstance(original, datetime):
        return datetime.fromisoformat(archived)
    if isinstance(original, date):
        return date.fromisoformat(archived)
    if isinstance(original, uuid.UUID):
        return uuid.UUID(archived)
    if isinstance(original, bytes):
        return base64.b64decode(archived["$base64"])
    if isinstance(original, Decimal):
        return Decimal(archived)
    return archived


def job_command(job: str) -> list[str]:
    scheduled = NOW.strftime("%Y-%m-%dT%H:%M:%S")
    return [sys.executable, "-m", "shared.cli.main", "job", job, "--scheduled-for", scheduled]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_deletes_exactly_the_due_rows_and_dry_run_counts_the_same(case: Case, settings, engine):  # type: ignore[no-untyped-def]
    rows, due = seed(engine, case)
    assert run(case, settings, dry_run=True) == (EXIT_OK, {"deleted": len(due)})
    assert table_rows(engine, case.table).keys() == rows.keys()  # the dry run changed nothing
    assert run(case, settings) == (EXIT_OK, {"deleted": len(due)})
    assert table_rows(engine, case.table).keys() == rows.keys() - due
    assert run(case, settings) == (EXIT_OK, {})  # nothing left to do


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_deleted_row_is_archived_once_before_it_goes(case: Case, s3_settings, engine):  # type: ignore[no-untyped-def]
    rows, due = seed(engine, case)
    assert run(case, s3_settings) == (EXIT_OK, {"archived": len(due), "deleted": len(due)})
    assert table_rows(engine, case.table).keys() == rows.keys() - due

    objects = archived_objects(s3_settings, case.table)
    assert len(objects) == math.ceil(len(due) / case.batch_size)  # one object per batch
    key = re.compile(
        rf"{re.escape(s3_settings.archive_s3_prefix)}{case.table}/{NOW:%Y/%m/%d}/"
        rf"{NOW:%Y%m%dT%H%M%S}Z-[0-9a-f]{{8}}-(\d{{6}})\.jsonl\.gz"
    )
    batch_numbers = sorted(int(key.fullmatch(k).group(1)) for k in objects)  # type: ignore[union-attr]
    assert batch_numbers == list(range(len(objects)))
    archived = [row for batch in objects.values() for row in batch]
    assert len(archived) == len(due)  # each row exactly once
    assert {uuid.UUID(row["id"]) for row in archived} == due
    for row in archived:
        original = rows[uuid.UUID(row["id"])]
        assert list(row) == list(original)  # every column, in table order
        assert {c: from_archive(v, original[c]) for c, v in row.items()} == original
    # Spelled out for one soft-deleted row: a JSON column is nested JSON, a timestamp ISO 8601 UTC.
    sample = next(row for row in archived if row["deleted_at"] is not None)
    original = rows[uuid.UUID(sample["id"])]
    if case.json_column:
        assert isinstance(sample[case.json_column], dict)  # nested, not a JSON string
        assert sample[case.json_column] == original[case.json_column]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", sample[case.time_column])
    assert datetime.fromisoformat(sample[case.time_column]) == original[case.time_column]


@pytest.mark.parametrize("case", NEW_CASES, ids=str)
def test_an_archive_failure_deletes_nothing_and_fails_the_run(case: Case, s3_settings, engine):  # type: ignore[no-untyped-def]
    rows, _ = seed(engine, case)
    broken = replace(s3_settings, archive_s3_bucket=f"missing-{uuid.uuid4().hex[:8]}")
    assert run(case, broken) == (EXIT_FAILED, {"archive_failed": 1})
    assert table_rows(engine, case.table) == rows
    assert archived_objects(s3_settings, case.table) == {}
    with engine.connect() as conn:
        status, error = conn.execute(select(JobRun.status, JobRun.error)).one()
    assert status == "failure"
    assert "could not be archived" in error and "NoSuchBucket" in error


def test_a_version_no_longer_beyond_the_newest_n_is_kept(s3_settings, engine, monkeypatch):  # type: ignore[no-untyped-def]
    """The delete re-checks the newest-N rule: versions that became recent meanwhile survive."""
    case = CASE["cleanup-page-versions"]
    with engine.begin() as conn:
        parents = add_parents(conn)
        seed_versions(conn, case.table, [{"page_id": parents.pages[0]}], [25], parents.params)
    write = Archive.write

    def newest_versions_removed_meanwhile(self: Archive, *args: Any, **kwargs: Any) -> str:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM page_versions WHERE id IN (SELECT id FROM page_versions"
                    " WHERE page_id = :p ORDER BY created_at DESC LIMIT 10)"
                ),
                {"p": parents.pages[0]},
            )
        return write(self, *args, **kwargs)

    monkeypatch.setattr(Archive, "write", newest_versions_removed_meanwhile)
    assert run(case, s3_settings) == (EXIT_OK, {"archived": 5})  # 5 were due when read, none when deleted
    assert len(table_rows(engine, case.table)) == 15


def test_a_killed_run_is_finished_by_the_next(s3_settings, engine):  # type: ignore[no-untyped-def]
    case = CASE["cleanup-webhook-logs"]
    rows, due = seed(engine, case)
    total, batch = len(rows), case.batch_size
    # Paced batches (as an operator would on a busy primary) so the kill lands mid-run.
    env = env_for(s3_settings) | {"JOB_BATCH_PAUSE_MS": "200"}
    killed = subprocess.Popen(job_command(case.job), env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while count_rows(engine, case.table) == total and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = count_rows(engine, case.table)
    assert total - len(due) < left < total, "the kill did not land mid-run"
    assert (total - left) % batch == 0  # only whole batches were deleted

    code, counts = run(case, s3_settings)
    assert code == EXIT_OK and counts["deleted"] == left - (total - len(due))
    assert table_rows(engine, case.table).keys() == rows.keys() - due
    archived = [uuid.UUID(row["id"]) for batch_rows in archived_objects(s3_settings, case.table).values()
                for row in batch_rows]  # fmt: skip
    assert set(archived) == due  # every deleted row was archived ...
    assert len(archived) - len(due) <= batch  # ... again at most for the batch the kill interrupted


def test_two_concurrent_runs_delete_and_archive_each_row_once(s3_settings, engine):  # type: ignore[no-untyped-def]
    case = CASE["cleanup-email-logs"]
    rows, due = seed(engine, case)
    env = env_for(s3_settings)
    runs = [subprocess.Popen(job_command(case.job), env=env, stdout=subprocess.PIPE) for _ in range(2)]
    outputs = [r.communicate(timeout=60)[0].decode() for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert table_rows(engine, case.table).keys() == rows.keys() - due
    with engine.connect() as conn:
        recorded = conn.scalars(select(JobRun.counts)).all()
    assert sum(counts.get("deleted", 0) for counts in recorded) == len(due), outputs
    archived = [row["id"] for batch in archived_objects(s3_settings, case.table).values() for row in batch]
    assert sorted(archived) == sorted(str(i) for i in due)


def test_archive_format_overwrite_and_privacy(s3_settings, settings):  # type: ignore[no-untyped-def]
    assert Archive.from_settings(settings) is None  # ARCHIVE_S3_BUCKET empty: archiving off
    archive = Archive.from_settings(replace(s3_settings, archive_s3_prefix="logs"))
    assert archive is not None
    row_id = uuid.uuid4()
    row = {
        "id": row_id,
        "at": datetime(2024, 5, 1, 2, 30, tzinfo=UTC),
        "day": date(2024, 5, 1),
        "amount": Decimal("1.10"),
        "blob": b"\x00\xff",
        "doc": {"a": [1, None]},
        "text": "Résumé ✓",
        "none": None,
    }
    key = archive.write("webhook_logs", "run1", 7, [row], day=date(2024, 5, 1))
    assert key == "logs/webhook_logs/2024/05/01/run1-000007.jsonl.gz"
    client = s3_client(s3_settings)
    body = client.get_object(Bucket=archive.bucket, Key=key)["Body"].read()
    assert decode_rows(body) == [
        {
            "id": str(row_id),
            "at": "2024-05-01T02:30:00+00:00",
            "day": "2024-05-01",
            "amount": "1.10",
            "blob": {"$base64": "AP8="},
            "doc": {"a": [1, None]},
            "text": "Résumé ✓",
            "none": None,
        }
    ]
    # The same (run, batch) again overwrites its object.
    archive.write("webhook_logs", "run1", 7, [{"id": "other"}], day=date(2024, 5, 1))
    assert archived_objects(replace(s3_settings, archive_s3_prefix="logs/"), "webhook_logs") == {
        key: [{"id": "other"}]
    }
    grants = client.get_object_acl(Bucket=archive.bucket, Key=key)["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert all(g["Grantee"]["Type"] == "CanonicalUser" for g in grants)  # no AllUsers/AuthenticatedUsers
    with pytest.raises(ArchiveError, match="timedelta"):
        archive.write("webhook_logs", "run1", 8, [{"id": "x", "age": timedelta(1)}])
