"""Consumer `ai-plans`: `plane.workspace_plan.v1` from a billing system into the workspace's plan.

One event per transaction (the runtime claims its id in it): shared/embeddings/plans.set_plan
records the plan unless a newer decision is recorded, and queues a vectorisation job for an
upgrade (ai-feed-jobs starts it). A downgrade to free also sends the purge request to the
embeddings consumer, which owns the index; it is sent before the commit, so a crash in between
sends it again under the same id (dropped there as a duplicate). Runs in the base image.
"""

from __future__ import annotations

from shared.embeddings import live_sync, plans
from shared.embeddings.names import model_name
from shared.events.envelope import Event
from shared.kafka.handler import HandlerContext
from shared.logs import log_context


def handle(event: Event, ctx: HandlerContext) -> None:
    if ctx.session is None:
        raise RuntimeError("ai-plans runs in the transaction that claims its event")
    data = event.data
    changed_at = plans.decided_at(data.get("changed_at") or event.time)
    with log_context(event_id=event.id, workspace_id=data["workspace_id"]):
        change = plans.set_plan(
            ctx.session.connection(), data["workspace_id"], data["plan"], "event", changed_at,
            model_name(ctx.settings),
        )  # fmt: skip
        if change.downgraded:
            key, purge = plans.purge_event(change.workspace_id, f"event-{event.id}", "plan free (event)")
            ctx.producer.send(live_sync.TOPIC, purge, key=key)
