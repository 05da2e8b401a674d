"""migrate-workspace between two real PostgreSQL databases with Plane's schema (the test's own
and a second, empty one on the same embedded server): copied whole, a second workspace left
behind, a SIGKILLed run resumed, a rerun copying nothing, a target without a table refused, the
target's password never shown, S3 objects copied (moto)."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from cronjobs.samples.migrate_workspace import fingerprint, target_database
from services.soft_deletes.samples import add_workspace
from shared import registry
from shared.cron.runtime import run_job
from shared.db.engine import normalise_url
from shared.embedded.stack import env_for
from shared.settings import Settings
from shared.storage import s3_client
from shared.testing.plane_rows import insert_user

SPEC = registry.job("migrate-workspace")


@pytest.fixture
def target_url(settings: Settings) -> Iterator[str]:
    url = target_database(settings.database_url)
    yield url
    engine = create_engine(normalise_url(settings.database_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1].split("?")[0]}" WITH (FORCE)'))
    engine.dispose()


def seed(engine: Engine, issues: int = 300) -> tuple[object, object, str]:
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, _ = add_workspace(conn, owner, 3, issues, pages=20)
        other, _ = add_workspace(conn, owner, 1, 30)
        deleted = "UPDATE issues SET deleted_at = now() WHERE workspace_id = :w AND sequence_id % 7 = 0"
        conn.execute(text(deleted), {"w": ws})
        slug = conn.scalar(text("SELECT slug FROM workspaces WHERE id = :w"), {"w": ws})
    return ws, other, slug


def configured(settings: Settings, slug: str, target_url: str) -> Settings:
    return dataclasses.replace(settings, migrate_workspace_slug=slug, migrate_target_database_url=target_url)


def test_migrates_whole_subtree_and_nothing_else(settings: Settings, engine: Engine, target_url: str) -> None:
    ws, other, slug = seed(engine)
    code, dry = run_job(SPEC, configured(settings, slug, target_url), dry_run=True)
    assert code == 0 and dry is not None
    code, ctx = run_job(SPEC, configured(settings, slug, target_url))
    assert code == 0 and ctx is not None
    target = create_engine(normalise_url(target_url))
    source_rows = fingerprint(engine, ws)
    assert sum(n for n, _ in source_rows.values()) > 5000
    assert fingerprint(target, ws) == source_rows
    assert all(n == 0 for n, _ in fingerprint(target, other).values())
    with target.connect() as conn:  # sub-issues keep their parent (a deferred self-reference)
        assert conn.scalar(text("SELECT count(parent_id) FROM issues")) == 3 * 75
    assert ctx.counts["copied"] == dry.counts["copied"] > 5000 and ctx.counts["linked"] > 0
    code, again = run_job(SPEC, configured(settings, slug, target_url))
    assert code == 0 and again is not None
    assert not any(again.counts.values()), again.counts
    target.dispose()


def test_killed_run_resumes_and_verifies(settings: Settings, engine: Engine, target_url: str) -> None:
    ws, _, slug = seed(engine)
    env = {**os.environ, **env_for(settings), "MIGRATE_WORKSPACE_SLUG": slug,
           "MIGRATE_TARGET_DATABASE_URL": target_url, "JOB_BATCH_PAUSE_MS": "200"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "job", "migrate-workspace"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    target = create_engine(normalise_url(target_url))
    deadline = time.monotonic() + 60
    with target.connect() as conn:
        while time.monotonic() < deadline:
            if (conn.scalar(text("SELECT count(*) FROM issues")) or 0) > 0:
                break
            conn.commit()
            time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = fingerprint(target, ws)
    assert partial != fingerprint(engine, ws)  # killed half-way
    code, ctx = run_job(SPEC, configured(settings, slug, target_url))
    assert code == 0 and ctx is not None
    assert 0 < ctx.counts["copied"] < sum(n for n, _ in fingerprint(engine, ws).values()) + 1
    assert fingerprint(target, ws) == fingerprint(engine, ws)
    target.dispose()


def test_target_without_a_table_is_refused(settings: Settings, engine: Engine, target_url: str) -> None:
    _, _, slug = seed(engine, issues=5)
    target = create_engine(normalise_url(target_url))
    with target.begin() as conn:
        conn.execute(text("DROP TABLE issue_links"))
    code, ctx = run_job(SPEC, configured(settings, slug, target_url))
    assert code == 1 and ctx is not None and ctx.counts["copied"] == 0
    with engine.connect() as conn:
        error = conn.scalar(text("SELECT error FROM plane_workers.job_runs ORDER BY id DESC LIMIT 1"))
    assert "the target has no table issue_links" in error
    target.dispose()


def test_password_never_shown(settings: Settings, engine: Engine) -> None:
    _, _, slug = seed(engine, issues=2)
    secret = "s3cr3t-pw-xyz"
    dsn = f"postgresql://someone:{secret}@127.0.0.1:1/nowhere"
    env = {**os.environ, **env_for(settings), "MIGRATE_WORKSPACE_SLUG": slug}
    out = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "job", "migrate-workspace", "--to", dsn],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert secret not in out.stdout + out.stderr
    with engine.connect() as conn:
        error = conn.scalar(text("SELECT error FROM plane_workers.job_runs ORDER BY id DESC LIMIT 1"))
    assert error and secret not in error and "OperationalError" in error


def test_s3_objects_copied_once(
    s3_settings: Settings, engine: Engine, target_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cronjobs.migrate_workspace_s3")
    ws, _, slug = seed(engine, issues=10)
    client = s3_client(s3_settings)
    bucket = "migrated-" + slug[-8:]
    client.create_bucket(Bucket=bucket)
    with engine.connect() as conn:
        keys = conn.scalars(text("SELECT asset FROM file_assets WHERE workspace_id = :w"), {"w": ws}).all()
    for key in keys[1:]:  # the first one was never uploaded
        client.put_object(Bucket=s3_settings.aws_s3_bucket_name, Key=key, Body=b"x" * 10)
    s = dataclasses.replace(configured(s3_settings, slug, target_url), migrate_s3_target_bucket=bucket)
    code, ctx = run_job(SPEC, s)
    assert code == 0 and ctx is not None
    assert ctx.counts["s3_copied"] == len(keys) - 1
    assert "s3 objects: 0 already in the target, 1 missing in the source" in caplog.text
    assert client.get_object(Bucket=bucket, Key=keys[1])["Body"].read() == b"x" * 10
    code, again = run_job(SPEC, s)
    assert code == 0 and again is not None
    assert not any(again.counts.values()), again.counts
    assert f"s3 objects: {len(keys) - 1} already in the target, 1 missing" in caplog.text
