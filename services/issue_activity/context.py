"""What every handler gets: the event's ids, its payload, the lookups, and a place to put rows."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.issue_activity.lookups import IssueRef, Kind, Lookups
from services.issue_activity.payload import Payload, as_uuid, text
from services.issue_activity.result import DescriptionBump, SubscriberToAdd

log = logging.getLogger("services.issue_activity")


@dataclass(slots=True)
class Draft:
    """A row before ids and timestamps are assigned (they depend on its place in the event)."""

    issue_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    verb: str
    field: str | None
    old_value: str | None
    new_value: str | None
    comment: str
    old_identifier: uuid.UUID | None
    new_identifier: uuid.UUID | None
    issue_comment_id: uuid.UUID | None
    created_at: datetime | None  # only the `created` row has one of its own


@dataclass(slots=True)
class Context:
    type: str
    issue_id: uuid.UUID | None
    actor_id: uuid.UUID
    project_id: uuid.UUID
    workspace_id: uuid.UUID
    epoch: float | None
    payload: Payload
    lookups: Lookups
    now: datetime
    drafts: list[Draft] = field(default_factory=list)
    subscribers: list[SubscriberToAdd] = field(default_factory=list)
    bumps: list[DescriptionBump] = field(default_factory=list)
    touched: list[uuid.UUID] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(
        self,
        *,
        verb: str,
        comment: str,
        field: str | None = None,
        old_value: object = None,
        new_value: object = None,
        old_identifier: object = None,
        new_identifier: object = None,
        issue_comment_id: object = None,
        issue_id: object = ...,
        actor_id: object = ...,
        created_at: datetime | None = None,
    ) -> None:
        """Append a row; values are coerced as Django's fields would (which may raise)."""
        self.drafts.append(
            Draft(
                issue_id=self.issue_id if issue_id is ... else as_uuid(issue_id, "issue_id"),
                actor_id=self.actor_id if actor_id is ... else as_uuid(actor_id, "actor_id"),
                verb=text(verb) or "",
                field=text(field),
                old_value=text(old_value),
                new_value=text(new_value),
                comment=comment,
                old_identifier=as_uuid(old_identifier, "old_identifier"),
                new_identifier=as_uuid(new_identifier, "new_identifier"),
                issue_comment_id=as_uuid(issue_comment_id, "issue_comment_id"),
                created_at=created_at,
            )
        )

    def warn(self, message: str) -> None:
        """A row Plane's task would have crashed on is left out; the rest of the event is kept."""
        if not self.lookups.recording:  # a prefetch pass sees absences that are not real yet
            log.warning("issue activity (type %s, issue %s): %s", self.type, self.issue_id, message)
        self.warnings.append(message)

    # --- lookups, with Plane's managers' semantics -------------------------------------------

    def live_issue(self, issue_id: uuid.UUID | None) -> IssueRef | None:
        """`Issue.objects.filter(pk=...).first()`: soft-deleted issues are not found."""
        if issue_id is None:
            return None
        ref: IssueRef | None = self.lookups.get(Kind.ISSUE, issue_id)
        return ref if ref is not None and not ref.deleted else None

    def touch(self, issue_id: uuid.UUID | None) -> None:
        """Plane sets `updated_at = now()` on a live issue here."""
        if self.live_issue(issue_id) is not None and issue_id not in self.touched:
            assert issue_id is not None
            self.touched.append(issue_id)

    def get(self, kind: Kind, key: Any) -> Any:
        return self.lookups.get(kind, key)
