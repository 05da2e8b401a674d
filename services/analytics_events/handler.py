"""Consumer `analytics-events`: Plane's recent_visited_task and track_event, keyed by user id.

A batch handler (shared/registry.py). In the batch's transaction, in offset order: the recent
visits (services/analytics_events/visits.py), then the track events, whose PostHog captures go
out last as one acked `/batch/` request (services/analytics_events/posthog.py), so a failure
before it sends nothing and a failure after it can only repeat a capture PostHog deduplicates.

Track events, as Plane's track_event does them: for `user_invited_to_workspace` and
`workspace_deleted` the `role` property is recomputed ("owner" when the workspace's owner is the
user, else "admin", "unknown" without a workspace of that slug); captured with
`distinct_id = user_id` and `groups = {"workspace": slug}`. Unlike Plane, the workspace is looked
up among soft-deleted rows too: Plane's own lookup races the delete it reports, so a deleted
workspace's owner came out "unknown" or "owner" by timing.

PostHog down (unreachable, deadline, 5xx, 429, a key it refuses): the batch's track events fail
together (EventFailures) and go through the retry tiers, then the DLQ, from which
`plane-workers dlq replay` sends them again; the batch's visits are committed meanwhile.
PostHog refusing a batch as malformed (400, 413): each event is sent alone once, and only those
it refuses again are dead-lettered.

PostHog not configured (POSTHOG_API_KEY or POSTHOG_HOST empty in the environment and, with
SKIP_ENV_VAR=1, in Plane's instance configuration): nothing is sent, and the track events are
acknowledged as done, counted in plane_workers_analytics_events_total{outcome="skipped_unconfigured"}
with one warning a minute. That is Plane's behaviour (its task returns with a warning): an
instance without analytics has nowhere to keep them, and holding them would stall the visits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.analytics_events import posthog, visits
from shared.events import Event
from shared.kafka.handler import EventFailures, HandlerContext, PermanentError
from shared.metrics import REGISTRY

log = logging.getLogger(__name__)

RECENT_VISIT = "plane.recent_visit.v1"
TRACK_EVENT = "plane.track_event.v1"
# Plane's analytics_events constants whose `role` its task recomputes.
ROLE_EVENTS = frozenset({"user_invited_to_workspace", "workspace_deleted"})

EVENTS = Counter(
    "plane_workers_analytics_events_total",
    "analytics-events outcomes: recent visits (touched, inserted, trimmed, skipped) and track events "
    "(sent, skipped_unconfigured, failed).",
    ["kind", "outcome"],
    registry=REGISTRY,
)

# Soft-deleted rows too (see above); a slug is unique among live and deleted rows alike.
_OWNERS = text("SELECT slug, owner_id FROM workspaces WHERE slug = ANY(:slugs)")
_UNCONFIGURED_LOG_EVERY_S = 60.0
_last_unconfigured_log = 0.0


def handle_batch(events: Sequence[Event], ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with batch="
    visit_events = [e for e in events if e.type == RECENT_VISIT]
    track_events = [e for e in events if e.type == TRACK_EVENT]
    if visit_events:
        done = visits.apply(session, visit_events)
        for outcome in ("touched", "inserted", "trimmed", "skipped"):
            if n := getattr(done, outcome):
                EVENTS.labels("recent_visit", outcome).inc(n)
    if track_events:
        _track(session, ctx, track_events)


def _track(session: Session, ctx: HandlerContext, events: Sequence[Event]) -> None:
    config = posthog.read_config(ctx.settings, session.connection())
    if config is None:
        EVENTS.labels("track_event", "skipped_unconfigured").inc(len(events))
        _log_unconfigured(len(events))
        return
    messages = _messages(session, events)
    client = posthog.client_for(ctx.settings)
    try:
        posthog.send(client, config, messages)
    except posthog.PostHogUnavailable as exc:
        EVENTS.labels("track_event", "failed").inc(len(events))
        raise EventFailures({e.id: exc for e in events}) from None
    except posthog.PostHogRejected:
        _send_alone(client, config, events, messages)
        return
    EVENTS.labels("track_event", "sent").inc(len(events))


def _send_alone(
    client: Any, config: posthog.PostHogConfig, events: Sequence[Event], messages: Sequence[dict[str, Any]]
) -> None:
    """The batch was refused as a whole: find the events PostHog refuses on their own. PostHog
    going away meanwhile fails the rest at once: one deadline per event, inside the batch's
    transaction, could outlast the poll interval."""
    failures: dict[str, Exception] = {}
    unavailable: posthog.PostHogUnavailable | None = None
    for event, msg in zip(events, messages, strict=True):
        if unavailable is not None:
            failures[event.id] = unavailable
            continue
        try:
            posthog.send(client, config, [msg])
        except posthog.PostHogRejected as exc:
            failures[event.id] = PermanentError(str(exc))
        except posthog.PostHogUnavailable as exc:
            failures[event.id] = unavailable = exc
    sent = len(events) - len(failures)
    if sent:
        EVENTS.labels("track_event", "sent").inc(sent)
    if failures:
        EVENTS.labels("track_event", "failed").inc(len(failures))
        raise EventFailures(failures)


def _messages(session: Session, events: Sequence[Event]) -> list[dict[str, Any]]:
    slugs = sorted({e.data["slug"] for e in events if e.data["event_name"] in ROLE_EVENTS and e.data["slug"]})
    owners: dict[str, str] = {}
    if slugs:
        for slug, owner_id in session.execute(_OWNERS, {"slugs": slugs}):
            owners[slug] = str(owner_id)
    messages = []
    for event in events:
        data = event.data
        properties = dict(data.get("event_properties") or {})
        if data["event_name"] in ROLE_EVENTS:
            owner = owners.get(data["slug"] or "")
            properties["role"] = (
                "unknown" if owner is None else "owner" if owner == data["user_id"] else "admin"
            )
        messages.append(
            posthog.message(
                event_id=event.id,
                event_time=event.time,
                user_id=str(data["user_id"]),
                event_name=data["event_name"],
                slug=data["slug"],
                properties=properties,
            )
        )
    return messages


def _log_unconfigured(count: int) -> None:
    global _last_unconfigured_log
    now = time.monotonic()
    if now - _last_unconfigured_log < _UNCONFIGURED_LOG_EVERY_S:
        return
    _last_unconfigured_log = now
    log.warning(
        "PostHog is not configured (POSTHOG_API_KEY and POSTHOG_HOST, or Plane's instance configuration): "
        "%d track events acknowledged without sending, as Plane skips them; counted in "
        'plane_workers_analytics_events_total{kind="track_event",outcome="skipped_unconfigured"}',
        count,
    )
