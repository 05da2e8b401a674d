"""ai-reconcile: every minute, what the embed events missed (the seed's 30 s poll, as a backstop).

Changes reach the index as `plane.embed.v1` events within seconds (issue-activity produces them).
This job catches what those missed: for each workspace whose newest vectorisation job of the
current model succeeded and whose live sync is on, one set-based statement per type
(live_sync.behind) lists the issues and pages the index lacks or holds at an older version, and
the indexed ones Plane no longer shows. Then the seed's rule:
- at most AI_LIVE_SYNC_MAX_MISSING of them: an embed event for exactly those (topic
  `embeddings`, key the issue's or page's id);
- more: a queued re-feed job for the workspace (ai-feed-jobs feeds it), and no events.

Not producing the same events every minute while the consumer catches up: every event produced
is recorded in `live_sync_produced` (document, version, attempts, when), in the transaction that
follows the broker's acknowledgement. A document recorded at its current version is awaited, not
produced again, until AI_LIVE_SYNC_RETRY_DELAY_S has passed since; then it is produced again, up
to AI_LIVE_SYNC_MAX_RETRIES times, after which the workspace is re-fed instead (the events are
evidently not landing). Records of documents no longer behind are dropped on the way. Times are
the run's scheduled time, so a re-run for the same minute awaits what the first run produced.

At least once: a kill between the broker's acknowledgement and the commit produces the batch
again next minute, under the same event ids (live_sync.embed_event), which the consumer drops.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.cron.runtime import JobContext
from shared.embeddings import live_sync
from shared.embeddings.live_sync import Behind
from shared.embeddings.names import model_name
from shared.events.producer import EventProducer

log = logging.getLogger(__name__)


def run(ctx: JobContext) -> None:
    settings = ctx.settings
    if not settings.ai_vector_sync_enabled:
        log.info("AI_VECTOR_SYNC_ENABLED is off: nothing to reconcile")
        return
    model = model_name(settings)
    with ctx.engine.connect() as conn:
        workspaces = live_sync.workspaces_in_sync(conn, model)
    producer = None if ctx.dry_run else EventProducer(settings)
    try:
        for workspace in workspaces:
            _workspace(ctx, producer, model, workspace)
            ctx.batch_done()
    finally:
        if producer is not None:
            producer.close()


def _workspace(ctx: JobContext, producer: EventProducer | None, model: str, workspace: str) -> None:
    s = ctx.settings
    due = ctx.now - timedelta(seconds=s.ai_live_sync_retry_delay_s)
    with ctx.engine.begin() as conn:
        rows = live_sync.behind(conn, model, workspace)
        to_produce: list[tuple[Behind, int]] = []
        exhausted = 0
        for row in rows:
            if row.produced_version is None or row.produced_version < row.version:
                to_produce.append((row, 1))
            elif row.produced_at is not None and row.produced_at <= due:
                if row.attempts > s.ai_live_sync_max_retries:
                    exhausted += 1
                else:
                    to_produce.append((row, row.attempts + 1))
            # else: produced within the retry delay, awaited
        if len(rows) > s.ai_live_sync_max_missing or exhausted:
            reason = (
                f"{len(rows)} documents behind (more than {s.ai_live_sync_max_missing})"
                if len(rows) > s.ai_live_sync_max_missing
                else f"{exhausted} documents still behind after {s.ai_live_sync_max_retries} retries"
            )
            if ctx.dry_run or live_sync.queue_job(conn, workspace, model, f"ai-reconcile: {reason}"):
                ctx.count("refeed_jobs")
                log.info("workspace %s re-fed: %s", workspace, reason)
            return
        if ctx.dry_run:
            ctx.count("events", len(to_produce))
            return
        live_sync.forget_landed(conn, model, workspace, rows)
        if not to_produce:
            return
        events = [
            live_sync.embed_event(
                model, workspace, row.entity_type, row.entity_id, action=row.action, version=row.version,
                tag=f"attempt-{attempt}", reason="ai-reconcile", project_id=row.project_id,
                updated_at=row.updated_at,
            )
            for row, attempt in to_produce
        ]  # fmt: skip
        assert producer is not None
        producer.send_many(live_sync.TOPIC, events)  # acknowledged before the records commit
        live_sync.record_produced(conn, model, workspace, to_produce, ctx.now)
    ctx.count("events", len(events))
    if retries := sum(1 for _, attempt in to_produce if attempt > 1):
        ctx.count("retries", retries)
