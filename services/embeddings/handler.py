"""Consumer `embeddings`: Plane AI's live sync, `plane.embed.v1` into the vector index.

Per batch, inside the transaction that claims its events:
- parse every event (payload.parse; PermanentError for what can never be indexed, so the runtime
  re-runs the batch event by event and dead-letters that one);
- read the current text of every issue and page upserted, one query per type; an entity Plane no
  longer shows (absent, soft-deleted, a draft) is removed from the index instead, unconditionally;
- hand all changes to the shared Indexer (shared/embeddings/pipeline.py): newest per entity,
  stale and unchanged ones skipped against `indexed_documents`, every chunk of the batch embedded
  in one length-sorted pass, the index written, `indexed_documents` recorded in this transaction.

An index that cannot be reached raises DependencyUnavailable: the runtime holds the partition and
tries the same batch again (R25: never dead-lettered). The model and the index are loaded once
per process, on the first batch or by `warm_up` before the consumer joins its group.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence

from sqlalchemy import Engine

from services.embeddings import metrics, workspaces
from services.embeddings.payload import Request, parse
from shared.embeddings.config import EmbeddingSettings
from shared.embeddings.index import IndexUnavailable
from shared.embeddings.pipeline import Change, Indexer, Remove, Upsert
from shared.embeddings.sources import read_documents
from shared.events.envelope import Event
from shared.kafka.handler import DependencyUnavailable, HandlerContext
from shared.logs import log_context
from shared.settings import Settings

log = logging.getLogger(__name__)


@functools.cache
def _embedder(view: EmbeddingSettings):  # type: ignore[no-untyped-def]
    from shared.embeddings.model import Embedder

    embedder = Embedder.load(view)
    log.info("embedding model warmed up in %.1f s", embedder.warm_up())
    return embedder


@functools.cache
def indexer(settings: Settings, engine: Engine) -> Indexer:
    """The process's Indexer: the model (loaded once), its chunker and its vector index (pgvector
    on this engine, or OpenSearch: shared/embeddings/backends.py)."""
    from shared.embeddings.backends import open_index
    from shared.embeddings.index import index_name

    view = EmbeddingSettings.of(settings)
    embedder = _embedder(view)
    index = open_index(
        settings, engine, name=index_name(embedder.name, embedder.dimension), dimension=embedder.dimension
    )
    try:
        index.ensure()
    except IndexUnavailable as exc:  # not cached: the next batch tries again
        raise DependencyUnavailable(str(exc)) from exc
    return Indexer(embedder, embedder.chunker(view), index)


def warm_up(settings: Settings) -> None:
    """Load and warm the model before the consumer is ready (the startup probe waits for it).
    A misconfigured index choice stops the process here, before any event is taken."""
    from shared.embeddings.backends import index_backend

    index_backend(settings)
    _embedder(EmbeddingSettings.of(settings))


def handle(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    if session is None:
        raise RuntimeError("the embeddings consumer runs in the batch's transaction")
    requests: list[Request] = []
    for event in events:
        with log_context(event_id=event.id):
            requests.append(parse(event))
    conn = session.connection()
    purged, requests = workspaces.purges(requests)  # plan downgrades (services/embeddings/workspaces.py)
    started = time.perf_counter()
    current = {}
    for entity_type in sorted({r.key.entity_type for r in requests if r.from_database}):
        ids = [r.key.entity_id for r in requests if r.from_database and r.key.entity_type == entity_type]
        current[entity_type] = read_documents(conn, entity_type, ids)
    metrics.STAGE_SECONDS.labels("read").observe(time.perf_counter() - started)
    changes: list[Change] = []
    for request in requests:
        if request.action == "delete":
            changes.append(Remove(request.key, request.version))
        elif request.inline is not None:
            changes.append(Upsert(request.inline))
        elif (document := current[request.key.entity_type].get(request.key.entity_id)) is not None:
            changes.append(Upsert(document))
        else:
            log.info(
                "%s %s vanished before it was embedded: removed from the index",
                *request.key.__dict__.values(),
            )
            changes.append(Remove(request.key, None))
    changes, dropped = workspaces.without_free(conn, changes)
    if dropped:
        metrics.DOCUMENTS.labels("skipped_free_plan").inc(dropped)
    try:
        process_indexer = indexer(ctx.settings, session.get_bind())  # type: ignore[arg-type]
        workspaces.purge(conn, process_indexer, purged)
        tally = process_indexer.apply(conn, changes)
    except IndexUnavailable as exc:
        raise DependencyUnavailable(str(exc)) from exc
    metrics.STAGE_SECONDS.labels("encode").observe(tally.encode_s)
    metrics.STAGE_SECONDS.labels("index").observe(tally.index_s)
    metrics.CHUNKS.inc(tally.chunks)
    for outcome, n in tally.as_dict().items():
        if outcome != "chunks" and n:
            metrics.DOCUMENTS.labels(outcome).inc(n)
