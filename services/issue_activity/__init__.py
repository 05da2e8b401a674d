"""Consumer `issue-activity` (Plane's `issue_activity` task): the translator at its core.

`translate` turns the `data` of one `plane.issue_activity.v1` event into the `issue_activities`
rows Plane writes, plus the side effects as data. It reads nothing itself: names and ids come
from a `Lookups`, which `prefetch` fills with one query per kind for a whole batch.

How the consumer is meant to call it, per batch, inside the batch's transaction::

    outcomes = translate_with_db(conn, [(event.id, event.data) for event in batch], now=now)
    for event, outcome in zip(batch, outcomes):
        if isinstance(outcome, InvalidActivity):
            ...  # dead-letter this event alone (Plane would have logged and lost it)
        elif outcome.skipped:
            ...  # nothing to write (Plane's silent return); claim the event id and move on

and then, for all results together, in this order:

1. INSERT every `row.as_row()` into issue_activities (multi-row; the ids derive from the event
   id, so `ON CONFLICT (id) DO NOTHING` makes a replay harmless);
2. UPDATE issue_activities SET created_at for each `description_bumps` entry (coalescing);
3. UPDATE issues SET updated_at = now WHERE id IN `touch_issue_ids` (only that column: never
   null created_by_id/updated_by_id, Plane's bug 8);
4. INSERT `subscribers` into issue_subscribers with created_by_id = updated_by_id = subscriber,
   ON CONFLICT (issue_id, subscriber_id) WHERE deleted_at IS NULL DO NOTHING;
5. when `data["notification"]`, hand the rows to the notifications event.

Events of one issue must be translated in offset order within a batch (`translate_batch` does,
and lets each see the previous one's rows as the issue's latest activity). Use a fresh `Lookups`
per batch: its answers (names, the latest activity per issue) go stale once the batch commits.
`translate` alone, with a `Lookups` filled by `prefetch`, serves a one-event caller.

`data["subscriber"]`, `notification` and `origin` are not the translator's business: the consumer
reads them from the event (origin for e-mail links, notification for the follow-up event).
"""

from services.issue_activity.lookups import Kind, LookupNotLoaded, Lookups, load, prefetch
from services.issue_activity.result import (
    ActivityResult,
    ActivityRow,
    DescriptionBump,
    InvalidActivity,
    SubscriberToAdd,
)
from services.issue_activity.translate import Outcome, translate, translate_batch, translate_with_db

__all__ = [
    "ActivityResult",
    "ActivityRow",
    "DescriptionBump",
    "InvalidActivity",
    "Kind",
    "LookupNotLoaded",
    "Lookups",
    "Outcome",
    "SubscriberToAdd",
    "load",
    "prefetch",
    "translate",
    "translate_batch",
    "translate_with_db",
]
