"""Consumer `link-crawler`: Plane's crawl_work_item_link_title, into `issue_links.metadata`.

No database transaction stays open while the crawl waits on a stranger's server (up to
LINK_CRAWLER_DEADLINE_S): the event id is looked up first (a replay crawls nothing), and claimed
in the short transaction that writes the result. Differences from Plane: the row is updated
without nulling `created_by_id`/`updated_by_id` (Plane's full save() does); a link deleted, or
whose URL changed since the event (a newer event crawls that one), is left alone; a link that
does not exist (yet) is retried, then dead-lettered, instead of dropped with a warning.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import select, update

from services.link_crawler.crawl import Limits, crawl
from shared.db.engine import session_factory
from shared.db.plane import IssueLink
from shared.events import Event
from shared.http import Allowlist, SafeHttpClient
from shared.kafka import claims
from shared.kafka.handler import HandlerContext
from shared.settings import Settings

log = logging.getLogger(__name__)


class LinkNotFound(LookupError):
    """Retried: the API may publish before its own transaction is visible."""


@cache
def client_for(settings: Settings) -> SafeHttpClient:
    """One pooled client per process; nothing internal is reachable but LINK_CRAWLER_ALLOWED_IPS."""
    return SafeHttpClient(
        Allowlist.parse(settings.link_crawler_allowed_ips),
        connect_timeout_s=settings.link_crawler_deadline_s,
        default_deadline_s=settings.link_crawler_deadline_s,
    )


def handle(event: Event, ctx: HandlerContext) -> None:
    link_id = uuid.UUID(event.data["id"])
    url: str = event.data["url"]
    sessions = session_factory(ctx.settings.database_url)
    with sessions.begin() as session:
        if claims.processed(session, ctx.consumer, event.id):
            return
        link = session.execute(
            select(IssueLink.url, IssueLink.deleted_at).where(IssueLink.id == link_id)
        ).first()
    if link is None:
        raise LinkNotFound(f"issue link {link_id} does not exist")
    stale = link.deleted_at is not None or link.url != url
    metadata = None if stale else crawl(client_for(ctx.settings), url, Limits.from_settings(ctx.settings))
    with sessions.begin() as session:
        if not claims.claim(session, ctx.consumer, event.id) or metadata is None:
            if stale:
                log.info("issue link %s deleted or changed since the event: not crawled", link_id)
            return
        session.execute(
            update(IssueLink)
            .where(IssueLink.id == link_id, IssueLink.url == url, IssueLink.deleted_at.is_(None))
            .values(link_metadata=metadata, updated_at=datetime.now(UTC))
        )
