"""Consumer `imports`: `plane.issue_import.v1`, issues into a project from our export or GitHub.

Plane CE has no importer at HEAD; this one reads the JSON and CSV files our export writes (from
the uploads bucket, AWS_S3_BUCKET_NAME, under the workspace's own prefix `{workspace_id}/`) and a
GitHub repository's issues through the REST API (services/imports/github.py). Mapping and
idempotency: services/imports/writer.py. The event never carries a token: GITHUB_TOKEN does.

idempotency="handler", as soft-deletes: batches commit as they go (each skips the external ids
that exist), and the event is claimed when its import is done. One call works at most
CALL_BUDGET_S (the poll loop waits for it); a longer import hands itself on as a continuation
event on its own topic, keyed by the same project, with a cursor saying where to go on. A spent
GitHub rate limit that resets later than IMPORT_GITHUB_MAX_WAIT_S is raised to the retry tiers
(the consumer's delays span more than GitHub's one-hour window), after a continuation when the
call had imported something, so a retry does not read those pages again.

Bad input is dead-lettered at once (PermanentError): a file that is not the format it claims, a
key outside the workspace's prefix or missing, a file over IMPORT_MAX_FILE_BYTES, a project or
actor that does not exist, a repository GitHub refuses (401, 404). GitHub unreachable or 5xx,
S3 unreachable: retried.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from functools import cache
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy.dialects.postgresql import insert

from services.imports import run as importer
from services.imports.github import GitHubRefused, client_for
from services.imports.mapping import BadSource
from services.imports.writer import ProjectNotFound
from shared.db.engine import get_engine, session_factory
from shared.db.state import ProcessedEvent
from shared.events import Event, new_event
from shared.http.client import SafeHttpClient
from shared.kafka import claims
from shared.kafka.handler import HandlerContext, PermanentError
from shared.settings import Settings
from shared.storage import s3_client

log = logging.getLogger(__name__)

EVENT_TYPE = "plane.issue_import.v1"
TOPIC = "imports"
NAMESPACE = uuid.UUID("6b1f0c2e-8d4a-5f3b-9e27-4a1c3d5e7f90")
CALL_BUDGET_S = 15.0
MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "404", "AccessDenied"})


@cache
def _client(settings: Settings) -> SafeHttpClient:
    return client_for(settings)


def read_file(settings: Settings, data: dict[str, Any]) -> bytes:
    """The import file from the uploads bucket, only under the workspace's prefix, size-capped."""
    key = str(data.get("key") or "")
    if not key.startswith(f"{data['workspace_id']}/") or ".." in key.split("/"):
        raise PermanentError(f"key {key!r} is not under the workspace's prefix {data['workspace_id']}/")
    s3, bucket = s3_client(settings), settings.aws_s3_bucket_name
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > settings.import_max_file_bytes:
            limit = settings.import_max_file_bytes
            raise PermanentError(f"{key}: {head['ContentLength']} bytes, over IMPORT_MAX_FILE_BYTES={limit}")
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read(settings.import_max_file_bytes + 1))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING:
            raise PermanentError(f"{key} in bucket {bucket}: {code}") from None
        raise


def handle(event: Event, ctx: HandlerContext) -> None:
    url = ctx.settings.database_url
    with session_factory(url).begin() as session:
        if claims.processed(session, ctx.consumer, event.id):
            return
    data = dict(event.data)
    budget = min(CALL_BUDGET_S, ctx.settings.kafka_max_poll_interval_ms / 4000)
    deadline = time.monotonic() + budget
    try:
        body = read_file(ctx.settings, data) if data["kind"] != "github" else None
        outcome = importer.run(
            get_engine(url),
            ctx.settings,
            data,
            body=body,
            client=_client(ctx.settings) if body is None else None,
            deadline=deadline,
        )
    except (BadSource, ProjectNotFound, GitHubRefused, ValueError) as exc:
        raise PermanentError(f"{data['kind']} import into {data['project_id']}: {exc}") from None
    if outcome.status == "paused":
        # Before the claim: a kill in between sends the same continuation again (same id).
        ctx.producer.send(TOPIC, continuation(event, outcome.cursor or {}), key=data["project_id"])
    with get_engine(url).begin() as conn:
        conn.execute(
            insert(ProcessedEvent)
            .values(consumer=ctx.consumer, event_id=uuid.UUID(event.id))
            .on_conflict_do_nothing()
        )
    log.info(
        "import %s into %s: %s %s",
        data["kind"],
        data["project_id"],
        outcome.status + (" (rate limited)" if outcome.rate_limited else ""),
        json.dumps(dict(outcome.counts), sort_keys=True),
    )


def continuation(event: Event, cursor: dict[str, Any]) -> Event:
    data = {**event.data, "cursor": cursor}
    event_id = uuid.uuid5(NAMESPACE, f"{event.id}:{json.dumps(cursor, sort_keys=True)}")
    return new_event(EVENT_TYPE, data, event_id=str(event_id))
