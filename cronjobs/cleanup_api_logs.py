"""cleanup-api-logs: Plane's `delete_api_logs` (cleanup_task.py), without its pitfalls.

Deletes `api_activity_logs` rows created at or before now - HARD_DELETE_AFTER_DAYS, soft-deleted
rows included (Plane uses `all_objects`). The table has no index on `created_at`, so the ids are
read in one streaming scan and deleted by primary key in short transactions that re-check the
cut-off; a killed run leaves only whole batches done, and the next run finishes the rest.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, text

from shared.cron.runtime import JobContext

BATCH_SIZE = 2000

SELECT_EXPIRED = text("SELECT id FROM api_activity_logs WHERE created_at <= :cutoff")
COUNT_EXPIRED = text("SELECT count(*) FROM api_activity_logs WHERE created_at <= :cutoff")
DELETE_BATCH = text(
    "DELETE FROM api_activity_logs WHERE id = ANY(:ids) AND created_at <= :cutoff"
).bindparams(bindparam("ids"))


def run(ctx: JobContext) -> None:
    cutoff = ctx.now - timedelta(days=ctx.settings.hard_delete_after_days)
    if ctx.dry_run:
        with ctx.engine.connect() as conn:
            ctx.count("would_delete", conn.scalar(COUNT_EXPIRED, {"cutoff": cutoff}) or 0)
        return
    with ctx.engine.connect().execution_options(stream_results=True, yield_per=BATCH_SIZE) as scan:
        for ids in scan.execute(SELECT_EXPIRED, {"cutoff": cutoff}).scalars().partitions(BATCH_SIZE):
            with ctx.engine.begin() as conn:
                deleted = conn.execute(DELETE_BATCH, {"ids": list(ids), "cutoff": cutoff})
                ctx.count("deleted", deleted.rowcount)
            ctx.batch_done()
