"""A job pod told to stop (Job deleted, node drained, activeDeadlineSeconds): SIGTERM mid-run.
The batch in progress is committed, the run is recorded `interrupted` with finished_at, the lock
is released, the process exits 143 within seconds, and the next run does what is left. Before,
Python died of the signal at once and the run's record stayed `running`."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from sqlalchemy import func, select, text

from cronjobs.cleanup_logs import BATCH_SIZE
from shared.cron.runtime import EXIT_INTERRUPTED, EXIT_OK, lock_key, run_job
from shared.db.plane import APIActivityLog
from shared.db.state import JobRun
from shared.embedded.stack import env_for
from tests.helpers import wait_until
from tests.integration.test_cleanup_api_logs import SPEC, add_logs, count_logs, job_command

TOTAL = 20_005  # 20 000 past retention, 5 recent


def runs(engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        columns = (JobRun.id, JobRun.status, JobRun.error, JobRun.counts, JobRun.finished_at)
        return conn.execute(select(*columns).order_by(JobRun.id)).all()


def lock_is_free(engine) -> bool:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        if not conn.scalar(select(func.pg_try_advisory_lock(lock_key(SPEC.name)))):
            return False
        conn.execute(select(func.pg_advisory_unlock(lock_key(SPEC.name))))
        return True


def finish_with_a_second_run(engine, settings, left: int) -> None:  # type: ignore[no-untyped-def]
    code, ctx = run_job(SPEC, settings)
    assert code == EXIT_OK and ctx is not None
    assert ctx.counts["deleted"] == left - 5
    assert count_logs(engine) == 5
    interrupted, rerun = runs(engine)
    assert (interrupted.status, rerun.status) == ("interrupted", "success")  # not re-marked abandoned


def test_sigterm_between_batches_records_interrupted_and_exits_at_once(settings, engine):  # type: ignore[no-untyped-def]
    add_logs(engine, old=20_000, recent=5)
    env = env_for(settings) | {"JOB_BATCH_PAUSE_MS": "200"}
    job = subprocess.Popen(job_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: count_logs(engine) < TOTAL or job.poll() is not None, 60, interval_s=0.02)
    sent = time.monotonic()
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=30)
    took = time.monotonic() - sent
    assert job.returncode == EXIT_INTERRUPTED, err.decode()[-3000:]
    assert took < 5, f"took {took:.1f}s to stop"
    left = count_logs(engine)
    assert 5 < left < TOTAL, "the signal did not land mid-run"
    assert (TOTAL - left) % BATCH_SIZE == 0  # whole batches only
    [run] = runs(engine)
    assert run.status == "interrupted" and run.finished_at is not None
    assert run.counts == {"deleted": TOTAL - left}
    assert "interrupted" in run.error
    assert json.loads(out)["counts"] == {"deleted": TOTAL - left}
    assert "received SIGTERM" in err.decode()
    assert lock_is_free(engine)
    finish_with_a_second_run(engine, settings, left)


def test_sigterm_inside_a_batch_commits_that_batch_then_stops(settings, engine):  # type: ignore[no-untyped-def]
    """The signal lands while a DELETE waits on row locks: that batch still commits."""
    add_logs(engine, old=20_000, recent=5)
    table = APIActivityLog.__table__.name
    with engine.connect() as blocker:
        # Every row locked before the job starts: its first DELETE waits on them.
        blocker.execute(text(f"SELECT id FROM {table} FOR UPDATE")).all()
        job = subprocess.Popen(
            job_command(), env=env_for(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

        def waiting_on_a_lock() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock' AND query LIKE 'DELETE%'"
                        )
                    )
                )

        wait_until(lambda: waiting_on_a_lock() or job.poll() is not None, 60, interval_s=0.05)
        job.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert job.poll() is None, "it must finish the batch in progress, not drop it"
        blocker.rollback()  # the locks go; the DELETE proceeds and commits
        sent = time.monotonic()
        _, err = job.communicate(timeout=30)
    assert job.returncode == EXIT_INTERRUPTED, err.decode()[-3000:]
    assert time.monotonic() - sent < 5
    assert count_logs(engine) == TOTAL - BATCH_SIZE  # exactly the batch in progress
    [run] = runs(engine)
    assert run.status == "interrupted" and run.counts == {"deleted": BATCH_SIZE}
    assert lock_is_free(engine)
    finish_with_a_second_run(engine, settings, TOTAL - BATCH_SIZE)
