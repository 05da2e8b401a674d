"""delete-expired-exports (real S3 API: moto server) and delete-unuploaded-assets on Plane's schema."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from shared import registry
from shared.cron.runtime import EXIT_FAILED, EXIT_OK, run_job
from shared.embedded.stack import env_for
from shared.storage import s3_client
from shared.testing.plane_rows import insert_one, insert_user

EXPORTS = registry.job("delete-expired-exports")
ASSETS = registry.job("delete-unuploaded-assets")
NOW = datetime.now(UTC)


def owner_and_workspace(conn: Connection) -> tuple[uuid.UUID, uuid.UUID]:
    user = insert_user(conn)
    ws = insert_one(conn, "workspaces", name="w", slug=f"w-{uuid.uuid4().hex[:6]}", owner_id=user)
    return user, ws


def add_export(conn: Connection, s3, settings, owner, age_days: float, *, url: bool = True, key: bool = True):  # type: ignore[no-untyped-def]
    """An exporters row `age_days` old and, when it has a key, its file in the uploads bucket."""
    user, ws = owner
    object_key = f"exports/{uuid.uuid4().hex}.csv" if key else ""
    if key:
        s3.put_object(Bucket=settings.aws_s3_bucket_name, Key=object_key, Body=b"id,name\n1,a\n")
    return insert_one(
        conn, "exporters", workspace_id=ws, initiated_by_id=user, provider="csv", status="completed",
        key=object_key, url=f"https://s3/{object_key}?sig" if url else None, token=uuid.uuid4().hex,
        type="issue_exports", created_at=NOW - timedelta(days=age_days),
    ), object_key  # fmt: skip


def objects(s3, settings) -> set[str]:  # type: ignore[no-untyped-def]
    listing = s3.list_objects_v2(Bucket=settings.aws_s3_bucket_name)
    return {o["Key"] for o in listing.get("Contents", [])}


def links(conn: Connection) -> dict[uuid.UUID, str | None]:
    return dict(conn.execute(text("SELECT id, url FROM exporters")).all())


def test_expired_exports_lose_file_and_link_once(s3_settings, engine):  # type: ignore[no-untyped-def]
    s3 = s3_client(s3_settings)
    with engine.begin() as conn:
        owner = owner_and_workspace(conn)
        old = [add_export(conn, s3, s3_settings, owner, 9 + i) for i in range(3)]
        no_key, _ = add_export(conn, s3, s3_settings, owner, 10, key=False)
        cleared, cleared_key = add_export(conn, s3, s3_settings, owner, 12, url=False)
        recent = [add_export(conn, s3, s3_settings, owner, 7.5) for _ in range(2)]

    code, dry = run_job(EXPORTS, s3_settings, dry_run=True)
    assert code == EXIT_OK and dry is not None and dry.counts == {"objects_deleted": 3, "links_cleared": 4}
    code, real = run_job(EXPORTS, s3_settings)
    assert code == EXIT_OK and real is not None
    assert real.counts == {"objects_deleted": 3, "links_cleared": 4}
    with engine.connect() as conn:
        after = links(conn)
    assert all(after[row] is None for row, _ in old) and after[no_key] is None and after[cleared] is None
    assert all(after[row] is not None for row, _ in recent)
    # Objects of expired exports gone; recent ones and a row already cleared (key kept) untouched.
    assert objects(s3, s3_settings) == {key for _, key in recent} | {cleared_key}

    code, again = run_job(EXPORTS, s3_settings)
    assert code == EXIT_OK and again is not None and again.counts == {}


def test_an_unreachable_bucket_fails_the_run_and_keeps_every_link(s3_settings, engine):  # type: ignore[no-untyped-def]
    s3 = s3_client(s3_settings)
    with engine.begin() as conn:
        owner = owner_and_workspace(conn)
        rows = [add_export(conn, s3, s3_settings, owner, 20) for _ in range(3)]
    broken = replace(s3_settings, aws_s3_bucket_name=f"missing-{uuid.uuid4().hex[:8]}")
    code, ctx = run_job(EXPORTS, broken)
    assert code == EXIT_FAILED and ctx is not None and ctx.counts["failed"] == 3
    with engine.connect() as conn:
        assert all(url is not None for url in links(conn).values())
        error = conn.scalar(text("SELECT error FROM plane_workers.job_runs WHERE status = 'failure'"))
    assert "3 export file(s) could not be deleted" in error
    assert objects(s3, s3_settings) == {key for _, key in rows}


def test_killed_export_run_is_finished_by_the_next(s3_settings, engine):  # type: ignore[no-untyped-def]
    s3 = s3_client(s3_settings)
    with engine.begin() as conn:
        owner = owner_and_workspace(conn)
        for _ in range(350):
            add_export(conn, s3, s3_settings, owner, 30)
    env = env_for(s3_settings) | {"JOB_BATCH_PAUSE_MS": "400"}
    cmd = [sys.executable, "-m", "shared.cli.main", "job", EXPORTS.name]
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(objects(s3, s3_settings)) == 350 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert 0 < len(objects(s3, s3_settings)) < 350, "the kill did not land mid-run"
    code, _ = run_job(EXPORTS, s3_settings)
    assert code == EXIT_OK
    assert objects(s3, s3_settings) == set()
    with engine.connect() as conn:
        assert all(url is None for url in links(conn).values())


def test_unuploaded_assets_are_soft_deleted_once(settings, engine):  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        _, ws = owner_and_workspace(conn)

        def asset(age_days: float, uploaded: bool, deleted_at: datetime | None = None) -> uuid.UUID:
            return insert_one(
                conn, "file_assets", asset=f"a/{uuid.uuid4().hex}", workspace_id=ws, is_uploaded=uploaded,
                created_at=NOW - timedelta(days=age_days), deleted_at=deleted_at, attributes="{}",
            )  # fmt: skip

        stale = [asset(8, False) for _ in range(4)]
        kept = [asset(8, True), asset(6, False)]
        earlier = NOW - timedelta(days=30)
        already = asset(40, False, deleted_at=earlier)

    code, dry = run_job(ASSETS, settings, dry_run=True)
    assert code == EXIT_OK and dry is not None and dry.counts == {"soft_deleted": 4}
    code, real = run_job(ASSETS, settings)
    assert code == EXIT_OK and real is not None and real.counts == {"soft_deleted": 4}
    with engine.connect() as conn:
        deleted = dict(conn.execute(text("SELECT id, deleted_at FROM file_assets")).all())
    assert all(deleted[a] is not None and deleted[a] > NOW - timedelta(minutes=5) for a in stale)
    assert all(deleted[a] is None for a in kept)
    assert deleted[already] == earlier  # an earlier soft delete keeps its date (and its retention)
    code, again = run_job(ASSETS, settings)
    assert code == EXIT_OK and again is not None and again.counts == {}
