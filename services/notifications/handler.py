"""Consumer `notifications`: Plane's `notifications` task as a batch handler.

Per batch, inside the transaction that claims its events: parse every event, read everything
the rules need with one query per kind (store.load), plan each event in offset order
(rules.plan), and write all rows with one statement per table (store.Writes.flush).

Outcomes per event, none of which stops the others:
- a type Plane skips (cycle, module, reactions, votes, drafts): nothing, like Plane;
- an unknown or soft-deleted issue or project: nothing, with a log line (Plane crashed on
  `Project.objects.get`/`issue.name` and printed it; the entity is gone, a retry cannot help);
- activities that are not JSON or not of the serializer's shape, or an actor who is not a user:
  PermanentError, so the runtime re-runs the batch event by event and dead-letters that one;
- anything else failing (a lost connection, a deadlock): raised, and the runtime holds or
  retries as it does for every consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text

from services.notifications import rules, store
from services.notifications.payload import parse
from shared.events.envelope import Event
from shared.kafka.handler import HandlerContext
from shared.logs import log_context

log = logging.getLogger(__name__)


def handle(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    if session is None:
        raise RuntimeError("the notifications consumer runs in the batch's transaction")
    # Plane's foreign keys are deferred to COMMIT, where a violation would fail the whole batch
    # at once; checked per statement, it fails the one event, inside its savepoint.
    session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    requests = []
    for event in events:
        with log_context(event_id=event.id):
            requests.append(parse(event))
    reads = store.load(session, requests)
    writes = store.Writes(
        now=datetime.now(UTC),
        reads=reads,
        # Only an event carrying a description adds or removes mentions.
        mentions=store.live_mentions(session, [r.issue_id for r in requests if r.requested.present]),
    )
    for request in requests:
        with log_context(event_id=request.event_id, issue_id=str(request.issue_id)):
            plan = rules.plan(request, reads)
            if plan.skipped:
                if not request.skipped:  # Plane's own skips are routine, not worth a line
                    log.info("nothing to notify: %s", plan.skipped)
                continue
            writes.add(plan)
    writes.flush(session)
