"""ai-docs-sync: Plane's documentation (AI_DOCS_REPOSITORIES) into the index, as global docs.

Per repository (shared/embeddings/docs_github.py; one on local disk, for air-gapped installs,
through `git` by shared/embeddings/docs_local.py, the same way): the head commit; unchanged since the last
processed one (docs_sync_state.last_sha): nothing more. Else the files changed since then, or
every file on a first run (or `plane-workers ai feed-docs`, or when GitHub cannot list the change
completely), filtered by path prefix and extension; each is fetched raw at the head commit and
sent as a `plane.embed.v1` upsert that carries its text (entity type `doc`, no workspace), each
removed one as a delete. A full feed also deletes what the index holds of the repository that is
no longer there. The embeddings consumer embeds them (services/embeddings/payload.py: inline
documents); unchanged texts cost nothing there (content hash).

Versions are the run's scheduled time, so a newer sync always wins over an older one. Event ids
come from (repository, head commit, path, action): a run killed half-way, which has not stored
the new SHA, sends the same events again, dropped by the consumer. The SHA is stored once every
event of the repository is acknowledged.

A spent rate limit (403/429 with its reset headers) is recorded (docs_sync_state.retry_after,
last_error) and the repository is left until then; the run goes on with the others and exits 0,
so the CronJob does not retry into the same limit. Other failures are recorded per repository and
the run exits 1 after trying every repository.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from shared.cron.runtime import JobContext
from shared.embeddings import live_sync
from shared.embeddings.docs_github import DocsSource, GitHub, GitHubError, RateLimited, parse_sources
from shared.embeddings.docs_local import LocalGit
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.http.addresses import Allowlist
from shared.http.client import SafeHttpClient

log = logging.getLogger(__name__)

DOC = "doc"  # shared.embeddings.chunking.DOC
PAGE = 20  # files fetched and sent per batch
ENVELOPE_ROOM = 16 * 1024  # an event's bytes beyond its text

_STATE = text("SELECT last_sha, retry_after FROM plane_workers.docs_sync_state WHERE source = :source")
_SAVE = text(
    """
    INSERT INTO plane_workers.docs_sync_state (source, last_sha, files, last_error, retry_after, synced_at,
                                               updated_at)
    VALUES (:source, :sha, :files, :error, :retry_after, :synced_at, now())
    ON CONFLICT (source) DO UPDATE
    SET last_sha = coalesce(excluded.last_sha, docs_sync_state.last_sha),
        files = CASE WHEN excluded.last_sha IS NULL THEN docs_sync_state.files ELSE excluded.files END,
        last_error = excluded.last_error, retry_after = excluded.retry_after,
        synced_at = coalesce(excluded.synced_at, docs_sync_state.synced_at), updated_at = now()
    """
)
_INDEXED = text(
    """
    SELECT entity_id FROM plane_workers.indexed_documents
    WHERE entity_type = 'doc' AND workspace_id IS NULL AND content_hash <> ''
      AND starts_with(entity_id, :prefix)
    """
)


@dataclass(frozen=True)
class Plan:
    upserts: list[str]  # paths
    deletes: list[str]  # entity ids
    full: bool


def run(ctx: JobContext) -> None:
    sync(ctx, full=False)


def full_feed(ctx: JobContext) -> None:
    """`plane-workers ai feed-docs`: every file of every repository, whatever was processed."""
    sync(ctx, full=True)


def sync(ctx: JobContext, *, full: bool) -> None:
    settings = ctx.settings
    sources = parse_sources(settings.ai_docs_repositories)
    if not sources:
        log.info("AI_DOCS_REPOSITORIES is empty: no documentation to sync")
        return
    max_text = max(settings.event_max_bytes - ENVELOPE_ROOM, 1024)
    client = SafeHttpClient(Allowlist.parse(settings.ai_docs_allowed_ips), default_deadline_s=60.0)
    github = GitHub(settings, client, max_file_bytes=max_text)
    local = LocalGit(max_file_bytes=max_text)
    producer = None if ctx.dry_run else EventProducer(settings)
    failed = []
    try:
        for source in sources:
            try:
                _source(ctx, local if source.path is not None else github, producer, source, full)
            except RateLimited as exc:
                log.warning("%s: %s; left until then", source.key, exc)
                ctx.count("rate_limited")
                _save(ctx, source, None, 0, str(exc), exc.reset_at)
            except GitHubError as exc:
                log.error("%s: %s", source.key, exc)
                failed.append(source.key)
                _save(ctx, source, None, 0, str(exc), None)
    finally:
        client.close()
        if producer is not None:
            producer.close()
    if failed:
        raise RuntimeError(f"documentation sync failed for {', '.join(failed)} (docs_sync_state.last_error)")


def _save(
    ctx: JobContext, source: DocsSource, sha: str | None, files: int, error: str | None,
    retry_after: datetime | None,
) -> None:  # fmt: skip
    if ctx.dry_run:
        return
    with ctx.engine.begin() as conn:
        conn.execute(
            _SAVE,
            {"source": source.key, "sha": sha, "files": files, "error": error, "retry_after": retry_after,
             "synced_at": ctx.now if sha else None},
        )  # fmt: skip


def _source(
    ctx: JobContext, github: GitHub | LocalGit, producer: EventProducer | None, source: DocsSource, full: bool
) -> None:
    with ctx.engine.connect() as conn:
        state = conn.execute(_STATE, {"source": source.key}).first()
    if state is not None and state.retry_after is not None and state.retry_after > ctx.now:
        log.warning("%s: rate limited until %s; not asked", source.key, state.retry_after)
        return
    head = github.head(source)
    last = None if (full or state is None) else state.last_sha
    if last == head:
        return
    plan = _plan(ctx, github, source, last, head)
    if ctx.dry_run:
        ctx.count("documents", len(plan.upserts))
        ctx.count("deleted", len(plan.deletes))
        return
    assert producer is not None
    if plan.deletes:
        producer.send_many(live_sync.TOPIC, [_event(ctx, source, head, i, None) for i in plan.deletes])
        ctx.count("deleted", len(plan.deletes))
    for start in range(0, len(plan.upserts), PAGE):
        events = []
        for path in plan.upserts[start : start + PAGE]:
            body = github.raw(source, head, path)
            if body is None:
                log.warning("%s: %s is larger than an event may carry; not indexed", source.key, path)
                ctx.count("too_large")
                continue
            events.append(_event(ctx, source, head, source.entity_id(path), body))
        producer.send_many(live_sync.TOPIC, events)
        ctx.count("documents", len(events))
        ctx.batch_done()
    files = len(plan.upserts) if plan.full else 0
    _save(ctx, source, head, files, None, None)
    log.info("%s: %s at %s", source.key, "fed in full" if plan.full else "changes fed", head[:12])


def _plan(
    ctx: JobContext, github: GitHub | LocalGit, source: DocsSource, last: str | None, head: str
) -> Plan:
    extensions = ctx.settings.ai_docs_extensions
    changes = None if last is None else github.compare(source, last, head)
    if changes is not None:
        upserts = sorted({c.path for c in changes if not c.removed and source.wants(c.path, extensions)})
        removed = {c.path for c in changes if c.removed and source.wants(c.path, extensions)} - set(upserts)
        return Plan(upserts, sorted(source.entity_id(p) for p in removed), full=False)
    paths = [p for p in github.tree(source, head) if source.wants(p, extensions)]
    with ctx.engine.connect() as conn:
        indexed = set(conn.scalars(_INDEXED, {"prefix": source.entity_id("")}))
    wanted = {source.entity_id(p) for p in paths}
    return Plan(paths, sorted(indexed - wanted), full=True)


def _event(
    ctx: JobContext, source: DocsSource, head: str, entity_id: str, body: str | None
) -> tuple[str, Event]:
    action = "delete" if body is None else "upsert"
    data = {
        "action": action,
        "entity_type": DOC,
        "entity_id": entity_id,
        "workspace_id": None,
        "version": ctx.now.isoformat(),
        "text": body,
        "reason": f"ai-docs-sync {source.key} at {head[:12]}",
    }
    event_id = str(uuid.uuid5(live_sync.EVENT_ID_NAMESPACE, f"docs:{source.key}:{head}:{entity_id}:{action}"))
    return entity_id, new_event(live_sync.EVENT_TYPE, data, event_id=event_id)
