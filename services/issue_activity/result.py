"""What translating one `plane.issue_activity.v1` event produces: rows and side effects, as data.

Nothing here touches the database. The consumer that writes these (one transaction per batch) owns
the inserts and updates; see the package docstring for the order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class InvalidActivity(ValueError):
    """The event cannot be translated: Plane's task would have raised on it and lost it.

    Raised for input whose shape is wrong (requested_data that is not JSON or not an object, a list
    field that is not a list, an identifier that is not a UUID where Plane does not check first, an
    actor that does not exist). The consumer dead-letters it instead of logging and dropping it.
    """


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One `issue_activities` row, column for column as Plane's `bulk_create` writes it.

    `created_by_id`/`updated_by_id` stay NULL (Plane's Celery context has no current user) and
    `attachments` is always empty: no activity type fills it.
    """

    id: uuid.UUID
    issue_id: uuid.UUID | None
    project_id: uuid.UUID
    workspace_id: uuid.UUID
    actor_id: uuid.UUID | None
    verb: str
    field: str | None
    old_value: str | None
    new_value: str | None
    comment: str
    old_identifier: uuid.UUID | None
    new_identifier: uuid.UUID | None
    issue_comment_id: uuid.UUID | None
    epoch: float | None
    created_at: datetime
    updated_at: datetime

    def as_row(self) -> dict[str, Any]:
        """Every column of `issue_activities`, ready for a multi-row INSERT."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": None,
            "verb": self.verb,
            "field": self.field,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "comment": self.comment,
            "attachments": [],
            "created_by_id": None,
            "updated_by_id": None,
            "issue_id": self.issue_id,
            "issue_comment_id": self.issue_comment_id,
            "project_id": self.project_id,
            "workspace_id": self.workspace_id,
            "actor_id": self.actor_id,
            "old_identifier": self.old_identifier,
            "new_identifier": self.new_identifier,
            "epoch": self.epoch,
        }


@dataclass(frozen=True, slots=True)
class SubscriberToAdd:
    """An `issue_subscribers` row Plane creates for a new assignee (`ignore_conflicts=True`).

    Plane sets `created_by_id = updated_by_id = subscriber_id`.
    """

    issue_id: uuid.UUID
    subscriber_id: uuid.UUID
    project_id: uuid.UUID
    workspace_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class DescriptionBump:
    """Description edits coalesce: the actor's previous description activity moves to `created_at`.

    Plane saves only `created_at` (its `updated_at` is left as it was).
    """

    activity_id: uuid.UUID
    issue_id: uuid.UUID
    created_at: datetime


@dataclass(slots=True)
class ActivityResult:
    """The outcome of one event.

    `skipped` is set (with a reason that was logged) when Plane's task would have returned
    without writing: a project id that is not a UUID v4, a project that is gone. `warnings` lists
    the rows left out of an otherwise written event (a label deleted since the request, say),
    where Plane's task would have raised and lost the whole event.
    """

    rows: list[ActivityRow] = field(default_factory=list)
    subscribers: list[SubscriberToAdd] = field(default_factory=list)
    description_bumps: list[DescriptionBump] = field(default_factory=list)
    # Issues whose updated_at Plane sets to now (live issues only, in order, no duplicates).
    touch_issue_ids: list[uuid.UUID] = field(default_factory=list)
    skipped: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def bump_updated_at(self) -> bool:
        return bool(self.touch_issue_ids)
