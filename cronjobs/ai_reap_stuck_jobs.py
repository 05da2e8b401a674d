"""ai-reap-stuck-jobs: vectorisation jobs queued or running for more than AI_STUCK_JOB_DAYS fail.

A job stuck that long (a runner that keeps dying on it, a lease that is renewed by something that
no longer makes progress) holds the workspace's one active slot, so nothing else can queue it. It
becomes `failed` with an error that says so; the next plan sync or reconcile queues it again.
Age counts from the job's creation (the seed's rule), by the run's scheduled time; exactly
AI_STUCK_JOB_DAYS old is not yet stuck. Bounded batches, committed as they go.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from shared.cron.runtime import JobContext

BATCH_SIZE = 500
_STUCK = (
    "FROM plane_workers.vectorization_jobs WHERE status IN ('queued', 'running') AND created_at < :cutoff"
)
REAP = text(
    f"""
    UPDATE plane_workers.vectorization_jobs
    SET status = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = :now, updated_at = :now,
        error = 'stuck: ' || status || ' for more than ' || :days || ' days (created '
                || to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                || '); the next plan sync or reconcile queues the workspace again'
    WHERE id IN (SELECT id {_STUCK} ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)
COUNT = text(f"SELECT count(*) {_STUCK}")


def run(ctx: JobContext) -> None:
    days = ctx.settings.ai_stuck_job_days
    params = {"cutoff": ctx.now - timedelta(days=days), "now": ctx.now, "days": f"{days:g}"}
    if ctx.dry_run:
        ctx.count_query("failed", COUNT, params)
    else:
        ctx.drain("failed", REAP, params, BATCH_SIZE)
