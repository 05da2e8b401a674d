"""Who gets which notification and which e-mail log for one event: a pure function of the reads.

Plane's `notifications` task, rule for rule (its shapes for `sender`, `title`, `message` and
`data` in every branch), except where it is wrong, on purpose:

- E-mail preferences are honoured each for its own kind of change (`wants_email`). Plane's last
  `elif preference.property_change` sent every change, state and comment ones included, to
  anyone with property_change on, whatever state_change, issue_completed or comment said.
- The actor stored in `data.issue_activity.actor` is the activity's actor. Plane read the key
  `actor_id`, which IssueActivitySerializer never emits, and stored the string "None" (bug 7).
- A description mention's e-mail log goes to the mentioned user. Plane used `subscriber`, the
  variable left over from its subscriber loop (bug 7), so another user (or nobody) got it; and
  its identifiers came from another leftover, the last activity of the event, instead of the
  activity the notification is about.
- Mentions are only diffed when the request carries a `description_html`. Plane diffed the
  missing description as empty, so every other update (a state change, a label) soft-deleted
  all of the issue's `issue_mentions` rows.
- A user without a preferences row (a bot) gets Plane's model defaults (everything on); an
  activity without a `comment` gets an empty title. Both crashed Plane's task, losing it whole.
- Order is deterministic (subscribers by id, mentions by first appearance) and ids are derived
  from the event, so the same event always plans the same rows.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.notifications import mentions
from services.notifications.payload import Activity, NotificationRequest
from services.notifications.reads import IssueRow, LatestActivity, Preferences, ProjectRow, Reads
from shared.kafka.handler import PermanentError

CREATED = "in_app:issue_activities:created"
ASSIGNED = "in_app:issue_activities:assigned"
SUBSCRIBED = "in_app:issue_activities:subscribed"
MENTIONED = "in_app:issue_activities:mentioned"


class UnknownActor(PermanentError):
    """The actor is not a user: every row would name a user that does not exist."""


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: uuid.UUID
    receiver_id: uuid.UUID
    sender: str
    title: str
    message: str | None  # stored in the JSON `message` column as a JSON string
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EmailLogRow:
    id: uuid.UUID
    receiver_id: uuid.UUID
    data: dict[str, Any]


@dataclass
class Plan:
    """The effects of one event, for the store to write (and the batch to remember)."""

    event_id: str
    skipped: str | None = None  # why nothing is written
    workspace_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    issue_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    subscribe_actor: bool = False
    mention_subscribers: list[uuid.UUID] = field(default_factory=list)
    mentions_added: list[uuid.UUID] = field(default_factory=list)
    mentions_removed: list[uuid.UUID] = field(default_factory=list)
    notifications: list[NotificationRow] = field(default_factory=list)
    email_logs: list[EmailLogRow] = field(default_factory=list)


def derived_id(event_id: str, *parts: object) -> uuid.UUID:
    """A UUID v4 (the version Plane's validators accept) fixed by the event and the row's role."""
    digest = hashlib.sha256(":".join(map(str, (event_id, *parts))).encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def wants_email(pref: Preferences, field_name: str | None, completed: bool) -> bool:
    """Each preference for its own kind of change (Plane let property_change decide them all)."""
    if field_name == "state":
        return pref.state_change or (pref.issue_completed and completed)
    if field_name == "comment":
        return pref.comment
    return pref.property_change


def plan(req: NotificationRequest, reads: Reads) -> Plan:
    out = Plan(event_id=req.event_id)
    if req.skipped:
        out.skipped = f"type {req.type} sends no notifications"
        return out
    project = reads.projects.get(req.project_id)
    issue = reads.issues.get(req.issue_id)
    if project is None:
        out.skipped = f"project {req.project_id} does not exist or is deleted"
    elif issue is None:
        out.skipped = f"issue {req.issue_id} does not exist"
    elif issue.deleted:
        out.skipped = f"issue {req.issue_id} is deleted"
    elif issue.project_id != req.project_id:
        out.skipped = f"issue {req.issue_id} is not in project {req.project_id}"
    if out.skipped or project is None or issue is None:
        return out
    actor_name = reads.display_names.get(req.actor_id)
    if actor_name is None:
        raise UnknownActor(f"actor {req.actor_id} is not a user")
    out.workspace_id, out.project_id = project.workspace_id, project.id
    out.issue_id, out.actor_id = issue.id, req.actor_id
    _Planner(req, reads, project, issue, actor_name, out).run()
    return out


class _Planner:
    def __init__(
        self,
        req: NotificationRequest,
        reads: Reads,
        project: ProjectRow,
        issue: IssueRow,
        actor_name: str,
        out: Plan,
    ) -> None:
        self.req, self.reads, self.project, self.issue, self.out = req, reads, project, issue, out
        self.actor_name = actor_name
        self.members = reads.active_members(project.id)
        self.assignees = reads.assignees(issue.id, project.id) & self.members

    def run(self) -> None:
        req, out = self.req, self.out
        requested, current = req.requested, req.current
        new_mentions: list[uuid.UUID] = []
        requested_mentions: list[uuid.UUID] = []
        if requested.present:
            new_mentions = [m for m in mentions.added(requested.html, current.html) if m in self.members]
            out.mentions_removed = mentions.removed(requested.html, current.html)
            requested_mentions = mentions.user_mentions(requested.html)
        comment_mentions, all_comment_mentions = self._comment_mentions()

        # Read before this event subscribes anyone: those it subscribes get mention notices.
        skip = {*new_mentions, *comment_mentions, req.actor_id}
        subscribers = sorted(
            s for s in self.reads.subscribers(self.issue.id, self.project.id) if s in self.members
        )
        out.mention_subscribers = self._new_subscribers([*requested_mentions, *all_comment_mentions])
        out.subscribe_actor = req.subscriber
        out.mentions_added = new_mentions

        for receiver in subscribers:
            if receiver not in skip:
                self._subscriber(receiver)
        for receiver in comment_mentions:
            if receiver != req.actor_id:
                self._comment_mention(receiver)
        for receiver in new_mentions:
            if receiver != req.actor_id:
                self._description_mention(receiver)

    def _comment_mentions(self) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        """(new mentions of active members, every mention) in the event's comment activities."""
        new: list[uuid.UUID] = []
        every: list[uuid.UUID] = []
        for a in self.req.activities:
            if a.issue_comment is None:
                continue
            every += mentions.user_mentions(a.new_value)
            if a.old_value is None:
                new += mentions.user_mentions(a.new_value)
            else:
                new += mentions.added(a.new_value, a.old_value)
        return _unique(m for m in new if m in self.members), _unique(every)

    def _new_subscribers(self, mentioned: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Plane's extract_mentions_as_subscribers: active members not yet subscriber, assignee
        or creator of the issue."""
        issue, project = self.issue, self.project
        subscribed = self.reads.subscribers(issue.id, project.id)
        assigned = self.reads.assignees(issue.id, project.id)
        return _unique(
            m
            for m in mentioned
            if m in self.members and m not in subscribed and m not in assigned and m != issue.created_by_id
        )

    def _sender(self, receiver: uuid.UUID) -> str:
        creator = self.issue.created_by_id
        if creator is not None and creator == receiver:
            return CREATED
        if receiver in self.assignees and creator not in self.assignees:
            return ASSIGNED
        return SUBSCRIBED

    def _subscriber(self, receiver: uuid.UUID) -> None:
        sender = self._sender(receiver)
        pref = self.reads.preference(receiver)
        for a in self.req.activities:
            # A relation's mirror activity is about the other issue; description edits notify
            # only through mentions.
            if a.issue != self.issue.id or a.field == "description":
                continue
            comment = self._comment_text(a)
            activity = {**self._activity(a), "issue_comment": comment}
            self.out.notifications.append(
                NotificationRow(
                    id=derived_id(self.req.event_id, "notification", receiver, a.id),
                    receiver_id=receiver,
                    sender=sender,
                    title=a.comment or "",
                    message=None,
                    data={"issue": self._issue(), "issue_activity": activity},
                )
            )
            completed = self.reads.state_completed(self.project.id, _as_uuid(a.new_identifier))
            if wants_email(pref, a.field, completed):
                email = {**activity, "activity_time": a.created_at}
                self._email(receiver, "email", a.id, email, extended=True)

    def _comment_mention(self, receiver: uuid.UUID) -> None:
        message = f"{self.actor_name} has mentioned you in a comment in issue {self.issue.name}"
        pref = self.reads.preference(receiver)
        for a in self.req.activities:
            self._mention(receiver, "comment-mention", a.id, message, self._issue(), self._activity(a))
            if pref.mention:
                activity = {**self._activity(a), "field": "mention", "activity_time": a.created_at}
                self._email(receiver, "comment-mention-email", a.id, activity, extended=True)

    def _description_mention(self, receiver: uuid.UUID) -> None:
        message = f"You have been mentioned in the issue {self.issue.name}"
        pref = self.reads.preference(receiver)
        latest = self.reads.latest.get(self.issue.id)
        if latest is not None and latest.field == "description" and latest.actor_id == self.req.actor_id:
            # The edit was coalesced into the actor's description activity: notify about that one.
            activity = _latest_activity(latest)
            issue = self._issue(extended=True)
            self._mention(receiver, "description-mention", latest.id, message, issue, activity)
            if pref.mention:
                time = _drf_datetime(latest.created_at)
                email = {**activity, "field": "mention", "activity_time": time}
                self._email(receiver, "description-mention-email", latest.id, email, extended=False)
            return
        for a in self.req.activities:
            self._mention(receiver, "description-mention", a.id, message, self._issue(), self._activity(a))
            if pref.mention:
                email = {**self._activity(a), "field": "mention", "activity_time": a.created_at}
                self._email(receiver, "description-mention-email", a.id, email, extended=False)

    def _mention(
        self,
        receiver: uuid.UUID,
        role: str,
        activity_id: object,
        message: str,
        issue: dict[str, Any],
        activity: dict[str, Any],
    ) -> None:
        self.out.notifications.append(
            NotificationRow(
                id=derived_id(self.req.event_id, role, receiver, activity_id),
                receiver_id=receiver,
                sender=MENTIONED,
                title="",  # Plane's mention notifications set no title: Django's "" default
                message=message,
                data={"issue": issue, "issue_activity": activity},
            )
        )

    def _email(
        self,
        receiver: uuid.UUID,
        role: str,
        activity_id: object,
        activity: dict[str, Any],
        *,
        extended: bool,
    ) -> None:
        self.out.email_logs.append(
            EmailLogRow(
                id=derived_id(self.req.event_id, role, receiver, activity_id),
                receiver_id=receiver,
                data={"issue": self._issue(extended=extended), "issue_activity": activity},
            )
        )

    def _comment_text(self, a: Activity) -> str:
        """comment_stripped of the activity's comment, if it is live and of this issue."""
        if a.issue_comment is None:
            return ""
        row = self.reads.comments.get(a.issue_comment)
        if row is None or (row.issue_id, row.project_id, row.workspace_id) != (
            self.issue.id,
            self.project.id,
            self.project.workspace_id,
        ):
            return ""
        return row.comment_stripped

    def _issue(self, *, extended: bool = False) -> dict[str, Any]:
        """Plane's issue block; `extended` adds project_id and workspace_slug, which Plane put
        in subscriber and comment-mention e-mail logs and one mention notification, not the rest."""
        issue = self.issue
        block: dict[str, Any] = {
            "id": str(issue.id),
            "name": issue.name,
            "identifier": issue.project_identifier,
            "sequence_id": issue.sequence_id,
            "state_name": issue.state_name,
            "state_group": issue.state_group,
        }
        if extended:
            block["project_id"] = str(issue.project_id)
            block["workspace_slug"] = self.project.workspace_slug
        return block

    def _activity(self, a: Activity) -> dict[str, Any]:
        """Plane's issue_activity block: values str()-ed as Plane does ("None" included)."""
        return {
            "id": str(a.id),
            "verb": str(a.verb),
            "field": str(a.field),
            "actor": str(a.actor or self.req.actor_id),
            "new_value": str(a.new_value),
            "old_value": str(a.old_value),
            "old_identifier": str(a.old_identifier) if a.old_identifier else None,
            "new_identifier": str(a.new_identifier) if a.new_identifier else None,
        }


def _latest_activity(latest: LatestActivity) -> dict[str, Any]:
    return {
        "id": str(latest.id),
        "verb": str(latest.verb),
        "field": str(latest.field),
        "actor": str(latest.actor_id),
        "new_value": str(latest.new_value),
        "old_value": str(latest.old_value),
        "old_identifier": str(latest.old_identifier) if latest.old_identifier else None,
        "new_identifier": str(latest.new_identifier) if latest.new_identifier else None,
    }


def _drf_datetime(value: datetime) -> str:
    """How the serializer writes created_at (ISO 8601, UTC as "Z"), so every log reads the same.
    Plane's description branch used str(datetime) here, a second format for the digest to parse."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _unique(values: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(values))
