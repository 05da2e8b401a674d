"""delete-unuploaded-assets: Plane's `delete_unuploaded_file_asset` (file_asset_task.py).

Assets whose presigned upload never completed (`is_uploaded = false`) and that are older than
UNUPLOADED_ASSET_DELETE_DAYS (Plane: 7) are soft-deleted, exactly as Plane's `.delete()` on the
default manager does: `deleted_at = now()` (the real time, so retention counts from it) and
nothing else. The S3 object (if the upload half happened) and the row are left to hard-delete,
as in Plane. Batched so the UPDATE never holds many row locks; rows a writer holds are skipped
and caught by the next run.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from shared.cron.runtime import JobContext

BATCH_SIZE = 2000

SOFT_DELETE_BATCH = text(
    """
    UPDATE file_assets SET deleted_at = now() WHERE id IN (
        SELECT id FROM file_assets
        WHERE deleted_at IS NULL AND is_uploaded = false AND created_at < :cutoff
        LIMIT :limit FOR UPDATE SKIP LOCKED)
    """
)
COUNT = text(
    "SELECT count(*) FROM file_assets "
    "WHERE deleted_at IS NULL AND is_uploaded = false AND created_at < :cutoff"
)


def run(ctx: JobContext) -> None:
    params = {"cutoff": ctx.now - timedelta(days=ctx.settings.unuploaded_asset_delete_days)}
    if ctx.dry_run:
        ctx.count_query("soft_deleted", COUNT, params)
    else:
        ctx.drain("soft_deleted", SOFT_DELETE_BATCH, params, BATCH_SIZE)
