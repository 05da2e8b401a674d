"""Consumer `soft-deletes`: Plane's soft_delete_related_objects, batched and resumable.

An event names the root by Plane's (app_label, model_name) or by table, and its key. The cascade
(services/soft_deletes/cascade.py) gives every live row under it the root's `deleted_at` in short
transactions, and a `plane.embed.v1` delete goes to `embeddings` for each issue and page it
soft-deletes (the root included), with an id derived from the entity and the stamp. Not from
inside the marking transaction (it would hold that batch's row locks while the broker confirms):
the batch records those rows in the collection, and they are sent, confirmed, and forgotten right
after it commits; a call killed in between sends them first on the replay (the same ids again),
and the event is claimed only after the last is confirmed: none is lost.

idempotency="handler": the cascade commits as it goes, its progress in plane_workers'
soft_delete_subtrees (a replay goes on from there). The event is claimed in the transaction that
finishes it. One call works at most CALL_BUDGET_S, collecting included (the liveness file is
touched by the poll loop, and a SIGTERM must finish inside the grace period); a longer cascade
hands itself on as a continuation event on its own topic, keyed by the same instance, and the
next call picks up where the collection says.

Bad input: an unknown or non-soft-deletable model, or a key of the wrong kind, is dead-lettered at
once (PermanentError); a root that does not exist is retried, then dead-lettered. Differences
from Plane: one stamp for the whole subtree, audit columns kept, SET_NULL leaves rows of the
subtree alone (cascade.py); a root found live is left as it is, while Plane's task would walk it
anyway. Found live means after its lock: Plane queues the task inside the delete's transaction
(no on_commit), so the event may come before the delete commits; the root is read FOR SHARE,
which waits for that transaction (cascade.ROOT_WAIT_MS, then a lock timeout: retried), so a
delete that commits later still cascades and a rolled-back one leaves the root live.

Plane's FK graph is read again every GRAPH_TTL_S, and at once after a statement meets a table or
column that is gone (a Plane migration ran under us; the event is retried with the new graph).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg2.errors
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert

from services.soft_deletes.cascade import Cascade, Root
from services.soft_deletes.models import MODEL_TABLES
from shared.db.engine import get_engine, session_factory
from shared.db.fk_graph import Graph, load_graph
from shared.db.state import ProcessedEvent
from shared.events import Event, new_event
from shared.kafka import claims
from shared.kafka.handler import HandlerContext, PermanentError

log = logging.getLogger(__name__)

EVENT_TYPE = "plane.soft_delete.v1"
TOPIC = "soft-deletes"
EMBEDDINGS_TOPIC = "embeddings"
# table -> (embed entity type, columns the event carries)
EMBEDDED = {"issues": ("issue", ("workspace_id", "project_id")), "pages": ("page", ("workspace_id",))}
NAMESPACE = uuid.UUID("0d6f3a9e-2b1c-5e8f-9a47-3c5d1e2f4b6a")
CALL_BUDGET_S = 15.0
GRAPH_TTL_S = 300.0
_graphs: dict[str, tuple[float, Graph]] = {}


def graph_for(url: str) -> Graph:
    """Plane's FK graph of a database, read again after GRAPH_TTL_S (Plane migrates under us)."""
    cached = _graphs.get(url)
    if cached is not None and time.monotonic() - cached[0] < GRAPH_TTL_S:
        return cached[1]
    with get_engine(url).connect() as conn:
        graph = load_graph(conn)
    _graphs[url] = (time.monotonic(), graph)
    return graph


def forget_graph(url: str) -> None:
    _graphs.pop(url, None)


