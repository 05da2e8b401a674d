"""migrate-workspace, step 4: the workspace's file_assets objects into MIGRATE_S3_TARGET_BUCKET.

Same endpoint and credentials as the uploads bucket (AWS_S3_*), so a server-side copy_object;
an object the target already holds with the source's size is skipped (a rerun copies nothing),
a source object that is missing (never uploaded, already purged) is logged. Only `s3_copied` is
a count (what changed); skipped and missing objects go to the log line at the end.
"""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError
from sqlalchemy import Connection, text

from cronjobs.migrate_workspace_plan import ROWS
from shared.cron.runtime import JobContext
from shared.storage import s3_client

log = logging.getLogger(__name__)

BATCH = 500


def _size(client: object, bucket: str, key: str) -> int | None:
    try:
        return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])  # type: ignore[attr-defined]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def copy_objects(ctx: JobContext, src: Connection) -> None:
    s = ctx.settings
    client = s3_client(s)
    after, skipped, missing = "", 0, 0
    while True:
        rows = src.execute(
            text(
                f"SELECT m.id, f.asset FROM {ROWS} m JOIN file_assets f ON f.id = CAST(m.id AS uuid) "
                "WHERE m.tbl = 'file_assets' AND m.id > :a AND f.asset <> '' ORDER BY m.id LIMIT :n"
            ),
            {"a": after, "n": BATCH},
        ).all()
        src.commit()
        for row in rows:
            size = _size(client, s.aws_s3_bucket_name, row.asset)
            if size is None:
                missing += 1
                log.warning("file_assets %s: no object %s in the source bucket", row.id, row.asset)
                continue
            if _size(client, s.migrate_s3_target_bucket, row.asset) == size:
                skipped += 1
                continue
            client.copy_object(
                Bucket=s.migrate_s3_target_bucket,
                Key=row.asset,
                CopySource={"Bucket": s.aws_s3_bucket_name, "Key": row.asset},
            )
            ctx.count("s3_copied")
        if len(rows) < BATCH:
            break
        after = rows[-1].id
        ctx.batch_done()
    log.info("s3 objects: %d already in the target, %d missing in the source", skipped, missing)
