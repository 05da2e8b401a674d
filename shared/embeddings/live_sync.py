"""Plane AI's live sync seen from the schedule: what the index lacks, and embed events for it.

Shared by the ai-reconcile, ai-feed-jobs and ai-workspace-plan-sync jobs, which run in the base
image: nothing here imports numpy or torch (index.py, sources.py and model.py do), so versions
are computed in SQL and events carry Plane's `updated_at` as text, as issue-activity's do.

"Behind" is one set-based statement per workspace and entity type (issues, pages): the live
documents (Plane's default managers: not soft-deleted, issues not drafts) that
`indexed_documents` of this model lacks or holds at an older version, plus what it holds live
that Plane no longer shows (to delete). A page's project is its first live `project_pages` link,
as the consumer reads it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from shared.embeddings.chunking import ISSUE, PAGE
from shared.events import Event, new_event

TOPIC = "embeddings"
EVENT_TYPE = "plane.embed.v1"
# Fixed forever: a retried batch's events must have the first attempt's ids (the consumer's dedupe).
EVENT_ID_NAMESPACE = uuid.UUID("6f0b7a52-5a8e-4f55-9d1c-3c2b8f0e7a11")
RUNNER = "ai-feed-jobs"  # lease owner of the jobs the feed runner holds
FIRST_ID = "00000000-0000-0000-0000-000000000000"  # keyset start

# external_version in SQL: microseconds since the epoch (extract() is exact numeric on PG >= 14).
VERSION_SQL = "CAST(floor(extract(epoch FROM {col}) * 1000000) AS bigint)"

ENTITY_TYPES = (ISSUE, PAGE)  # the order a job feeds them in

# Each type's live documents of a workspace (:ws): id, project, Plane's updated_at, its version.
_LIVE_ISSUES = f"""
        SELECT i.id::text AS entity_id, i.project_id, i.updated_at,
               {VERSION_SQL.format(col="i.updated_at")} AS version
        FROM issues i
        WHERE i.workspace_id = :ws AND i.deleted_at IS NULL AND NOT i.is_draft"""
_LIVE_PAGES = f"""
        SELECT p.id::text AS entity_id, pp.project_id, p.updated_at,
               {VERSION_SQL.format(col="p.updated_at")} AS version
        FROM pages p
        LEFT JOIN LATERAL (
            SELECT project_id FROM project_pages
            WHERE page_id = p.id AND deleted_at IS NULL ORDER BY created_at, project_id LIMIT 1
        ) pp ON true
        WHERE p.workspace_id = :ws AND p.deleted_at IS NULL"""
_LIVE = {ISSUE: (_LIVE_ISSUES, "i"), PAGE: (_LIVE_PAGES, "p")}  # the query, its table's alias
_BEHIND = {
    kind: text(
        f"""
    WITH live AS ({live}
    ), behind AS (
        SELECT 'upsert' AS action, l.entity_id, l.project_id, l.updated_at, l.version
        FROM live l
        LEFT JOIN plane_workers.indexed_documents d
          ON d.model_name = :model AND d.entity_type = :type AND d.entity_id = l.entity_id
        WHERE d.entity_id IS NULL OR d.source_version < l.version
        UNION ALL
        SELECT 'delete', d.entity_id, NULL, NULL, d.source_version
        FROM plane_workers.indexed_documents d
        WHERE d.model_name = :model AND d.workspace_id = :ws AND d.entity_type = :type
          AND d.content_hash <> ''
          AND NOT EXISTS (SELECT 1 FROM live l WHERE l.entity_id = d.entity_id)
    )
    SELECT b.action, b.entity_id, b.project_id, b.updated_at, b.version,
           p.version AS produced_version, p.attempts, p.produced_at
    FROM behind b
    LEFT JOIN plane_workers.live_sync_produced p
      ON p.model_name = :model AND p.entity_type = :type AND p.entity_id = b.entity_id
    ORDER BY b.entity_id
    """
    )
    for kind, (live, _alias) in _LIVE.items()
}
# A job's feed: the next keyset page of a type's live documents (on the primary key's index),
# and how many are left after a position.
FEED_PAGE = {
    kind: text(f"{live} AND {a}.id > CAST(:after AS uuid) ORDER BY {a}.id LIMIT :limit")
    for kind, (live, a) in _LIVE.items()
}
FEED_LEFT = {
    kind: text(f"SELECT count(*) FROM ({live} AND {a}.id > CAST(:after AS uuid)) l")
    for kind, (live, a) in _LIVE.items()
}
_FORGET_LANDED = text(
    """
    DELETE FROM plane_workers.live_sync_produced
    WHERE model_name = :model AND workspace_id = :ws AND entity_type = :type
      AND NOT (entity_id = ANY(CAST(:behind AS text[])))
    """
)
_RECORD = text(
    """
    INSERT INTO plane_workers.live_sync_produced
        (model_name, entity_type, entity_id, workspace_id, version, attempts, produced_at)
    SELECT :model, unnest(CAST(:types AS text[])), unnest(CAST(:ids AS text[])), :ws,
           unnest(CAST(:versions AS bigint[])), unnest(CAST(:attempts AS int[])), :at
    ON CONFLICT (model_name, entity_type, entity_id) DO UPDATE
    SET version = excluded.version, attempts = excluded.attempts, produced_at = excluded.produced_at,
        workspace_id = excluded.workspace_id
    """
)
# Workspaces whose newest job of this model succeeded and whose live sync is on.
_IN_SYNC = text(
    """
    SELECT s.workspace_id FROM plane_workers.workspace_ai_settings s
    JOIN LATERAL (
        SELECT status FROM plane_workers.vectorization_jobs j
        WHERE j.workspace_id = s.workspace_id AND j.model_name = :model
        ORDER BY j.created_at DESC, j.id DESC LIMIT 1
    ) newest ON true
    WHERE s.live_sync_enabled AND s.plan <> 'free' AND newest.status = 'success'
    ORDER BY s.workspace_id
    """
)
_QUEUE_JOB = text(
    """
    INSERT INTO plane_workers.vectorization_jobs (id, workspace_id, model_name, status, counts, checkpoint)
    VALUES (:id, :ws, :model, 'queued', CAST(:counts AS jsonb), NULL)
    ON CONFLICT (workspace_id, model_name) WHERE status IN ('queued', 'running') DO NOTHING
    """
)


@dataclass(frozen=True)
class Behind:
    """One document the index lacks (upsert) or should no longer hold (delete)."""

    entity_type: str
    action: str
    entity_id: str
    project_id: str | None
    updated_at: datetime | None
    version: int
    produced_version: int | None
    attempts: int
    produced_at: datetime | None


def workspaces_in_sync(conn: Connection, model: str) -> list[str]:
    return [str(w) for w in conn.scalars(_IN_SYNC, {"model": model})]


def behind(conn: Connection, model: str, workspace_id: str) -> list[Behind]:
    """What the index lacks or should drop of a workspace: its issues, then its pages."""
    return [row for kind in ENTITY_TYPES for row in _behind_of(conn, kind, model, workspace_id)]


def _behind_of(conn: Connection, kind: str, model: str, workspace_id: str) -> list[Behind]:
    rows = conn.execute(_BEHIND[kind], {"model": model, "ws": workspace_id, "type": kind}).all()
    return [
        Behind(
            kind,
            r.action,
            r.entity_id,
            None if r.project_id is None else str(r.project_id),
            r.updated_at,
            int(r.version),
            None if r.produced_version is None else int(r.produced_version),
            int(r.attempts or 0),
            r.produced_at,
        )
        for r in rows
    ]


def forget_landed(conn: Connection, model: str, workspace_id: str, still_behind: Sequence[Behind]) -> None:
    """Drop the produced records of documents no longer behind: they were indexed."""
    for kind in ENTITY_TYPES:
        ids = [b.entity_id for b in still_behind if b.entity_type == kind]
        conn.execute(_FORGET_LANDED, {"model": model, "ws": workspace_id, "type": kind, "behind": ids})


def record_produced(
    conn: Connection, model: str, workspace_id: str, produced: Sequence[tuple[Behind, int]], at: datetime
) -> None:
    if not produced:
        return
    conn.execute(
        _RECORD,
        {
            "model": model,
            "types": [b.entity_type for b, _ in produced],
            "ws": workspace_id,
            "ids": [b.entity_id for b, _ in produced],
            "versions": [b.version for b, _ in produced],
            "attempts": [n for _, n in produced],
            "at": at,
        },
    )


def queue_job(conn: Connection, workspace_id: str, model: str, reason: str) -> bool:
    """A queued vectorisation job for the workspace, unless one is queued or running already
    (the partial unique index decides, so two concurrent callers queue one)."""
    params = {
        "id": uuid.uuid4(),
        "ws": workspace_id,
        "model": model,
        "counts": json.dumps({"reason": reason}),
    }
    return conn.execute(_QUEUE_JOB, params).rowcount == 1


def embed_event(
    model: str, workspace_id: str, entity_type: str, entity_id: str, *, action: str, version: int,
    tag: str, reason: str, project_id: str | None = None, updated_at: datetime | None = None,
) -> tuple[str, Event]:  # fmt: skip
    """(message key, plane.embed.v1) for one issue or page: keyed by its id (the topic catalogue),
    its id derived from what it asks for (`tag`: the attempt, or the feeding job), so a batch sent
    again after a crash is the same events, which the consumer drops as duplicates."""
    data: dict[str, Any] = {
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "workspace_id": workspace_id,
        "project_id": project_id,
        # Plane's updated_at, as issue-activity sends its event time; deletes are unconditional
        # (the document is gone, whatever version the index holds).
        "version": None if updated_at is None else updated_at.isoformat(),
        "reason": reason,
    }
    name = f"{model}:{entity_type}:{entity_id}:{version}:{action}:{tag}"  # an issue's as before pages
    event_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
    return entity_id, new_event(EVENT_TYPE, data, event_id=event_id)
