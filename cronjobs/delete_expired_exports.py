"""delete-expired-exports: Plane's `delete_old_s3_link` (exporter_expired_task.py), scheduled once.

Export files older than EXPORT_RETENTION_DAYS (Plane: 8; its presigned links last 7) are deleted
from S3 and their `exporters.url` cleared; the row, its key and status stay, as in Plane. The
object goes first and the link second: a run killed in between leaves a link to a missing object,
which the next run clears (S3 deletes are idempotent). A failing delete no longer aborts the loop
(Plane's does): that row keeps its link for the next run, and the run exits non-zero.
Unlike Plane, AWS_S3_ENDPOINT_URL is honoured whether or not the store is MinIO.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import text

from shared.cron.runtime import JobContext
from shared.storage import s3_client

log = logging.getLogger(__name__)

BATCH_SIZE = 100

EXPIRED = text(
    """
    SELECT id, key FROM exporters
    WHERE url IS NOT NULL AND created_at <= :cutoff AND deleted_at IS NULL
    ORDER BY created_at, id LIMIT :limit
    """
)
# What a dry run reports, under a real run's keys: every expired link is cleared, and the object
# deleted first where the row names one.
COUNT_EXPIRED = text(
    """
    SELECT count(*) AS links_cleared, count(*) FILTER (WHERE key <> '') AS objects_deleted FROM exporters
    WHERE url IS NOT NULL AND created_at <= :cutoff AND deleted_at IS NULL
    """
)
CLEAR_LINKS = text("UPDATE exporters SET url = NULL WHERE id = ANY(:ids) AND url IS NOT NULL")


class ExportDeletionFailed(RuntimeError):
    pass


def run(ctx: JobContext) -> None:
    cutoff = ctx.now - timedelta(days=ctx.settings.export_retention_days)
    if ctx.dry_run:
        with ctx.engine.connect() as conn:
            for action, n in conn.execute(COUNT_EXPIRED, {"cutoff": cutoff}).one()._asdict().items():
                ctx.count(action, n)
        return
    s3 = s3_client(ctx.settings)
    bucket = ctx.settings.aws_s3_bucket_name
    failed: set[object] = set()
    while True:
        with ctx.engine.connect() as conn:
            rows = [r for r in conn.execute(EXPIRED, {"cutoff": cutoff, "limit": BATCH_SIZE + len(failed)})]
        batch = [(row_id, key) for row_id, key in rows if row_id not in failed]
        if not batch:
            break
        cleared = []
        for row_id, key in batch:
            if key:
                try:
                    s3.delete_object(Bucket=bucket, Key=key)
                except (BotoCoreError, ClientError) as exc:
                    log.warning("could not delete export %s (%s): %s", row_id, key, exc)
                    failed.add(row_id)
                    continue
                ctx.count("objects_deleted")
            cleared.append(row_id)
        if cleared:
            with ctx.engine.begin() as conn:
                ctx.count("links_cleared", conn.execute(CLEAR_LINKS, {"ids": cleared}).rowcount)
        ctx.batch_done()
    if failed:
        ctx.count("failed", len(failed))
        raise ExportDeletionFailed(
            f"{len(failed)} export file(s) could not be deleted; links kept for the next run"
        )
