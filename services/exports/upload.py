"""A write-only stream into one S3 object: its parts go up as they fill, the object appears whole.

S3 makes an object visible only when it is complete: a single PUT, or a multipart upload's
CompleteMultipartUpload. So a process killed mid-export leaves no object (an unfinished multipart
upload at most, which the next attempt aborts before it starts: `abort_unfinished`), and a second
attempt for the same key replaces the object instead of adding one. Memory is one part buffer.

An artefact smaller than one part is sent with one PUT (one request instead of three).
"""

from __future__ import annotations

import io
import logging
from typing import Any

log = logging.getLogger(__name__)

# S3 takes parts of 5 MiB to 5 GiB (the last may be smaller) and at most 10,000 of them: 8 MiB
# parts allow 80 GB objects, far beyond any export.
PART_SIZE = 8 * 1024 * 1024


class S3Upload(io.RawIOBase):
    def __init__(self, s3: Any, bucket: str, key: str, content_type: str, part_size: int = PART_SIZE) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0
        self.completed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        self.size += len(view)
        while len(self._buffer) >= self._part_size:
            self._send_part(bytes(self._buffer[: self._part_size]))
            del self._buffer[: self._part_size]
        return len(view)

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        """Make the object visible: everything written so far, whole."""
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), ContentType=self._content_type
            )
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self.completed = True

    def abort(self) -> None:
        """Drop what was sent; nothing becomes visible. Best effort: the next attempt's
        `abort_unfinished` catches an upload this could not abort."""
        self._buffer.clear()
        if self._upload_id is not None and not self.completed:
            try:
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            except Exception as exc:  # the upload stays unfinished, invisible, until the next attempt
                log.warning("could not abort the multipart upload of %s: %s", self._key, exc)
            self._upload_id = None


def abort_unfinished(s3: Any, bucket: str, key: str) -> int:
    """Abort every unfinished multipart upload of `key` (a killed attempt's); returns how many."""
    aborted = 0
    listing = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)
    for upload in listing.get("Uploads", []):
        if upload["Key"] == key:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            aborted += 1
    return aborted
