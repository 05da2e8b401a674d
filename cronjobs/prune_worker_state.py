"""prune-worker-state: keeps plane-workers' own tables from growing without bound.

`plane_workers.processed_events` gains one row per handled event (the idempotency key). A key is
only useful while its event can still be redelivered, i.e. within the topic's retention (Kafka's
default is 7 days), so keys older than PROCESSED_EVENTS_RETENTION_DAYS (default 14) are dropped.
`plane_workers.job_runs` keeps JOB_RUNS_RETENTION_DAYS (default 90) of history; rows of runs still
marked running are kept whatever their age, since they are the trace of a killed run.
`plane_workers.webhook_deliveries` (how each delivery ended, with the payload of those a replay may
still send) follows the webhook logs' retention, HARD_DELETE_AFTER_DAYS.
Every delete goes by an indexed timestamp in bounded batches.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from shared.cron.runtime import JobContext

BATCH_SIZE = 5000

# ctid batches: processed_events has a composite key, and ctid is the cheapest handle on a row.
PRUNE_PROCESSED = text(
    """
    DELETE FROM plane_workers.processed_events WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM plane_workers.processed_events
        WHERE processed_at < :cutoff LIMIT :limit))
    """
)
COUNT_PROCESSED = text("SELECT count(*) FROM plane_workers.processed_events WHERE processed_at < :cutoff")
PRUNE_RUNS = text(
    """
    DELETE FROM plane_workers.job_runs WHERE id IN (
        SELECT id FROM plane_workers.job_runs
        WHERE started_at < :cutoff AND status <> 'running' LIMIT :limit)
    """
)
COUNT_RUNS = text(
    "SELECT count(*) FROM plane_workers.job_runs WHERE started_at < :cutoff AND status <> 'running'"
)
PRUNE_DELIVERIES = text(
    """
    DELETE FROM plane_workers.webhook_deliveries WHERE delivery_id IN (
        SELECT delivery_id FROM plane_workers.webhook_deliveries WHERE finished_at < :cutoff LIMIT :limit)
    """
)
COUNT_DELIVERIES = text("SELECT count(*) FROM plane_workers.webhook_deliveries WHERE finished_at < :cutoff")


def run(ctx: JobContext) -> None:
    settings = ctx.settings
    steps = (
        ("processed_events", PRUNE_PROCESSED, COUNT_PROCESSED, settings.processed_events_retention_days),
        ("job_runs", PRUNE_RUNS, COUNT_RUNS, settings.job_runs_retention_days),
        ("webhook_deliveries", PRUNE_DELIVERIES, COUNT_DELIVERIES, settings.hard_delete_after_days),
    )
    for table, prune, count, days in steps:
        params = {"cutoff": ctx.now - timedelta(days=days)}
        if ctx.dry_run:
            ctx.count_query(f"deleted_{table}", count, params)
        else:
            ctx.drain(f"deleted_{table}", prune, params, BATCH_SIZE)
