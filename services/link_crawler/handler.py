"""Consumer `link-crawler`: Plane's crawl_work_item_link_title, into `issue_links.metadata`.

A batch handler (shared/registry.py: up to 50 events): the batch's links are read in one query,
their distinct URLs crawled at once on LINK_CRAWLER_CONCURRENCY threads, each within its own
LINK_CRAWLER_DEADLINE_S, and the results written. One slow site costs its own deadline, not one
per link queued behind it on the partition (Plane's Celery worker crawls one at a time).

The batch's transaction (which claims the events) stays open while the batch crawls: at most
ceil(batch / LINK_CRAWLER_CONCURRENCY) deadlines, one (5 s) with the defaults. It holds a pooled
connection and the claim rows, no lock on `issue_links` (the updates come last). That is what the
batch runtime offers; crawling outside it would take a claim protocol of this consumer's own.

Differences from Plane: the row is updated without nulling `created_by_id`/`updated_by_id`
(Plane's full save() does); a link deleted, or whose URL changed since the event (a newer event
crawls that one), is left alone; a link that does not exist (yet) is retried, then dead-lettered,
instead of dropped with a warning.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import select, update

from services.link_crawler.crawl import Limits, crawl
from shared.db.plane import IssueLink
from shared.events import Event
from shared.http import Allowlist, SafeHttpClient
from shared.kafka.handler import EventFailures, HandlerContext
from shared.settings import Settings

log = logging.getLogger(__name__)


class LinkNotFound(LookupError):
    """Retried: the API may publish before its own transaction is visible."""


@cache
def client_for(settings: Settings) -> SafeHttpClient:
    """One pooled client per process; nothing internal is reachable but LINK_CRAWLER_ALLOWED_IPS.
    As many connections per site as crawls at once: waiting for a pooled connection counts
    against a crawl's deadline, and a batch of links to one site must not time out in that queue."""
    return SafeHttpClient(
        Allowlist.parse(settings.link_crawler_allowed_ips),
        max_connections_per_endpoint=settings.link_crawler_concurrency,
        connect_timeout_s=settings.link_crawler_deadline_s,
        default_deadline_s=settings.link_crawler_deadline_s,
    )


@cache
def _pool(concurrency: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(concurrency, thread_name_prefix="link-crawl")


def crawl_all(settings: Settings, urls: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """Each URL's metadata, crawled concurrently; crawl() never raises for a site's failure."""
    client, limits = client_for(settings), Limits.from_settings(settings)
    pool = _pool(settings.link_crawler_concurrency)
    # The crawl threads log with the batch's context (consumer, topic).
    futures = {url: pool.submit(contextvars.copy_context().run, crawl, client, url, limits) for url in urls}
    return {url: future.result() for url, future in futures.items()}


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with batch="
    wanted = [(event, uuid.UUID(event.data["id"]), str(event.data["url"])) for event in events]
    links = {
        row.id: row
        for row in session.execute(
            select(IssueLink.id, IssueLink.url, IssueLink.deleted_at).where(
                IssueLink.id.in_({link_id for _, link_id, _ in wanted})
            )
        )
    }
    failures: dict[str, Exception] = {}
    live: list[tuple[uuid.UUID, str]] = []
    for event, link_id, url in wanted:
        link = links.get(link_id)
        if link is None:
            failures[event.id] = LinkNotFound(f"issue link {link_id} does not exist")
        elif link.deleted_at is not None or link.url != url:
            log.info("issue link %s deleted or changed since the event: not crawled", link_id)
        else:
            live.append((link_id, url))
    results = crawl_all(ctx.settings, list(dict.fromkeys(url for _, url in live)))
    now = datetime.now(UTC)
    for link_id, url in live:  # in the events' order: the last event of a link writes last
        session.execute(
            update(IssueLink)
            .where(IssueLink.id == link_id, IssueLink.url == url, IssueLink.deleted_at.is_(None))
            .values(link_metadata=results[url], updated_at=now)
        )
    if failures:
        raise EventFailures(failures)
