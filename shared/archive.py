"""Archive sink for rows a cleanup job is about to delete: gzip JSON lines on S3, one object per batch.

Plane archives cleaned-up logs to MongoDB and deletes a batch only once that write succeeded
(cleanup_task.py); plane-workers does the same with S3, which every Plane deployment already has.
Archiving is on when ARCHIVE_S3_BUCKET is set.

Object key: ``<ARCHIVE_S3_PREFIX><table>/<YYYY>/<MM>/<DD>/<run-key>-<batch:06d>.jsonl.gz``, where the
date is the run's UTC date, run-key names one run and batch counts from 0 within it. The key is a
function of (run, batch) only, so a batch written again by the same run overwrites its object. A
run killed between archiving a batch and deleting it leaves those rows in place; the next run
archives them again under its own key. Archiving is therefore at-least-once: readers key rows by
``id`` (copies of one id are the same row).

Object body: gzip (mtime 0, so equal rows give equal bytes) of UTF-8 JSON lines, one object per
row, keys the column names in table order. Values:

- NULL -> ``null``; text, integers, booleans -> JSON as is; json/jsonb columns -> nested JSON;
- uuid -> its canonical string; timestamptz -> ISO 8601 with offset (``2024-05-01T02:30:00+00:00``);
  date and time -> ISO 8601; numeric -> decimal string (exact); inet -> its string;
- bytea -> ``{"$base64": "<standard base64>"}``. A jsonb value of that very shape would read the
  same, so decode by the column's type (in Plane's cleaned-up tables only ``description_binary`` is
  bytea);
- any other type is an error, never Python's repr.

Objects carry S3 metadata ``format`` (FORMAT), ``table`` and ``rows``; no ACL is set, so they are as
private as the bucket (and encrypted by its default encryption, if any).
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from shared.settings import Settings
from shared.storage import s3_client

FORMAT = "plane-workers-archive/1"
BYTES_MARKER = "$base64"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Written as str(value): exact and unambiguous for these types.
AS_STRING = (
    uuid.UUID,
    Decimal,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)


class ArchiveError(Exception):
    """An archive object could not be written: the rows in it must not be deleted."""


def _json_default(value: object) -> object:
    if isinstance(value, AS_STRING):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return {BYTES_MARKER: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot archive a value of type {type(value).__name__}")


def encode_rows(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The gzip JSON-lines body of an archive object."""
    lines = (
        json.dumps(
            dict(row), default=_json_default, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
        for row in rows
    )
    return gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)


def decode_rows(body: bytes) -> list[dict[str, Any]]:
    """The rows of an archive object, values as written (see the module docstring)."""
    return [json.loads(line) for line in gzip.decompress(body).decode().splitlines() if line]


@dataclass(frozen=True)
class Archive:
    client: Any
    bucket: str
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Archive | None:
        """The configured archive, or None when ARCHIVE_S3_BUCKET is empty (archiving off)."""
        if not settings.archive_s3_bucket:
            return None
        prefix = settings.archive_s3_prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(s3_client(settings), settings.archive_s3_bucket, prefix)

    def key(self, table: str, job_run_key: str, batch_no: int, day: date) -> str:
        for name in (table, job_run_key):
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} cannot be part of an archive key")
        return f"{self.prefix}{table}/{day:%Y/%m/%d}/{job_run_key}-{batch_no:06d}.jsonl.gz"

    def write(
        self,
        table: str,
        job_run_key: str,
        batch_no: int,
        rows: Sequence[Mapping[str, Any]],
        *,
        day: date | None = None,
    ) -> str:
        """Store one batch as one object and return its key; raise ArchiveError unless S3 confirmed it.

        `day` is the run's date (default: today, UTC); pass it so a run crossing midnight keeps
        writing under one date.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(table, job_run_key, batch_no, day or datetime.now(UTC).date())
        try:
            body = encode_rows(rows)
        except (TypeError, ValueError) as exc:  # a type the format has no encoding for, NaN
            raise ArchiveError(f"{table}: {exc}") from exc
        try:
            # put_object returns only once S3 has stored the object (botocore retries transient
            # errors itself and raises on anything else), so a return is the confirmation.
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/gzip",
                Metadata={"format": FORMAT, "table": table, "rows": str(len(rows))},
            )
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveError(f"s3://{self.bucket}/{key}: {exc}") from exc
        return key
