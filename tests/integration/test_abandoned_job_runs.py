"""A run record left `running` by a killed run is closed as `abandoned` by the next run of that
job (cleanup-api-logs' kill test covers the real kill), and prune-worker-state prunes it later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from shared import registry
from shared.cron.runtime import EXIT_OK, run_job
from shared.db.state import JobRun

PRUNE = registry.job("prune-worker-state")


def test_the_next_run_abandons_only_its_own_jobs_unfinished_runs_and_old_ones_are_pruned(settings, engine):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    rows = [
        ("prune-worker-state", "running", 100),  # killed long ago: abandoned now, then pruned
        ("prune-worker-state", "running", 1),  # killed yesterday: abandoned, kept
        ("cleanup-api-logs", "running", 100),  # another job's: not this run's business
        ("cleanup-api-logs", "abandoned", 100),  # abandoned long ago: pruned
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(JobRun),
            [
                {"job": j, "status": s, "started_at": now - timedelta(days=d), "counts": {}}
                for j, s, d in rows
            ],
        )
    code, ctx = run_job(PRUNE, settings, scheduled_for=now)
    assert code == EXIT_OK and ctx is not None
    assert ctx.counts["deleted_job_runs"] == 2
    with engine.connect() as conn:
        left = conn.execute(
            select(JobRun.job, JobRun.status, JobRun.error, JobRun.finished_at).order_by(JobRun.id)
        ).all()
    (kept, other, this_run) = left
    assert (kept.job, kept.status, kept.finished_at is not None) == ("prune-worker-state", "abandoned", True)
    assert kept.error.startswith("found unfinished by run ")
    assert (other.job, other.status, other.finished_at) == ("cleanup-api-logs", "running", None)
    assert (this_run.job, this_run.status) == ("prune-worker-state", "success")
