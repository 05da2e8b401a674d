"""What the rules read, loaded for a whole batch at once (store.load), as plain data.

Each lookup answers what the Django manager of Plane's task would: `objects` (live rows only)
for members, subscribers, assignees, comments, preferences and the event's issue and project;
related objects reached through a foreign key (the issue's state, project, workspace) come
through the base manager, soft-deleted or not.

`Reads` is the one mutable part of a batch: the subscribers an event adds are visible to the
events after it (`subscribe`), as they would be to Plane's next task, so an event's effects do
not depend on which events share its batch.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: uuid.UUID
    workspace_id: uuid.UUID
    workspace_slug: str
    identifier: str


@dataclass(frozen=True, slots=True)
class IssueRow:
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    sequence_id: int
    created_by_id: uuid.UUID | None
    # issue.project.identifier (through the FK, whatever project the event names)
    project_identifier: str
    state_name: str | None  # None: the issue has no state (Plane's task crashed on it)
    state_group: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class LatestActivity:
    id: uuid.UUID
    verb: str
    field: str | None
    actor_id: uuid.UUID | None
    old_value: str | None
    new_value: str | None
    old_identifier: uuid.UUID | None
    new_identifier: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CommentRow:
    id: uuid.UUID
    issue_id: uuid.UUID
    project_id: uuid.UUID
    workspace_id: uuid.UUID
    comment_stripped: str


@dataclass(frozen=True, slots=True)
class Preferences:
    """user_notification_preferences: which changes the user wants e-mailed."""

    property_change: bool = True
    state_change: bool = True
    comment: bool = True
    mention: bool = True
    issue_completed: bool = True


# Plane's model defaults: what a user without a preferences row (a bot) gets, instead of the
# DoesNotExist that lost Plane's whole task.
DEFAULT_PREFERENCES = Preferences()


@dataclass
class Reads:
    projects: dict[uuid.UUID, ProjectRow] = field(default_factory=dict)  # live
    issues: dict[uuid.UUID, IssueRow] = field(default_factory=dict)  # any, `deleted` flagged
    # project -> active members (project_members live, is_active, member set)
    members: dict[uuid.UUID, frozenset[uuid.UUID]] = field(default_factory=dict)
    # issue -> {(subscriber, project of the row)}, live rows
    subscriber_rows: defaultdict[uuid.UUID, set[tuple[uuid.UUID, uuid.UUID]]] = field(
        default_factory=lambda: defaultdict(set)
    )
    # issue -> {(assignee, project of the row)}, live rows
    assignee_rows: defaultdict[uuid.UUID, set[tuple[uuid.UUID, uuid.UUID]]] = field(
        default_factory=lambda: defaultdict(set)
    )
    comments: dict[uuid.UUID, CommentRow] = field(default_factory=dict)  # live
    latest: dict[uuid.UUID, LatestActivity] = field(default_factory=dict)  # issue -> newest live
    display_names: dict[uuid.UUID, str] = field(default_factory=dict)  # users that exist
    preferences: dict[uuid.UUID, Preferences] = field(default_factory=dict)
    # live, non-triage states in the completed group: (project, state)
    completed_states: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)

    def active_members(self, project_id: uuid.UUID) -> frozenset[uuid.UUID]:
        return self.members.get(project_id, frozenset())

    def subscribers(self, issue_id: uuid.UUID, project_id: uuid.UUID) -> set[uuid.UUID]:
        return {s for s, p in self.subscriber_rows[issue_id] if p == project_id}

    def assignees(self, issue_id: uuid.UUID, project_id: uuid.UUID) -> set[uuid.UUID]:
        return {a for a, p in self.assignee_rows[issue_id] if p == project_id}

    def is_subscribed(self, issue_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Whether a live row exists at all (the unique index ignores the project)."""
        return any(s == user_id for s, _ in self.subscriber_rows[issue_id])

    def subscribe(self, issue_id: uuid.UUID, user_id: uuid.UUID, project_id: uuid.UUID) -> bool:
        """Record a subscription an event made; False when a live row already held it."""
        if self.is_subscribed(issue_id, user_id):
            return False
        self.subscriber_rows[issue_id].add((user_id, project_id))
        return True

    def preference(self, user_id: uuid.UUID) -> Preferences:
        return self.preferences.get(user_id, DEFAULT_PREFERENCES)

    def state_completed(self, project_id: uuid.UUID, state_id: uuid.UUID | None) -> bool:
        return state_id is not None and (project_id, state_id) in self.completed_states
