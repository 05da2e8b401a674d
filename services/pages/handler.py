"""Consumer `pages`: Plane's page_transaction and track_page_version, keyed by page id.

A batch handler whose events are applied one after another in offset order, inside the batch's
transaction, which also claims their ids (idempotency="transaction"): a redelivered event changes
nothing, which the version window needs (it depends on when it runs). The registry entry keeps
key order, so a failing event holds its page's later events: a page's log diffs and versions are
never applied out of order. Each event's page is locked for the transaction (an advisory lock,
which Plane's own writes to `pages` never wait on), so two consumers overlapping during a
rebalance serialise per page.

- `plane.page_transaction.v1`: mentions and images into `page_logs` (services/pages/transactions.py).
- `plane.page_version.v1`: `page_versions` by Plane's window and cap (services/pages/versions.py).
Then a `plane.embed.v1` upsert for the page (topic `embeddings`) after a description save, so
Plane AI's vectors follow, with an id derived from the event's: a batch run again sends the same.

A page that does not exist (yet) is retried, then dead-lettered (Plane's task drops it silently);
a soft-deleted page is left alone, as Plane's default manager does not find it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.pages import transactions, versions
from shared.db.plane import Page
from shared.events import Event
from shared.events.envelope import DEFAULT_SOURCE
from shared.kafka.handler import HandlerContext, PermanentError

log = logging.getLogger(__name__)

TRANSACTION = "plane.page_transaction.v1"
VERSION = "plane.page_version.v1"
EVENT_TYPES = (TRANSACTION, VERSION)
EMBED = "plane.embed.v1"
EMBEDDINGS_TOPIC = "embeddings"
FOLLOW_UP_NAMESPACE = uuid.UUID("0d7c5a8e-3f61-5b2a-9c4e-7a1f2b3c4d5e")


class PageNotFound(LookupError):
    """Retried: the API may publish before its own transaction is visible."""


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with batch= and idempotency='transaction'"
    embeds: list[tuple[str | None, Event]] = []
    for event in events:
        embed = _apply(session, event)
        if embed is not None:
            embeds.append((embed.data["entity_id"], embed))
    if embeds:  # confirmed by the broker before the runtime commits the claims
        ctx.producer.send_many(EMBEDDINGS_TOPIC, embeds)


def _apply(session: Session, event: Event) -> Event | None:
    page_id = uuid.UUID(event.data["page_id"])
    session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"pages:{page_id}", 0))))
    page = session.scalar(select(Page).where(Page.id == page_id))
    if page is None:
        raise PageNotFound(f"page {page_id} does not exist")
    if page.deleted_at is not None:
        log.info("page %s is deleted: %s not applied", page_id, event.type)
        return None
    now = datetime.now(UTC)
    if event.type == TRANSACTION:
        transactions.apply(session, page, event.data, now)
    elif event.type == VERSION:
        if not versions.apply(session, page, event.data, now):
            return None  # the description did not change: nothing to re-embed either
    else:  # the runtime only hands over the registered types
        raise PermanentError(f"pages takes {TRANSACTION} and {VERSION}, not {event.type}")
    session.flush()
    return embed_event(event, page)


def embed_event(event: Event, page: Page) -> Event:
    """The page's embed upsert; its version is the page row's updated_at, the version the
    embeddings consumer reads with the text (a page shared with projects is indexed under the
    first one it reads, so the event names none)."""
    return Event(
        id=str(uuid.uuid5(FOLLOW_UP_NAMESPACE, f"{event.id}:embed")),
        type=EMBED,
        source=DEFAULT_SOURCE,
        time=event.time,
        data={
            "action": "upsert",
            "entity_type": "page",
            "entity_id": str(page.id),
            "workspace_id": str(page.workspace_id),
            "project_id": None,
            "version": page.updated_at.isoformat(),
            "reason": event.type,
        },
        subject=str(page.id),
    )
