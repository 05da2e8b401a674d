"""The cleanup-api-logs job on Plane's schema: retention, dry run, concurrency, kill and re-run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from cronjobs.cleanup_logs import BATCH_SIZE
from shared import registry
from shared.cron.runtime import EXIT_OK, lock_key, run_job
from shared.db.plane import APIActivityLog
from shared.db.state import JobRun
from shared.embedded.stack import env_for
from shared.testing import plane_factory as make

SPEC = registry.job("cleanup-api-logs")


def add_logs(engine, old: int, recent: int) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    rows = [make.api_log(now - timedelta(days=61, minutes=i)) for i in range(old)]
    rows += [make.api_log(now - timedelta(days=59, minutes=i)) for i in range(recent)]
    rows[0].deleted_at = now  # soft-deleted rows are purged too (Plane uses all_objects)
    with Session(engine) as session, session.begin():
        session.execute(
            insert(APIActivityLog),
            [{c.key: getattr(r, c.key) for c in APIActivityLog.__table__.columns} for r in rows],
        )


def count_logs(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(APIActivityLog))


def job_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shared.cli.main", "job", SPEC.name, *args]


def test_deletes_only_past_retention_and_dry_run_counts_the_same(settings, engine):  # type: ignore[no-untyped-def]
    add_logs(engine, old=4500, recent=300)
    code, dry = run_job(SPEC, settings, dry_run=True)
    assert code == EXIT_OK and dry is not None
    assert dry.counts == {"deleted": 4500}
    assert count_logs(engine) == 4800  # the dry run changed nothing
    code, real = run_job(SPEC, settings)
    assert code == EXIT_OK and real is not None
    assert real.counts == {"deleted": 4500}
    assert count_logs(engine) == 300
    code, again = run_job(SPEC, settings)
    assert again is not None and again.counts == {}  # idempotent
    with engine.connect() as conn:
        statuses = conn.scalars(select(JobRun.status).order_by(JobRun.id)).all()
    assert statuses == ["dry_run", "success", "success"]


def test_two_concurrent_runs_do_the_work_once(settings, engine):  # type: ignore[no-untyped-def]
    add_logs(engine, old=3000, recent=10)
    # Hold the job's lock as a running job would, then start a second run: it must not work.
    with engine.connect() as holder:
        assert holder.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(SPEC.name)})
        code, ctx = run_job(SPEC, settings)
        assert (code, ctx) == (EXIT_OK, None)
        assert count_logs(engine) == 3010
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(SPEC.name)})
        holder.commit()
    # Two real processes at once: together they delete each expired row exactly once.
    env = env_for(settings)
    runs = [subprocess.Popen(job_command(), env=env, stdout=subprocess.PIPE) for _ in range(2)]
    outputs = [r.communicate(timeout=120)[0].decode() for r in runs]
    assert [r.returncode for r in runs] == [0, 0]
    assert count_logs(engine) == 10
    with engine.connect() as conn:
        runs_recorded = conn.execute(select(JobRun.status, JobRun.counts)).all()
    deleted = sum((counts or {}).get("deleted", 0) for _status, counts in runs_recorded)
    assert deleted == 3000, outputs


def test_a_killed_run_is_finished_by_the_next(settings, engine):  # type: ignore[no-untyped-def]
    add_logs(engine, old=20_000, recent=5)
    # Paced batches (as an operator would on a busy primary) so the kill lands mid-run.
    env = env_for(settings) | {"JOB_BATCH_PAUSE_MS": "200"}
    run = subprocess.Popen(job_command(), env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while count_logs(engine) == 20_005 and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    left = count_logs(engine)
    assert 5 < left < 20_005, "the kill did not land mid-run"
    assert (20_005 - left) % BATCH_SIZE == 0  # only whole batches were committed
    code, ctx = run_job(SPEC, settings)  # the killed run's lock died with its connection
    assert code == EXIT_OK and ctx is not None
    assert ctx.counts["deleted"] == left - 5
    assert count_logs(engine) == 5
    with engine.connect() as conn:
        killed, rerun = conn.execute(
            select(JobRun.id, JobRun.status, JobRun.error, JobRun.finished_at).order_by(JobRun.id)
        ).all()
    # The killed run's record was left running; the next run, holding the lock, closed it.
    assert (killed.status, rerun.status) == ("abandoned", "success")
    assert killed.error == f"found unfinished by run {rerun.id}"
    assert killed.finished_at is not None and killed.finished_at <= rerun.finished_at
