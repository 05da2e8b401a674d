"""`plane.issue_export.v1`: Plane's issue_export_task, streamed, private, written once per token.

Flow (Plane's, plane-bgtasks §5.12): the `exporters` row (by token) goes to `processing`; the rows
are written in the provider's format, one file per project (`{slug}-{project_id}.{ext}`) when
`multiple`, else one (`{slug}-{workspace_id}.{ext}`), into one ZIP_DEFLATED zip; the zip goes to
`{workspace_id}/export-{slug}-{token[:6]}-{date}.zip`; the row gets `url` (presigned for
EXPORT_LINK_EXPIRY_S, Plane's 7 days), `status=completed` and `key`. An unsupported provider
leaves `failed` with Plane's reason; so does an S3 refusal (bucket missing, access denied).

What differs from Plane, and why:
- Nothing is held whole: pages of rows -> format writer -> zip entry -> S3 parts (upload.py).
- The object is private in every store. Plane's MinIO path made it `public-read`, so its link
  never expired; here the link's host comes from EXPORT_PRESIGN_ENDPOINT_URL (MinIO's public
  address), with no `/uploads` rewriting.
- `{date}` is the day the export was requested (`exporters.created_at`, UTC), not the day the
  upload ended: every attempt for a token writes the same key, so a retry, a redelivery or a
  restart after a kill replaces that one object and never adds a second.
- One attempt per token at a time: a session-level advisory lock on a connection of its own,
  which PostgreSQL releases when the process dies. A second member that gets the event meanwhile
  sends it to a retry tier; a completed token is not exported again (the row says it is done).
- Failures that another attempt can cure (S3 or PostgreSQL unreachable, a 5xx) are raised to the
  runtime (retry tiers, or the partition held while PostgreSQL is down), not written as `failed`.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import Engine, func, select, text

from services.exports.formats import PROVIDERS, WRITERS, unsupported
from services.exports.issue_rows import issue_rows
from services.exports.upload import S3Upload, abort_unfinished
from shared.cron.runtime import lock_key
from shared.kafka.handler import PermanentError
from shared.settings import Settings
from shared.storage import s3_client

log = logging.getLogger(__name__)

EXPORTER = text(
    "SELECT id, status, key, url, initiated_by_id, created_at FROM exporters"
    " WHERE token = :token AND deleted_at IS NULL"
)
SET_PROCESSING = text("UPDATE exporters SET status = 'processing' WHERE token = :token")
SET_COMPLETED = text("UPDATE exporters SET status = 'completed', url = :url, key = :key WHERE token = :token")
SET_FAILED = text("UPDATE exporters SET status = 'failed', reason = :reason WHERE token = :token")
# After the DLQ took the event: another member may have completed it meanwhile (ExportBusy).
SET_GAVE_UP = text(
    "UPDATE exporters SET status = 'failed', reason = :reason WHERE token = :token AND status <> 'completed'"
)
MAX_REASON_CHARS = 1000
# S3 answers that no retry changes: the operator has to fix the bucket or the credentials.
PERMANENT_S3_CODES = frozenset(
    {"NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)


class ExportBusy(Exception):
    """Another process is exporting this token right now: try again later (a retry tier)."""


def export_key(workspace_id: str, slug: str, token: str, created_at: Any) -> str:
    return f"{workspace_id}/export-{slug}-{token[:6]}-{created_at.date().isoformat()}.zip"


def file_names(data: Mapping[str, Any], extension: str) -> list[tuple[str, list[str]]]:
    """(file name, its projects) of each file of the zip, in Plane's order."""
    slug, projects = data["slug"], [str(p) for p in data["project_ids"]]
    if data.get("multiple"):
        return [(f"{slug}-{project}.{extension}", [project]) for project in projects]
    return [(f"{slug}-{data['workspace_id']}.{extension}", projects)]


def presign(settings: Settings, key: str) -> str:
    endpoint = settings.export_presign_endpoint_url or settings.aws_s3_endpoint_url or None
    return str(
        s3_client(settings, endpoint_url=endpoint).generate_presigned_url(
            "get_object",
            Params={"Bucket": settings.aws_s3_bucket_name, "Key": key},
            ExpiresIn=settings.export_link_expiry_s,
        )
    )


