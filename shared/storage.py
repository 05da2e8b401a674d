"""S3 access for every worker: one client factory, configured the way Plane's uploader is.

Plane's `delete_old_s3_link` ignores AWS_S3_ENDPOINT_URL unless USE_MINIO is set (its bug §7.10);
here the endpoint, when configured, is always used, so MinIO, moto and any S3-compatible store work.
"""

from __future__ import annotations

from typing import Any

from shared.settings import Settings


def s3_client(settings: Settings, endpoint_url: str | None = None) -> Any:
    """`endpoint_url` overrides AWS_S3_ENDPOINT_URL (presigned links for a public host)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or settings.aws_s3_endpoint_url or None,
        region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id or None,
        aws_secret_access_key=settings.aws_secret_access_key or None,
        config=Config(
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )
