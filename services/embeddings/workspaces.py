"""What the embeddings consumer does for a workspace's plan (shared/embeddings/plans.py).

- A `plane.embed.v1` delete of entity type `workspace` purges every vector of that workspace
  from the index (VectorIndex.purge_workspace: no tombstones, so an upgrade later indexes the same
  issue versions again) and its `indexed_documents` and `live_sync_produced` rows.
- Upserts of a workspace whose plan is free are dropped: issue-activity still produces them for
  every change, and a downgraded workspace must not grow vectors again.
A workspace without a plan row is indexed (installs that never set plans keep working).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, text

from services.embeddings.payload import Request
from shared.embeddings.pipeline import Change, Indexer, Upsert
from shared.embeddings.plans import FREE, WORKSPACE
from shared.embeddings.sources import valid_uuid
from shared.kafka.handler import PermanentError

log = logging.getLogger(__name__)

_FREE = text(
    "SELECT workspace_id::text FROM plane_workers.workspace_ai_settings"
    " WHERE plan = :free AND workspace_id = ANY(CAST(:ids AS uuid[]))"
)
_FORGET = tuple(
    f"DELETE FROM plane_workers.{table} WHERE model_name = :model AND workspace_id = CAST(:ws AS uuid)"
    for table in ("indexed_documents", "live_sync_produced")
)


def purges(requests: Sequence[Request]) -> tuple[list[str], list[Request]]:
    """(workspaces to purge, the other requests)."""
    wanted, rest = [], []
    for request in requests:
        if request.key.entity_type != WORKSPACE:
            rest.append(request)
        elif request.action != "delete" or not valid_uuid(request.key.entity_id):
            raise PermanentError(f"a {WORKSPACE} request is a delete of a workspace id, not {request.key}")
        else:
            wanted.append(request.key.entity_id)
    return sorted(set(wanted)), rest


def purge(conn: Connection, indexer: Indexer, workspaces: Iterable[str]) -> int:
    removed = 0
    for ws in workspaces:
        removed += indexer.index.purge_workspace(ws)
        for statement in _FORGET:
            conn.execute(text(statement), {"model": indexer.model_name, "ws": ws})
        log.info("workspace %s: %d entities purged from the index (plan free)", ws, removed)
    return removed


def without_free(conn: Connection, changes: list[Change]) -> tuple[list[Change], int]:
    """The changes less the upserts of workspaces on the free plan; and how many were dropped."""
    places = {c.document.workspace_id for c in changes if isinstance(c, Upsert) and c.document.workspace_id}
    if not places:
        return changes, 0
    free = set(conn.scalars(_FREE, {"free": FREE, "ids": sorted(places)}))
    if not free:
        return changes, 0
    kept = [c for c in changes if not (isinstance(c, Upsert) and c.document.workspace_id in free)]
    return kept, len(changes) - len(kept)
