"""Consumer `soft-deletes`: Plane's soft_delete_related_objects, batched and resumable.

An event names the root by Plane's (app_label, model_name) or by table, and its key. The cascade
(services/soft_deletes/cascade.py) gives every live row under it the root's `deleted_at` in short
transactions; for each issue and page it soft-deletes (the root included) a `plane.embed.v1`
delete goes to `embeddings`, confirmed by the broker before that batch commits, with an id derived
from the entity and the stamp, so a batch redone after a kill sends the same ids again.

idempotency="handler": the cascade commits as it goes, and needs no record of its progress (a
replay finds what is left). The event is claimed in the transaction that finishes it. One call
works at most CALL_BUDGET_S (the liveness file is touched by the poll loop, and a SIGTERM must
finish inside the grace period); a longer cascade hands itself on as a continuation event on its
own topic, keyed by the same instance, and the next call picks up what is left.

Bad input: an unknown or non-soft-deletable model, or a key of the wrong kind, is dead-lettered at
once (PermanentError); a root that does not exist is retried, then dead-lettered. Differences
from Plane: one stamp for the whole subtree, audit columns kept, SET_NULL leaves rows of the
subtree alone (cascade.py); a root found live (restored since the event) is left as it is, while
Plane's task would soft-delete it again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.dialects.postgresql import insert

from services.soft_deletes.cascade import Cascade, Outcome, Root
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


@cache
def graph_for(url: str) -> Graph:
    """Plane's FK graph, read once per process and database (migrations do not run under us)."""
    with get_engine(url).connect() as conn:
        return load_graph(conn)


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
        deadline=time.monotonic() + budget,
        pause_s=ctx.settings.job_batch_pause_ms / 1000,
    )
    cascade.on_marked = lambda _conn, table, rows: _send_embed_deletes(ctx, cascade.outcome, table, rows)
    outcome = cascade.run(stamp, on_finish=lambda conn: _claim(conn, ctx.consumer, event.id))
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


def _send_embed_deletes(ctx: HandlerContext, outcome: Outcome, table: str, rows: Sequence[Row]) -> None:
    entity_type, _ = EMBEDDED[table]
    assert outcome.deleted_at is not None
    version = outcome.deleted_at.isoformat()
    events = []
    for row in rows:
        values = row._mapping
        data = {
            "action": "delete",
            "entity_type": entity_type,
            "entity_id": row.id,
            "workspace_id": _str(values.get("workspace_id")),
            "project_id": _str(values.get("project_id")),
            "version": version,
            "reason": "soft_delete",
        }
        event_id = uuid.uuid5(NAMESPACE, f"embed:{entity_type}:{row.id}:{version}")
        events.append((row.id, new_event("plane.embed.v1", data, event_id=str(event_id), subject=row.id)))
    ctx.producer.send_many(EMBEDDINGS_TOPIC, events)


def _str(value: object) -> str | None:
    return None if value is None else str(value)