def _schema_changed(exc: BaseException) -> bool:
    """A table or column the graph named is gone: Plane's schema changed since it was read."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, psycopg2.errors.UndefinedTable | psycopg2.errors.UndefinedColumn)


def root_of(data: dict[str, Any], graph: Graph) -> Root:
    """The root row the event names; PermanentError for what can never name one."""
    table = data.get("table")
    if data.get("model_name"):
        app_label = str(data.get("app_label") or "db").lower()
        model = str(data["model_name"]).lower()
        named = MODEL_TABLES.get((app_label, model))
        if named is None:
            raise PermanentError(f"unknown soft-deletable model {app_label}.{model}")
        if table and table != named:
            raise PermanentError(f"model {app_label}.{model} is table {named}, not {table}")
        table = named
    if not table or table not in graph.soft_deletable:
        raise PermanentError(f"table {table!r} does not exist or has no deleted_at")
    raw = data["instance_pk"]
    kind = graph.primary_key_type.get(table, "uuid")
    try:
        if kind == "uuid":
            return Root(table, uuid.UUID(str(raw)))
        if kind in ("bigint", "integer", "smallint"):
            return Root(table, int(str(raw)))
    except ValueError:
        pass
    raise PermanentError(f"{table} is keyed by {kind}: {raw!r} is not one")


def stamp_of(data: dict[str, Any]) -> datetime | None:
    raw = data.get("deleted_at")
    if raw in (None, ""):
        return None
    try:
        stamp = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PermanentError(f"deleted_at {raw!r}: {exc}") from exc
    if stamp.tzinfo is None:
        raise PermanentError(f"deleted_at {raw!r} has no time zone")
    return stamp


def handle(event: Event, ctx: HandlerContext) -> None:
    url = ctx.settings.database_url
    with session_factory(url).begin() as session:
        if claims.processed(session, ctx.consumer, event.id):
            return
    graph = graph_for(url)
    root = root_of(event.data, graph)
    stamp = stamp_of(event.data)
    budget = min(CALL_BUDGET_S, ctx.settings.kafka_max_poll_interval_ms / 4000)
    cascade = Cascade(
        get_engine(url),
        graph,
        root,
        returning={table: columns for table, (_, columns) in EMBEDDED.items()},
        deliver=lambda table, rows, deleted_at: _send_embed_deletes(ctx, table, rows, deleted_at),
        deadline=time.monotonic() + budget,
        pause_s=ctx.settings.job_batch_pause_ms / 1000,
    )
    try:
        outcome = cascade.run(stamp, on_finish=lambda conn: _claim(conn, ctx.consumer, event.id))
    except Exception as exc:
        if _schema_changed(exc):
            log.warning("Plane's schema changed under the FK graph: read again on the retry")
            forget_graph(url)
        raise
    if outcome.status == "paused":
        # Before the claim: a kill in between sends the same continuation again (same id).
        ctx.producer.send(TOPIC, _continuation(event), key=str(root.pk))
    if outcome.status != "done":
        with get_engine(url).begin() as conn:
            _claim(conn, ctx.consumer, event.id)
    log.info(
        "soft delete of %s %s: %s, %d rows marked, %d references nulled, %d batches, longest tx %.3f s",
        root.table,
        root.pk,
        outcome.status,
        outcome.rows,
        outcome.nulled,
        outcome.batches,
        outcome.longest_tx_s,
    )


def _claim(conn: Connection, consumer: str, event_id: str) -> None:
    conn.execute(
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=uuid.UUID(event_id))
        .on_conflict_do_nothing()
    )


def _continuation(event: Event) -> Event:
    """The same root, its stamp read from the row again (a restore meanwhile stops it)."""
    data = {k: v for k, v in event.data.items() if k != "deleted_at"}
    return new_event(EVENT_TYPE, data, event_id=str(uuid.uuid5(NAMESPACE, f"{event.id}:continued")))


def embed_deletes(
    table: str, rows: Sequence[dict[str, Any]], deleted_at: datetime
) -> list[tuple[str, Event]]:
    """The `plane.embed.v1` deletes of marked rows, each id derived from entity and stamp."""
    entity_type, _ = EMBEDDED[table]
    version = deleted_at.isoformat()
    events = []
    for values in rows:
        entity_id = str(values["id"])
        data = {
            "action": "delete",
            "entity_type": entity_type,
            "entity_id": entity_id,
            "workspace_id": _str(values.get("workspace_id")),
            "project_id": _str(values.get("project_id")),
            "version": version,
            "reason": "soft_delete",
        }
        event_id = uuid.uuid5(NAMESPACE, f"embed:{entity_type}:{entity_id}:{version}")
        events.append(
            (entity_id, new_event("plane.embed.v1", data, event_id=str(event_id), subject=entity_id))
        )
    return events


def _send_embed_deletes(
    ctx: HandlerContext, table: str, rows: Sequence[dict[str, Any]], deleted_at: datetime
) -> None:
    ctx.producer.send_many(EMBEDDINGS_TOPIC, embed_deletes(table, rows, deleted_at))  # confirmed


def _str(value: object) -> str | None:
    return None if value is None else str(value)
