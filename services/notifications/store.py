"""Reads for a whole batch (one query per kind) and the batch's writes (one statement per table).

`load` answers every lookup the rules make for all of a batch's events. `Writes` then takes the
events' plans in offset order and turns them into rows, keeping the state that events of one
issue share as Plane's tasks, run one after the other, would see it: a subscriber one event adds
is a subscriber for the next (Reads.subscribe), and a mention added then removed in one batch
ends as a soft-deleted row. `flush` writes it all with multi-row statements.

Idempotency: the runtime claims each event id in the same transaction, so an event is applied
once; the ids of its rows are derived from its id as well (rules.derived_id), so running it
again on its own (the savepoint pass that isolates a failing event) plans the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from services.notifications.payload import NotificationRequest
from services.notifications.reads import (
    CommentRow,
    IssueRow,
    LatestActivity,
    Preferences,
    ProjectRow,
    Reads,
)
from services.notifications.rules import Plan, derived_id
from shared.db.plane import (
    EmailNotificationLog,
    Issue,
    IssueActivity,
    IssueAssignee,
    IssueComment,
    IssueMention,
    IssueSubscriber,
    Notification,
    Project,
    ProjectMember,
    State,
    User,
    UserNotificationPreference,
    Workspace,
)

LIVE = text("deleted_at IS NULL")  # the predicate of Plane's partial unique indexes


def load(session: Session, requests: Sequence[NotificationRequest]) -> Reads:
    live = [r for r in requests if not r.skipped]
    reads = Reads()
    if not live:
        return reads
    project_ids = sorted({r.project_id for r in live})
    issue_ids = sorted({r.issue_id for r in live})
    actor_ids = sorted({r.actor_id for r in live})
    comment_ids = sorted({a.issue_comment for r in live for a in r.activities if a.issue_comment})
    state_ids = sorted(
        {s for r in live for a in r.activities if a.field == "state" and (s := _uuid(a.new_identifier))}
    )

    for row in session.execute(
        select(Project.id, Project.workspace_id, Workspace.slug, Project.identifier)
        .join(Workspace, Workspace.id == Project.workspace_id)  # issue.project.workspace: any row
        .where(Project.id.in_(project_ids), Project.deleted_at.is_(None))
    ):
        reads.projects[row[0]] = ProjectRow(*row)

    issue_project = Project.__table__.alias("issue_project")
    for row in session.execute(
        select(
            Issue.id,
            Issue.project_id,
            Issue.name,
            Issue.sequence_id,
            Issue.created_by_id,
            issue_project.c.identifier,
            State.name,
            State.group,
            Issue.deleted_at.is_not(None),
        )
        .join(issue_project, issue_project.c.id == Issue.project_id)
        .outerjoin(State, State.id == Issue.state_id)
        .where(Issue.id.in_(issue_ids))
    ):
        reads.issues[row[0]] = IssueRow(*row)

    members: dict[uuid.UUID, set[uuid.UUID]] = {p: set() for p in project_ids}
    for project_id, member_id in session.execute(
        select(ProjectMember.project_id, ProjectMember.member_id).where(
            ProjectMember.project_id.in_(project_ids),
            ProjectMember.is_active.is_(True),
            ProjectMember.deleted_at.is_(None),
            ProjectMember.member_id.is_not(None),
        )
    ):
        members[project_id].add(member_id)
    reads.members = {p: frozenset(m) for p, m in members.items()}

    s = IssueSubscriber
    for issue_id, user_id, project_id in session.execute(
        select(s.issue_id, s.subscriber_id, s.project_id).where(
            s.issue_id.in_(issue_ids), s.deleted_at.is_(None)
        )
    ):
        reads.subscriber_rows[issue_id].add((user_id, project_id))
    for issue_id, user_id, project_id in session.execute(
        select(IssueAssignee.issue_id, IssueAssignee.assignee_id, IssueAssignee.project_id).where(
            IssueAssignee.issue_id.in_(issue_ids), IssueAssignee.deleted_at.is_(None)
        )
    ):
        reads.assignee_rows[issue_id].add((user_id, project_id))

    if comment_ids:
        C = IssueComment
        for row in session.execute(
            select(C.id, C.issue_id, C.project_id, C.workspace_id, C.comment_stripped).where(
                C.id.in_(comment_ids), C.deleted_at.is_(None)
            )
        ):
            reads.comments[row[0]] = CommentRow(*row)

    A = IssueActivity
    for row in session.execute(
        select(
            A.issue_id,
            A.id,
            A.verb,
            A.field,
            A.actor_id,
            A.old_value,
            A.new_value,
            A.old_identifier,
            A.new_identifier,
            A.created_at,
        )
        .where(A.issue_id.in_(issue_ids), A.deleted_at.is_(None))
        .order_by(A.issue_id, A.created_at.desc())
        .ext(distinct_on(A.issue_id))
    ):
        reads.latest[row[0]] = LatestActivity(*row[1:])

    users = session.execute(select(User.id, User.display_name).where(User.id.in_(actor_ids)))
    reads.display_names = {user_id: name for user_id, name in users}
    reads.preferences = _preferences(session, project_ids)

    if state_ids:
        reads.completed_states = {
            (p, i)
            for i, p in session.execute(
                select(State.id, State.project_id).where(
                    State.id.in_(state_ids), State.group == "completed", State.deleted_at.is_(None)
                )
            )
        }
    return reads


def _preferences(session: Session, project_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
    """Every active member's preferences (every receiver is one). Plane `.get()`s the user's one
    row; should there be several, the user-wide one wins, then the newest."""
    p = UserNotificationPreference
    members = select(ProjectMember.member_id).where(
        ProjectMember.project_id.in_(project_ids),
        ProjectMember.is_active.is_(True),
        ProjectMember.deleted_at.is_(None),
    )
    query = (
        select(p.user_id, p.property_change, p.state_change, p.comment, p.mention, p.issue_completed)
        .where(p.user_id.in_(members), p.deleted_at.is_(None))
        .order_by(p.user_id, p.project_id.is_not(None), p.workspace_id.is_not(None), p.created_at.desc())
        .ext(distinct_on(p.user_id))
    )
    return {row[0]: Preferences(*row[1:]) for row in session.execute(query)}


def live_mentions(
    session: Session, issue_ids: Iterable[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    m = IssueMention
    if not issue_ids:
        return {}
    query = select(m.issue_id, m.mention_id, m.id).where(
        m.issue_id.in_(sorted(set(issue_ids))), m.deleted_at.is_(None)
    )
    return {(i, u): row_id for i, u, row_id in session.execute(query)}


@dataclass
class Writes:
    """The rows of a batch's plans, in offset order."""

    now: datetime
    reads: Reads
    mentions: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]  # live (issue, user) -> row id
    notifications: list[dict[str, Any]] = field(default_factory=list)
    email_logs: list[dict[str, Any]] = field(default_factory=list)
    subscribers: list[dict[str, Any]] = field(default_factory=list)
    new_mentions: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # by row id
    mentions_deleted: list[uuid.UUID] = field(default_factory=list)  # ids of rows already stored

    def add(self, plan: Plan) -> None:
        if plan.skipped:
            return
        assert plan.issue_id and plan.project_id and plan.workspace_id and plan.actor_id
        scope = {"issue_id": plan.issue_id, "project_id": plan.project_id, "workspace_id": plan.workspace_id}
        subscribe = [(plan.actor_id, plan.actor_id)] if plan.subscribe_actor else []
        # The actor's own subscription is theirs; Plane's bulk-created mention rows name nobody.
        subscribe += [(user, None) for user in plan.mention_subscribers]
        for user, by in subscribe:
            if self.reads.subscribe(plan.issue_id, user, plan.project_id):
                row_id = derived_id(plan.event_id, "subscriber", user)
                self.subscribers.append({**self._base(row_id, by), **scope, "subscriber_id": user})
        for user in plan.mentions_added:
            if (plan.issue_id, user) in self.mentions:
                continue  # already a live row (Plane's insert would fail the task)
            row_id = derived_id(plan.event_id, "mention", user)
            self.new_mentions[row_id] = {**self._base(row_id, None), **scope, "mention_id": user}
            self.mentions[(plan.issue_id, user)] = row_id
        for user in plan.mentions_removed:
            row_id = self.mentions.pop((plan.issue_id, user), None)
            if row_id is None:
                continue
            if row_id in self.new_mentions:  # added earlier in this batch: stored soft-deleted
                self.new_mentions[row_id] = {**self.new_mentions[row_id], "deleted_at": self.now}
            else:
                self.mentions_deleted.append(row_id)
        for n in plan.notifications:
            self.notifications.append(
                {
                    **self._base(n.id, None),
                    "workspace_id": plan.workspace_id,
                    "project_id": plan.project_id,
                    "data": n.data,
                    "entity_identifier": plan.issue_id,
                    "entity_name": "issue",
                    "title": n.title,
                    "message": n.message,
                    "message_html": "<p></p>",  # Plane's model default
                    "message_stripped": None,
                    "sender": n.sender,
                    "read_at": None,
                    "snoozed_till": None,
                    "archived_at": None,
                    "receiver_id": n.receiver_id,
                    "triggered_by_id": plan.actor_id,
                }
            )
        for e in plan.email_logs:
            self.email_logs.append(
                {
                    **self._base(e.id, None),
                    "receiver_id": e.receiver_id,
                    "triggered_by_id": plan.actor_id,
                    "entity_identifier": plan.issue_id,
                    "entity_name": "issue",
                    "data": e.data,
                    "processed_at": None,
                    "sent_at": None,
                    "entity": "",  # CharField without default: Django writes ""
                    "old_value": None,
                    "new_value": None,
                }
            )

    def _base(self, row_id: uuid.UUID, by: uuid.UUID | None) -> dict[str, Any]:
        return {
            "id": row_id,
            "created_at": self.now,
            "updated_at": self.now,
            "created_by_id": by,
            "updated_by_id": by,
            "deleted_at": None,
        }

    def flush(self, session: Session) -> None:
        live_subscriber = {"index_elements": ["issue_id", "subscriber_id"], "index_where": LIVE}
        live_mention = {"index_elements": ["issue_id", "mention_id"], "index_where": LIVE}
        # Another writer (Plane's API, the issue-activity consumer) may have added the same live
        # row since the reads: theirs stands, as with Plane's ignore_conflicts.
        _insert(session, IssueSubscriber.__table__, self.subscribers, live_subscriber)
        _insert(session, IssueMention.__table__, list(self.new_mentions.values()), live_mention)
        if self.mentions_deleted:
            # Plane's queryset delete() is a soft delete that sets deleted_at and nothing else.
            session.execute(
                update(IssueMention)
                .where(and_(IssueMention.id.in_(self.mentions_deleted), IssueMention.deleted_at.is_(None)))
                .values(deleted_at=self.now)
            )
        _insert(session, Notification.__table__, self.notifications, None)
        _insert(session, EmailNotificationLog.__table__, self.email_logs, None)


def _insert(
    session: Session, table: Any, rows: list[dict[str, Any]], conflict: dict[str, Any] | None
) -> None:
    """One executemany: SQLAlchemy sends it as multi-row INSERTs (insertmanyvalues) from a
    statement compiled once and cached; `.values(rows)` compiled a bind per value, every batch,
    which was half the consumer's CPU."""
    if not rows:
        return
    statement = insert(table)
    if conflict is None:
        statement = statement.on_conflict_do_nothing(index_elements=[table.c.id])
    else:
        statement = statement.on_conflict_do_nothing(**conflict)
    session.execute(statement, rows)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
