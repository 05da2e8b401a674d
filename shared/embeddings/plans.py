"""Plane AI plans per workspace: set by `ai plan set`, plane.workspace_plan.v1 or AI_DEFAULT_PLAN.

Plane's community edition has no billing table, so the plan lives in our state
(workspace_ai_settings). A plan decided at an older time never overwrites a newer one. What a
change sets off (the seed's operations):
- to free: live sync off, and the workspace's vectors removed. The removal is a purge request to
  the embeddings consumer (a `plane.embed.v1` delete of entity type `workspace`), which owns the
  index and the model: the jobs and the CLI run without either. Purged, not tombstoned, so that
  an upgrade later can index the same issue versions again.
- to pro or business from free or from nothing: live sync on, and a queued vectorisation job
  (ai-feed-jobs starts it), unless the newest one of this model succeeded and the workspace was
  never free (its vectors are there).
Base image only (no numpy): see live_sync.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from shared.embeddings import live_sync
from shared.events import Event, new_event

PLANS = ("free", "pro", "business")
FREE = "free"
WORKSPACE = "workspace"  # entity type of a purge request

_CURRENT = text(
    """
    SELECT plan, plan_changed_at FROM plane_workers.workspace_ai_settings
    WHERE workspace_id = :ws FOR UPDATE
    """
)
_UPSERT = text(
    """
    INSERT INTO plane_workers.workspace_ai_settings
        (workspace_id, plan, plan_source, plan_changed_at, live_sync_enabled, created_at, updated_at)
    VALUES (:ws, :plan, :source, :at, :live, now(), now())
    ON CONFLICT (workspace_id) DO UPDATE
    SET plan = excluded.plan, plan_source = excluded.plan_source, plan_changed_at = excluded.plan_changed_at,
        live_sync_enabled = excluded.live_sync_enabled, updated_at = now()
    WHERE workspace_ai_settings.plan_changed_at < excluded.plan_changed_at
    """
)
_CANCEL_JOBS = text(
    """
    UPDATE plane_workers.vectorization_jobs
    SET status = 'failed', error = :error, lease_owner = NULL, lease_expires_at = NULL,
        finished_at = now(), updated_at = now()
    WHERE workspace_id = :ws AND status IN ('queued', 'running')
    """
)
_NEWEST_JOB = text(
    """
    SELECT status FROM plane_workers.vectorization_jobs WHERE workspace_id = :ws AND model_name = :model
    ORDER BY created_at DESC, id DESC LIMIT 1
    """
)


@dataclass(frozen=True)
class PlanChange:
    workspace_id: str
    previous: str | None  # None: the workspace had no plan
    plan: str
    applied: bool  # False: an equal or newer decision is already recorded
    job_queued: bool = False

    @property
    def downgraded(self) -> bool:
        return self.applied and self.plan == FREE and self.previous != FREE

    @property
    def upgraded(self) -> bool:
        return self.applied and self.plan != FREE and self.previous in (None, FREE)


def decided_at(value: str) -> datetime:
    """An ISO 8601 time (`Z` too); without an offset it is UTC."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_plan(plan: str) -> str:
    value = plan.strip().lower()
    if value not in PLANS:
        raise ValueError(f"plan {plan!r}: one of {', '.join(PLANS)}")
    return value


def set_plan(
    conn: Connection, workspace_id: str, plan: str, source: str, changed_at: datetime, model: str
) -> PlanChange:
    """Record a plan decided at `changed_at` and queue what an upgrade needs, in `conn`'s
    transaction. The caller produces `purge_event` for a downgrade (after its commit is fine:
    the consumer drops a free workspace's upserts from then on)."""
    ws = str(uuid.UUID(workspace_id))
    plan = check_plan(plan)
    held = conn.execute(_CURRENT, {"ws": ws}).first()
    if held is not None and held.plan_changed_at >= changed_at:
        return PlanChange(ws, held.plan, held.plan, applied=False)
    params = {"ws": ws, "plan": plan, "source": source, "at": changed_at, "live": plan != FREE}
    conn.execute(_UPSERT, params)
    change = PlanChange(ws, None if held is None else held.plan, plan, applied=True)
    if change.downgraded:
        conn.execute(_CANCEL_JOBS, {"ws": ws, "error": f"cancelled: plan downgraded to free ({source})"})
    if change.upgraded:
        newest = conn.scalar(_NEWEST_JOB, {"ws": ws, "model": model})
        if change.previous == FREE or newest != "success":
            queued = live_sync.queue_job(conn, ws, model, f"plan {plan} ({source})")
            change = PlanChange(ws, change.previous, plan, True, job_queued=queued)
    return change


def purge_event(workspace_id: str, tag: str, reason: str) -> tuple[str, Event]:
    """The request that removes every vector of a workspace (keyed, like every embed event, by
    its entity: the workspace). `tag` makes the id: the same request sent again is dropped."""
    data = {
        "action": "delete",
        "entity_type": WORKSPACE,
        "entity_id": workspace_id,
        "workspace_id": workspace_id,
        "reason": reason,
    }
    event_id = str(uuid.uuid5(live_sync.EVENT_ID_NAMESPACE, f"purge:{workspace_id}:{tag}"))
    return workspace_id, new_event(live_sync.EVENT_TYPE, data, event_id=event_id)
