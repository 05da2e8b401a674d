"""Writes a batch's translation results with one statement per kind, in the package's order.

Rows first (their ids derive from the event id: a replay conflicts and writes nothing), then the
description coalescing moves, the `updated_at` touches (that column only: Plane's bug 8 nulled
the authors), and the subscribers Plane adds for new assignees.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from services.issue_activity.result import ActivityResult
from shared.db.plane import IssueActivity

_ROWS = insert(IssueActivity.__table__).on_conflict_do_nothing(index_elements=["id"])

# A later bump of the same activity in the batch wins, as it would one event at a time.
_BUMP = text(
    """
    UPDATE issue_activities a SET created_at = b.created_at
    FROM (SELECT DISTINCT ON (id) id, created_at
          FROM unnest(CAST(:ids AS uuid[]), CAST(:at AS timestamptz[]))
               WITH ORDINALITY AS u(id, created_at, n)
          ORDER BY id, n DESC) b
    WHERE a.id = b.id
    """
)

_TOUCH = text("UPDATE issues SET updated_at = :now WHERE id = ANY(CAST(:ids AS uuid[]))")

_SUBSCRIBE = text(
    """
    INSERT INTO issue_subscribers (id, created_at, updated_at, created_by_id, updated_by_id,
                                   issue_id, subscriber_id, project_id, workspace_id)
    SELECT gen_random_uuid(), :now, :now, s, s, i, s, p, w
    FROM unnest(CAST(:subscribers AS uuid[]), CAST(:issues AS uuid[]), CAST(:projects AS uuid[]),
                CAST(:workspaces AS uuid[])) AS u(s, i, p, w)
    ON CONFLICT (issue_id, subscriber_id) WHERE deleted_at IS NULL DO NOTHING
    """
)


def write(conn: Connection, results: Sequence[ActivityResult], now: datetime) -> int:
    """Returns how many activity rows were inserted (a replay inserts none)."""
    rows = [row.as_row() for result in results for row in result.rows]
    inserted = 0
    if rows:
        inserted = conn.execute(_ROWS, rows).rowcount
    bumps = [bump for result in results for bump in result.description_bumps]
    if bumps:
        conn.execute(_BUMP, {"ids": [b.activity_id for b in bumps], "at": [b.created_at for b in bumps]})
    touched = sorted({issue for result in results for issue in result.touch_issue_ids})
    if touched:
        conn.execute(_TOUCH, {"now": now, "ids": touched})
    subscribers = {(s.issue_id, s.subscriber_id): s for result in results for s in result.subscribers}
    if subscribers:
        values = list(subscribers.values())
        conn.execute(
            _SUBSCRIBE,
            {
                "now": now,
                "subscribers": [s.subscriber_id for s in values],
                "issues": [s.issue_id for s in values],
                "projects": [s.project_id for s in values],
                "workspaces": [s.workspace_id for s in values],
            },
        )
    return inserted
