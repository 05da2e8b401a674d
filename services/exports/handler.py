"""The `exports` consumer's handler: Plane's issue_export_task and analytic_export_task.

It runs on the strategy's worker thread (services/exports/strategy.py), off the poll loop, so an
export may take as long as it needs. Idempotency is the handler's own: an issue export is keyed
by its token (a completed token is not exported again, an attempt replaces the one object), an
analytics export produces a mail event whose id derives from its own.
"""

from __future__ import annotations

import logging

from services.exports import analytics, issue_export
from services.exports.strategy import check_stop
from shared.db.engine import get_engine
from shared.events import Event
from shared.kafka.handler import HandlerContext
from shared.settings import Settings

log = logging.getLogger(__name__)

ISSUE_EXPORT = "plane.issue_export.v1"
ANALYTICS_EXPORT = "plane.analytics_export.v1"
EMAILS_TOPIC = "emails"


def give_up(event: Event, reason: str, settings: Settings) -> None:
    """on_give_up: an issue export whose event went to the DLQ (its retries spent, S3 down for
    the whole retry window) is marked failed. An analytics export has no row: its mail is not sent."""
    if event.type == ISSUE_EXPORT:
        issue_export.gave_up(get_engine(settings.database_url), event.data["token_id"], reason)


def handle(event: Event, ctx: HandlerContext) -> None:
    engine = get_engine(ctx.settings.database_url)
    data = event.data
    if event.type == ISSUE_EXPORT:
        outcome = issue_export.run(engine, ctx.settings, data, check_stop)
        log.info("issue export %s", outcome, extra={"fields": {"token": data["token_id"][:6]}})
        return
    table = analytics.rows(engine, data["slug"], data["data"])
    mail = analytics.mail_event(event, data["email"], data["slug"], table, ctx.settings.event_max_bytes)
    ctx.producer.send(EMAILS_TOPIC, mail, key=data["email"])
