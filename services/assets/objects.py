"""S3 calls of the assets consumer, each failure sorted by what it means for the event.

- The object is not there (404, NoSuchKey): `ObjectMissing`, an outcome the caller records.
- S3 cannot be reached, or refuses our credentials or bucket: `DependencyUnavailable`, so the
  runtime holds the partition and tries again (every event would fail alike; no retry is spent).
- Anything else (a 5xx after boto3's own retries, throttling): raised as is, for the retry tiers.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from shared.kafka.handler import DependencyUnavailable
from shared.settings import Settings
from shared.storage import s3_client

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_MISCONFIGURED = frozenset(
    {
        "403",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "AllAccessDisabled",
    }
)


class ObjectMissing(LookupError):
    """The S3 object an asset row names does not exist."""


@cache
def _client(settings: Settings) -> Any:
    return s3_client(settings)


def head(settings: Settings, key: str) -> dict[str, Any]:
    """HEAD the object: Plane's storage_metadata shape (S3Storage.get_object_metadata)."""
    try:
        response = _client(settings).head_object(Bucket=settings.aws_s3_bucket_name, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise _sorted(exc, key) from exc
    modified = response.get("LastModified")
    return {
        "ContentType": response.get("ContentType"),
        "ContentLength": response.get("ContentLength"),
        "LastModified": modified.isoformat() if modified else None,
        "ETag": response.get("ETag"),
        "Metadata": response.get("Metadata", {}),
    }


def copy(settings: Settings, source: str, destination: str) -> None:
    """Server-side copy in Plane's bucket; copying again to the same key gives the same object."""
    bucket = settings.aws_s3_bucket_name
    try:
        _client(settings).copy_object(
            Bucket=bucket, CopySource={"Bucket": bucket, "Key": source}, Key=destination
        )
    except (ClientError, BotoCoreError) as exc:
        raise _sorted(exc, source) from exc


def _sorted(exc: ClientError | BotoCoreError, key: str) -> Exception:
    if isinstance(exc, ConnectionError | HTTPClientError):
        return DependencyUnavailable(f"S3 unreachable: {exc}")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            return ObjectMissing(f"no S3 object {key!r}")
        if code in _MISCONFIGURED:
            return DependencyUnavailable(f"S3 refuses plane-workers ({code}): check bucket and credentials")
    return exc
