"""prune-worker-state: keeps plane-workers' own tables from growing without bound.

`plane_workers.processed_events` gains one row per handled event (the idempotency key). A key is
only useful while its event can still be redelivered, i.e. within the topic's retention (Kafka's
default is 7 days), so keys older than PROCESSED_EVENTS_RETENTION_DAYS (default 14) are dropped.
`plane_workers.job_runs` keeps JOB_RUNS_RETENTION_DAYS (default 90) of history; rows of runs still
marked running are kept whatever their age, since they are the trace of a killed run.
`plane_workers.webhook_deliveries` (how each delivery ended, with the payload of those a replay may
still send) follows the webhook logs' retention, HARD_DELETE_AFTER_DAYS, and so do the journal rows
of attempts already logged (`webhook_attempts`, logged=true: kept only to number re-sends after a
kill, which no delivery that old can still need).
`plane_workers.email_digests` keeps each settled digest PROCESSED_EVENTS_RETENTION_DAYS (its logs
are marked by then; one still 'sending' is settled by the next digest run and is kept).
`plane_workers.issue_origins` drops origins not refreshed for PROCESSED_EVENTS_RETENTION_DAYS:
every activity stores its issue's origin again before any mail about it is built, and a
missing origin falls back to WEB_URL.
`plane_workers.soft_delete_subtrees` (a soft-delete cascade's collection) goes with its rows once
discarded (its root restored or stamped anew) or not advanced for PROCESSED_EVENTS_RETENTION_DAYS
(its event chain is long gone; soft-deletes collects anew any it finds a day old): rows first,
then the emptied subtrees.
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
_ATTEMPTS = "FROM plane_workers.webhook_attempts WHERE logged AND started_at < :cutoff"
PRUNE_ATTEMPTS = text(
    "DELETE FROM plane_workers.webhook_attempts"
    f" WHERE ctid = ANY(ARRAY(SELECT ctid {_ATTEMPTS} LIMIT :limit))"
)
COUNT_ATTEMPTS = text(f"SELECT count(*) {_ATTEMPTS}")
_DIGESTS = "FROM plane_workers.email_digests WHERE created_at < :cutoff AND status <> 'sending'"
PRUNE_DIGESTS = text(
    f"DELETE FROM plane_workers.email_digests WHERE key IN (SELECT key {_DIGESTS} LIMIT :limit)"
)
COUNT_DIGESTS = text(f"SELECT count(*) {_DIGESTS}")
_ORIGINS = "FROM plane_workers.issue_origins WHERE updated_at < :cutoff"
PRUNE_ORIGINS = text(
    f"DELETE FROM plane_workers.issue_origins WHERE issue_id IN (SELECT issue_id {_ORIGINS} LIMIT :limit)"
)
COUNT_ORIGINS = text(f"SELECT count(*) {_ORIGINS}")
_GONE = "(s.phase = 'discarded' OR s.updated_at < :cutoff)"
_SUBTREE_ROWS = (
    "FROM plane_workers.soft_delete_subtrees s JOIN plane_workers.soft_delete_subtree_rows r "
    f"ON r.subtree_id = s.id WHERE {_GONE}"
)
PRUNE_SUBTREE_ROWS = text(
    "DELETE FROM plane_workers.soft_delete_subtree_rows"
    f" WHERE ctid = ANY(ARRAY(SELECT r.ctid {_SUBTREE_ROWS} LIMIT :limit))"
)
COUNT_SUBTREE_ROWS = text(f"SELECT count(*) {_SUBTREE_ROWS}")
_SUBTREES = (
    f"FROM plane_workers.soft_delete_subtrees s WHERE {_GONE} AND NOT EXISTS "
    "(SELECT 1 FROM plane_workers.soft_delete_subtree_rows r WHERE r.subtree_id = s.id)"
)
PRUNE_SUBTREES = text(
    f"DELETE FROM plane_workers.soft_delete_subtrees WHERE id IN (SELECT s.id {_SUBTREES} LIMIT :limit)"
)
# A dry run prunes no rows first: every subtree gone counts.
COUNT_SUBTREES = text(f"SELECT count(*) FROM plane_workers.soft_delete_subtrees s WHERE {_GONE}")


def run(ctx: JobContext) -> None:
    settings = ctx.settings
    steps = (
        ("processed_events", PRUNE_PROCESSED, COUNT_PROCESSED, settings.processed_events_retention_days),
        ("job_runs", PRUNE_RUNS, COUNT_RUNS, settings.job_runs_retention_days),
        ("webhook_deliveries", PRUNE_DELIVERIES, COUNT_DELIVERIES, settings.hard_delete_after_days),
        ("webhook_attempts", PRUNE_ATTEMPTS, COUNT_ATTEMPTS, settings.hard_delete_after_days),
        ("email_digests", PRUNE_DIGESTS, COUNT_DIGESTS, settings.processed_events_retention_days),
        ("issue_origins", PRUNE_ORIGINS, COUNT_ORIGINS, settings.processed_events_retention_days),
        (
            "soft_delete_subtree_rows",
            PRUNE_SUBTREE_ROWS,
            COUNT_SUBTREE_ROWS,
            settings.processed_events_retention_days,
        ),
        ("soft_delete_subtrees", PRUNE_SUBTREES, COUNT_SUBTREES, settings.processed_events_retention_days),
    )
    for table, prune, count, days in steps:
        params = {"cutoff": ctx.now - timedelta(days=days)}
        if ctx.dry_run:
            ctx.count_query(f"deleted_{table}", count, params)
        else:
            ctx.drain(f"deleted_{table}", prune, params, BATCH_SIZE)
