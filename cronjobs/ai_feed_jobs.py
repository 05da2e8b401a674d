"""ai-feed-jobs: starts the queued vectorisation jobs, by feeding them to the embeddings consumer.

A job is queued by ai-reconcile (a stale workspace), ai-workspace-plan-sync (a new Pro/Business
workspace, or one too far behind) or a plane.workspace_plan.v1 event. This job runs in the base
image (no model): it turns each queued job into `plane.embed.v1` upserts for every live issue and
page of the workspace, in keyset pages of ids (issues, then pages), and the embeddings consumer
(GPU pool, batched) embeds them. The index's versions make a document already indexed at its
version a no-op there.

Job rows (shared/db/ai_state.VectorizationJob) go as `ai vectorize` moves them, so either may
finish what the other began: queued -> running (lease_owner `ai-feed-jobs`, checkpoint
{"type": issue | page, "after": last id fed}, committed with each page after the broker
acknowledged it; a checkpoint without a type is in the issues) ->
fed (checkpoint "fed_at") -> success once nothing of the workspace is behind in the index
(live_sync.behind), or failed when documents are still behind AI_LIVE_SYNC_RETRY_DELAY_S x
(AI_LIVE_SYNC_MAX_RETRIES + 1) after feeding. Only one run of this job is alive at a time (the
job lock), so a job still leased to `ai-feed-jobs` is a killed run's: it is resumed at its
checkpoint. A job `ai vectorize` holds is left alone until its lease lapses.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from shared.cron.runtime import JobContext
from shared.embeddings import live_sync
from shared.embeddings.chunking import ISSUE
from shared.embeddings.names import model_name
from shared.events.producer import EventProducer

log = logging.getLogger(__name__)

PAGE = 500
LEASE = timedelta(minutes=10)

_JOBS = text(
    """
    SELECT id, workspace_id, status, checkpoint, counts, lease_owner FROM plane_workers.vectorization_jobs
    WHERE model_name = :model AND (status = 'queued' OR (status = 'running' AND
          (lease_owner = :runner OR lease_expires_at IS NULL OR lease_expires_at < :now)))
    ORDER BY created_at, id
    """
)
_CLAIM = text(
    """
    UPDATE plane_workers.vectorization_jobs
    SET status = 'running', lease_owner = :runner, lease_expires_at = :until, updated_at = :now,
        attempts = attempts + 1, started_at = coalesce(started_at, :now)
    WHERE id = :id AND (status = 'queued' OR (status = 'running' AND
          (lease_owner = :runner OR lease_expires_at IS NULL OR lease_expires_at < :now)))
    RETURNING checkpoint, counts
    """
)
_SAVE = text(
    """
    UPDATE plane_workers.vectorization_jobs
    SET checkpoint = CAST(:checkpoint AS jsonb), counts = CAST(:counts AS jsonb), updated_at = :now,
        lease_expires_at = :until
    WHERE id = :id AND lease_owner = :runner
    """
)
_FINISH = text(
    """
    UPDATE plane_workers.vectorization_jobs
    SET status = :status, error = :error, counts = CAST(:counts AS jsonb), lease_owner = NULL,
        lease_expires_at = NULL, finished_at = :now, updated_at = :now
    WHERE id = :id AND lease_owner = :runner
    """
)


class LeaseLost(Exception):
    """`ai vectorize` took the job over (its lease had lapsed): this run leaves it."""


def run(ctx: JobContext) -> None:
    if not ctx.settings.ai_vector_sync_enabled:
        log.info("AI_VECTOR_SYNC_ENABLED is off: no job is fed")
        return
    model = model_name(ctx.settings)
    with ctx.engine.connect() as conn:
        jobs = conn.execute(_JOBS, {"model": model, "runner": live_sync.RUNNER, "now": ctx.now}).all()
    producer = None if ctx.dry_run else EventProducer(ctx.settings)
    try:
        for job in jobs:
            checkpoint = job.checkpoint or {}
            if ctx.dry_run:
                if not checkpoint.get("fed_at"):
                    with ctx.engine.connect() as conn:
                        ctx.count("events", _left(conn, str(job.workspace_id), checkpoint))
                    if job.status == "queued":
                        ctx.count("jobs_started")
                continue
            assert producer is not None
            if checkpoint.get("fed_at") and job.lease_owner == live_sync.RUNNER:
                fed_at = datetime.fromisoformat(checkpoint["fed_at"])
                _complete(ctx, model, job.id, str(job.workspace_id), fed_at, dict(job.counts or {}))
                continue
            try:
                _feed(ctx, producer, model, job.id, str(job.workspace_id))
            except LeaseLost as exc:
                log.warning("%s", exc)
    finally:
        if producer is not None:
            producer.close()


def _params(ctx: JobContext, job_id: uuid.UUID, **values: Any) -> dict[str, Any]:
    return {"id": job_id, "runner": live_sync.RUNNER, "now": ctx.now, "until": ctx.now + LEASE, **values}


def _feed(ctx: JobContext, producer: EventProducer, model: str, job_id: uuid.UUID, workspace: str) -> None:
    with ctx.engine.begin() as conn:
        claimed = conn.execute(_CLAIM, _params(ctx, job_id)).first()
        if claimed is None:
            return  # taken by `ai vectorize` meanwhile
        if claimed.checkpoint is None:
            ctx.count("jobs_started")
    checkpoint: dict[str, Any] = dict(claimed.checkpoint or {})
    counts: dict[str, Any] = dict(claimed.counts or {})
    while not checkpoint.get("fed_at"):
        with ctx.engine.begin() as conn:
            kind = checkpoint.get("type", ISSUE)
            after = checkpoint.get("after") or live_sync.FIRST_ID
            params = {"ws": workspace, "after": after, "limit": PAGE}
            rows = conn.execute(live_sync.FEED_PAGE[kind], params).all()
            events = [
                live_sync.embed_event(
                    model, workspace, kind, r.entity_id, action="upsert", version=int(r.version),
                    tag=f"job-{job_id}", reason="vectorize",
                    project_id=None if r.project_id is None else str(r.project_id), updated_at=r.updated_at,
                )
                for r in rows
            ]  # fmt: skip
            if events:
                producer.send_many(live_sync.TOPIC, events)  # acknowledged before the checkpoint
                checkpoint["type"], checkpoint["after"] = kind, rows[-1].entity_id
            if len(rows) < PAGE:  # this type is fed: the next one from its start, or done
                later = live_sync.ENTITY_TYPES[live_sync.ENTITY_TYPES.index(kind) + 1 :]
                if later:
                    checkpoint["type"], checkpoint["after"] = later[0], live_sync.FIRST_ID
                else:
                    checkpoint["fed_at"] = ctx.now.isoformat()
            counts["fed"] = int(counts.get("fed", 0)) + len(events)
            _save(conn, ctx, job_id, checkpoint, counts)
        ctx.count("events", len(events))
        ctx.batch_done()
    _complete(ctx, model, job_id, workspace, datetime.fromisoformat(checkpoint["fed_at"]), counts)


def _left(conn: Connection, workspace: str, checkpoint: dict[str, Any]) -> int:
    """Documents a job has yet to feed from its checkpoint (a dry run's count of events)."""
    kind = checkpoint.get("type", ISSUE)
    left = 0
    for t in live_sync.ENTITY_TYPES[live_sync.ENTITY_TYPES.index(kind) :]:
        after = (checkpoint.get("after") if t == kind else None) or live_sync.FIRST_ID
        left += int(conn.scalar(live_sync.FEED_LEFT[t], {"ws": workspace, "after": after}) or 0)
    return left


def _save(
    conn: Connection, ctx: JobContext, job_id: uuid.UUID, checkpoint: dict[str, Any], counts: dict[str, Any]
) -> None:
    params = _params(ctx, job_id, checkpoint=json.dumps(checkpoint), counts=json.dumps(counts))
    if not conn.execute(_SAVE, params).rowcount:
        raise LeaseLost(f"job {job_id}: taken over by another run; left to it")


def _complete(
    ctx: JobContext, model: str, job_id: uuid.UUID, workspace: str, fed_at: datetime, counts: dict[str, Any]
) -> None:
    """Success once nothing is behind; failed when still behind long after feeding; else wait
    (the consumer is catching up; the next run looks again). Waiting is not counted as work."""
    s = ctx.settings
    give_up = fed_at + timedelta(seconds=s.ai_live_sync_retry_delay_s * (s.ai_live_sync_max_retries + 1))
    with ctx.engine.begin() as conn:
        missing = len(live_sync.behind(conn, model, workspace))
        counts = {**counts, "missing": missing}
        if missing and ctx.now < give_up:
            return
        status = "success" if not missing else "failed"
        error = (
            None
            if not missing
            else f"{missing} document(s) still not indexed {ctx.now - fed_at} after feeding"
        )
        conn.execute(_FINISH, _params(ctx, job_id, status=status, error=error, counts=json.dumps(counts)))
    ctx.count(f"jobs_{status}")
