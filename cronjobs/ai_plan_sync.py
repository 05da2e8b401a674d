"""ai-workspace-plan-sync: daily, each workspace's Plane AI plan and what it implies (the seed's).

Plans come from `plane-workers ai plan set`, plane.workspace_plan.v1 events (consumer ai-plans)
and, for workspaces without either, AI_DEFAULT_PLAN (shared/embeddings/plans.py). Then:
1. defaults: every live Plane workspace without a plan gets AI_DEFAULT_PLAN (when set), decided
   at the epoch, so any explicit decision wins over it; a Pro/Business one is queued;
2. downgrades: a free workspace that still has vectors gets the purge request again (the
   embeddings consumer removes them); one a day at most (recorded in live_sync_produced, which
   the purge clears);
3. new Pro/Business workspaces: no job of the current model yet, or the newest failed (a reaped
   or failed one): a queued job, which ai-feed-jobs starts;
4. stale workspaces: newest job succeeded, but more than AI_LIVE_SYNC_MAX_MISSING documents are
   behind: re-fed (a queued job).
With AI_VECTOR_SYNC_ENABLED off, 3 and 4 are left out (no vectorisation work), 1 and 2 are not:
plans and the removal of a free workspace's vectors are not sync work.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from shared.cron.runtime import JobContext
from shared.embeddings import live_sync, plans
from shared.embeddings.names import model_name
from shared.events.producer import EventProducer

log = logging.getLogger(__name__)

BATCH = 100
DEFAULT_DECIDED_AT = datetime(1970, 1, 1, tzinfo=UTC)
PURGE_AGAIN_AFTER = timedelta(hours=23)

_WITHOUT_PLAN = text(
    """
    SELECT w.id::text FROM workspaces w
    WHERE w.deleted_at IS NULL AND w.id > CAST(:after AS uuid)
      AND NOT EXISTS (SELECT 1 FROM plane_workers.workspace_ai_settings s WHERE s.workspace_id = w.id)
    ORDER BY w.id LIMIT :limit
    """
)
_FREE_WITH_VECTORS = text(
    """
    SELECT s.workspace_id::text FROM plane_workers.workspace_ai_settings s
    WHERE s.plan = 'free'
      AND EXISTS (SELECT 1 FROM plane_workers.indexed_documents d
                  WHERE d.model_name = :model AND d.workspace_id = s.workspace_id AND d.content_hash <> '')
      AND NOT EXISTS (SELECT 1 FROM plane_workers.live_sync_produced p
                      WHERE p.model_name = :model AND p.entity_type = 'workspace'
                        AND p.entity_id = s.workspace_id::text AND p.produced_at > :again)
    ORDER BY s.workspace_id
    """
)
_RECORD_PURGE = text(
    """
    INSERT INTO plane_workers.live_sync_produced
        (model_name, entity_type, entity_id, workspace_id, version, attempts, produced_at)
    VALUES (:model, 'workspace', :ws, CAST(:ws AS uuid), 0, 1, :at)
    ON CONFLICT (model_name, entity_type, entity_id) DO UPDATE
    SET attempts = live_sync_produced.attempts + 1, produced_at = excluded.produced_at
    """
)
# Paid workspaces and the status of their newest job of this model (NULL: none).
_PAID = text(
    """
    SELECT s.workspace_id::text AS ws, s.live_sync_enabled AS live, newest.status
    FROM plane_workers.workspace_ai_settings s
    LEFT JOIN LATERAL (
        SELECT status FROM plane_workers.vectorization_jobs j
        WHERE j.workspace_id = s.workspace_id AND j.model_name = :model
        ORDER BY j.created_at DESC, j.id DESC LIMIT 1
    ) newest ON true
    WHERE s.plan <> 'free'
    ORDER BY s.workspace_id
    """
)


def run(ctx: JobContext) -> None:
    model = model_name(ctx.settings)
    _defaults(ctx, model)
    producer = None if ctx.dry_run else EventProducer(ctx.settings)
    try:
        _downgrades(ctx, producer, model)
    finally:
        if producer is not None:
            producer.close()
    if not ctx.settings.ai_vector_sync_enabled:
        log.info("AI_VECTOR_SYNC_ENABLED is off: no workspace is queued or re-fed")
        return
    _jobs(ctx, model)


def _defaults(ctx: JobContext, model: str) -> None:
    raw = ctx.settings.ai_default_plan.strip()
    if not raw:
        return
    plan = plans.check_plan(raw)
    after = live_sync.FIRST_ID
    while True:
        with ctx.engine.begin() as conn:
            ids = list(conn.scalars(_WITHOUT_PLAN, {"after": after, "limit": BATCH}))
            for ws in ids:
                if ctx.dry_run:
                    ctx.count("queued_jobs", int(plan != plans.FREE))
                    continue
                change = plans.set_plan(conn, ws, plan, "default", DEFAULT_DECIDED_AT, model)
                if change.job_queued:
                    ctx.count("queued_jobs")
        ctx.count("defaulted", len(ids))
        ctx.batch_done()
        if len(ids) < BATCH:
            return
        after = ids[-1]


def _downgrades(ctx: JobContext, producer: EventProducer | None, model: str) -> None:
    with ctx.engine.connect() as conn:
        free = list(conn.scalars(_FREE_WITH_VECTORS, {"model": model, "again": ctx.now - PURGE_AGAIN_AFTER}))
    for ws in free:
        if producer is not None:
            key, event = plans.purge_event(ws, f"plan-sync-{ctx.now:%Y-%m-%d}", "plan free (plan sync)")
            producer.send(live_sync.TOPIC, event, key=key)
            with ctx.engine.begin() as conn:
                conn.execute(_RECORD_PURGE, {"model": model, "ws": ws, "at": ctx.now})
        ctx.count("purged")
        ctx.batch_done()


def _jobs(ctx: JobContext, model: str) -> None:
    with ctx.engine.connect() as conn:
        paid = conn.execute(_PAID, {"model": model}).all()
    max_missing = ctx.settings.ai_live_sync_max_missing
    for row in paid:
        if row.status in (None, "failed"):
            action, reason = "queued_jobs", "plan sync: no successful vectorisation yet"
        elif row.status == "success" and row.live:
            with ctx.engine.connect() as conn:
                behind = len(live_sync.behind(conn, model, row.ws))
            if behind <= max_missing:
                continue
            action, reason = "refed", f"plan sync: {behind} documents behind (more than {max_missing})"
        else:
            continue  # queued or running: under way
        if ctx.dry_run:
            ctx.count(action)
            continue
        with ctx.engine.begin() as conn:
            if live_sync.queue_job(conn, row.ws, model, reason):
                ctx.count(action)
        ctx.batch_done()