def run(engine: Engine, settings: Settings, data: Mapping[str, Any], check_stop: Callable[[], None]) -> str:
    """Export one token; returns what happened ('completed', 'failed', 'done-before')."""
    token = data["token_id"]
    with engine.connect() as lock_conn:
        key = lock_key(f"export:{token}")
        locked = lock_conn.scalar(select(func.pg_try_advisory_lock(key)))
        lock_conn.commit()
        if not locked:
            raise ExportBusy(f"export {token[:6]}... is running in another process")
        try:
            return _export(engine, settings, data, check_stop)
        finally:
            lock_conn.execute(select(func.pg_advisory_unlock(key)))
            lock_conn.commit()


def _export(
    engine: Engine, settings: Settings, data: Mapping[str, Any], check_stop: Callable[[], None]
) -> str:
    token = data["token_id"]
    with engine.begin() as conn:
        exporter = conn.execute(EXPORTER, {"token": token}).first()
        if exporter is None:
            raise PermanentError(f"no exporters row with token {token[:6]}...")
        if exporter.status == "completed" and exporter.key:
            return "done-before"  # a redelivery: its object and link exist
        conn.execute(SET_PROCESSING, {"token": token})
    provider = data["provider"]
    if provider not in PROVIDERS:
        _fail(engine, token, unsupported(provider))
        return "failed"

    key = export_key(data["workspace_id"], data["slug"], token, exporter.created_at)
    bucket = settings.aws_s3_bucket_name
    s3 = s3_client(settings)
    try:
        aborted = abort_unfinished(s3, bucket, key)
        if aborted:
            log.info("aborted %d unfinished upload(s) of %s left by an earlier attempt", aborted, key)
        upload = S3Upload(s3, bucket, key, "application/zip")
        try:
            rows = _write_zip(engine, settings, data, str(exporter.initiated_by_id), upload, check_stop)
            upload.complete()
        finally:
            if not upload.completed:
                upload.abort()
        url = presign(settings, key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in PERMANENT_S3_CODES:
            raise
        _fail(engine, token, f"{code}: {exc}")
        return "failed"
    with engine.begin() as conn:
        conn.execute(SET_COMPLETED, {"token": token, "url": url, "key": key})
    log.info("export written", extra={"fields": {"key": key, "rows": rows, "bytes": upload.size}})
    return "completed"


def _write_zip(
    engine: Engine,
    settings: Settings,
    data: Mapping[str, Any],
    member_id: str,
    out: S3Upload,
    check_stop: Callable[[], None],
) -> int:
    writer_class = WRITERS[data["provider"]]
    pause_s = settings.export_page_pause_ms / 1000
    written = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, projects in file_names(data, writer_class.extension):
            # force_zip64: the size is not known up front, and may pass 2 GiB.
            with archive.open(name, "w", force_zip64=True) as entry:
                writer = writer_class(entry)  # type: ignore[arg-type]
                rows = issue_rows(
                    engine, data["workspace_id"], projects, member_id, settings.export_page_size,
                    pause_s, check_stop,
                )  # fmt: skip
                for row in rows:
                    writer.write(row)
                    written += 1
                writer.close()
    return written


def gave_up(engine: Engine, token: str, reason: str) -> bool:
    """The event is in the DLQ: the row says `failed` (what Plane's UI shows), not `processing`.
    Not while another attempt holds the token's lock (its retries ran out waiting for it): that
    attempt writes the outcome. True when the row was marked."""
    with engine.connect() as conn:
        key = lock_key(f"export:{token}")
        if not conn.scalar(select(func.pg_try_advisory_xact_lock(key))):
            log.warning("export given up while another attempt runs; it decides: %s", reason)
            return False
        marked = conn.execute(SET_GAVE_UP, {"token": token, "reason": reason[:MAX_REASON_CHARS]}).rowcount
        conn.commit()
    log.warning("export given up: %s", reason)
    return bool(marked)


def _fail(engine: Engine, token: str, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(SET_FAILED, {"token": token, "reason": reason})
    log.warning("export failed: %s", reason)
