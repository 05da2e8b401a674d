"""Log and version-history cleanup: Plane's `cleanup_task` (4.7-4.11), archive first, then delete.

Five jobs share one engine. Each selects the rows due for deletion in one streaming scan of ids
(the log tables have no index on their timestamps), then per primary-key batch:

1. with an archive configured (ARCHIVE_S3_BUCKET): read the batch's full rows that are still due
   and write them as one S3 object (`shared.archive`);
2. only once that write has succeeded, delete exactly those ids in a short transaction whose WHERE
   re-checks the selection, so a row that stopped being due meanwhile survives.

Soft-deleted rows are included, as Plane's `all_objects` does. A killed run leaves whole batches
done and the next run finishes the rest; a batch archived but not yet deleted is archived again
(at-least-once, see `shared.archive`). A dry run records what a real run would, under the same keys:
`deleted` and, with an archive, `archived`.

Where this differs from Plane, on purpose:
- One retention, HARD_DELETE_AFTER_DAYS, for every job (Plane's cleanup_task defaults to 30 days
  while its hard delete uses 60).
- Newest-N ties on `created_at` are broken by id, so the scan, the re-check and a dry run agree.
- Failure policy: the first batch whose archive write fails stops the job with nothing of it
  deleted (`archive_failed` counted), and the run ends as a failure (exit 1) so the operator sees
  it. botocore has already retried the put; going on would only read the rest of the table to
  fail the same way. Plane logs a failed Mongo bulk write and carries on (and dies on any other
  error); either way the rows stay for the next run.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import text

from shared.archive import Archive, ArchiveError
from shared.cron.runtime import JobContext

log = logging.getLogger(__name__)

# Rows per delete transaction and per archive object.
BATCH_SIZE = 1000
# Versions carry whole documents (HTML, JSON and the binary CRDT state), and a batch's rows are held
# in memory while archived: smaller batches bound that (Plane's own batch is 500).
VERSION_BATCH_SIZE = 250


class ArchiveFailed(RuntimeError):
    """A batch could not be archived, so it (and the rest of the run) was not deleted."""


@dataclass(frozen=True)
class Target:
    """A table and which of its rows are due: `due` (SQL on alias `t`) is checked at delete time,
    `scan` selects the same ids in one pass, possibly by a cheaper plan."""

    table: str
    due: str
    scan: str
    batch_size: int = BATCH_SIZE


def past_retention(table: str, column: str) -> Target:
    """Rows whose `column` is at or before now - HARD_DELETE_AFTER_DAYS (NULL never is)."""
    due = f"t.{column} <= :cutoff"
    return Target(table, due, f"SELECT t.id FROM {table} t WHERE {due}")


def beyond_newest(table: str, owner: str) -> Target:
    """Rows older than the newest VERSION_HISTORY_KEEP of their `owner`.

    The scan ranks the whole table once; the re-check counts the strictly newer rows of the same
    owner (via its index), which is the same rule: ROW_NUMBER() > keep <=> at least keep rows ahead.
    """
    order = "created_at DESC, id DESC"
    ranked = f"SELECT id, row_number() OVER (PARTITION BY {owner} ORDER BY {order}) AS n FROM {table}"
    due = (
        f"(SELECT count(*) FROM {table} newer WHERE newer.{owner} = t.{owner}"
        f" AND (newer.created_at, newer.id) > (t.created_at, t.id)) >= :keep"
    )
    return Target(table, due, f"SELECT id FROM ({ranked}) ranked WHERE n > :keep", VERSION_BATCH_SIZE)


API_LOGS = past_retention("api_activity_logs", "created_at")
EMAIL_LOGS = past_retention("email_notification_logs", "sent_at")  # never sent: never purged
PAGE_VERSIONS = beyond_newest("page_versions", "page_id")
DESCRIPTION_VERSIONS = beyond_newest("issue_description_versions", "issue_id")
WEBHOOK_LOGS = past_retention("webhook_logs", "created_at")


def api_logs(ctx: JobContext) -> None:
    cleanup(ctx, API_LOGS)


def email_logs(ctx: JobContext) -> None:
    cleanup(ctx, EMAIL_LOGS)


def page_versions(ctx: JobContext) -> None:
    cleanup(ctx, PAGE_VERSIONS)


def description_versions(ctx: JobContext) -> None:
    cleanup(ctx, DESCRIPTION_VERSIONS)


def webhook_logs(ctx: JobContext) -> None:
    cleanup(ctx, WEBHOOK_LOGS)


def cleanup(ctx: JobContext, target: Target) -> None:
    params: dict[str, Any] = {
        "cutoff": ctx.now - timedelta(days=ctx.settings.hard_delete_after_days),
        "keep": ctx.settings.version_history_keep,
    }
    if ctx.dry_run:
        with ctx.engine.connect() as conn:
            due = conn.scalar(text(f"SELECT count(*) FROM ({target.scan}) due"), params) or 0
        ctx.count("deleted", due)
        if ctx.settings.archive_s3_bucket:  # every deleted row is archived first
            ctx.count("archived", due)
        return

    archive = Archive.from_settings(ctx.settings)
    run_at = ctx.now.astimezone(UTC)
    run_key = f"{run_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"  # unique per run: see shared.archive
    read_due = text(f"SELECT * FROM {target.table} t WHERE t.id = ANY(:ids) AND {target.due} ORDER BY t.id")
    delete_due = text(f"DELETE FROM {target.table} t WHERE t.id = ANY(:ids) AND {target.due}")
    size = target.batch_size

    with ctx.engine.connect().execution_options(stream_results=True, yield_per=size) as scan:
        batches = scan.execute(text(target.scan), params).scalars().partitions(size)
        for batch_no, batch in enumerate(batches):
            ids = list(batch)
            if archive is not None:
                with ctx.engine.connect() as conn:
                    rows = [dict(row) for row in conn.execute(read_due, {**params, "ids": ids}).mappings()]
                if not rows:
                    continue
                try:
                    key = archive.write(target.table, run_key, batch_no, rows, day=run_at.date())
                except ArchiveError as exc:
                    ctx.count("archive_failed")
                    raise ArchiveFailed(
                        f"{target.table}: batch {batch_no} could not be archived, so it and the rest"
                        f" were not deleted: {exc}"
                    ) from exc
                ctx.count("archived", len(rows))
                log.debug("archived %d rows of %s to %s", len(rows), target.table, key)
                ids = [row["id"] for row in rows]  # delete only what the archive holds
            with ctx.engine.begin() as conn:
                deleted = conn.execute(delete_due, {**params, "ids": ids}).rowcount
            if deleted:
                ctx.count("deleted", deleted)
            ctx.batch_done()
