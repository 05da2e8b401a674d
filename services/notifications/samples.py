"""Conformance samples for `notifications`, and the Plane-shaped inputs its tests build.

Each sample issue has its creator and one more user subscribed; every event is by a third user.
Even issues get a state change to a completed state, odd ones a description edit mentioning a
fourth user, who has no preferences row (a bot). The effects list every notification, e-mail
log, subscriber and mention row: a duplicate shows as a repeated entry (notifications, logs) or
would break a unique index (subscribers, mentions).

The expectation encodes two fixed Plane bugs: the subscriber with state_change and
issue_completed off gets no state e-mail (Plane's property_change branch sent one), and the
mention's e-mail log goes to the mentioned user (Plane: the leftover loop variable).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from services.notifications.payload import EVENT_TYPE
from shared.conformance import ConsumerSamples, SampleWorld
from shared.db.plane import EmailNotificationLog, Issue, IssueMention, IssueSubscriber, Notification, User
from shared.events import new_event
from shared.testing import plane_factory as make


def drf_time(value: datetime) -> str:
    """created_at as IssueActivitySerializer writes it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def serialized_activity(
    issue: Issue,
    actor: User,
    *,
    verb: str = "updated",
    field: str | None = None,
    old_value: str | None = None,
    new_value: str | None = None,
    comment: str = "",
    old_identifier: uuid.UUID | None = None,
    new_identifier: uuid.UUID | None = None,
    issue_comment: uuid.UUID | None = None,
    about: uuid.UUID | None = None,  # issue_detail.id when it is another issue (relation mirror)
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """One row of IssueActivitySerializer(...).data after DjangoJSONEncoder: FKs by id under
    their field names (`actor`, not `actor_id`), plus the *_detail blocks."""
    at = drf_time(created_at or datetime.now(UTC))
    issue_id = str(about or issue.id)
    return {
        "id": str(uuid.uuid4()),
        "actor_detail": {"id": str(actor.id), "display_name": actor.display_name},
        "issue_detail": {"id": issue_id, "name": issue.name, "sequence_id": issue.sequence_id},
        "project_detail": {"id": str(issue.project_id)},
        "workspace_detail": {"id": str(issue.workspace_id)},
        "source_data": None,
        "created_at": at,
        "updated_at": at,
        "deleted_at": None,
        "verb": verb,
        "field": field,
        "old_value": old_value,
        "new_value": new_value,
        "comment": comment,
        "attachments": [],
        "old_identifier": str(old_identifier) if old_identifier else None,
        "new_identifier": str(new_identifier) if new_identifier else None,
        "epoch": 1714557600.0,
        "created_by": None,
        "updated_by": None,
        "project": str(issue.project_id),
        "workspace": str(issue.workspace_id),
        "issue": issue_id,
        "issue_comment": str(issue_comment) if issue_comment else None,
        "actor": str(actor.id),
    }


def event_data(
    type: str,
    issue: Issue,
    actor: User,
    activities: list[dict[str, Any]],
    requested: dict[str, Any] | None = None,
    current: dict[str, Any] | None = None,
    *,
    subscriber: bool = True,
) -> dict[str, Any]:
    """The kwargs of Plane's notifications.delay(), its JSON strings included."""
    return {
        "type": type,
        "issue_id": str(issue.id),
        "project_id": str(issue.project_id),
        "actor_id": str(actor.id),
        "subscriber": subscriber,
        "issue_activities_created": json.dumps(activities),
        "requested_data": json.dumps(requested) if requested is not None else None,
        "current_instance": json.dumps(current) if current is not None else None,
    }


def mention_html(*users: User | uuid.UUID) -> str:
    tags = "".join(
        f'<mention-component entity_name="user_mention" entity_identifier="{getattr(u, "id", u)}">'
        "</mention-component>"
        for u in users
    )
    return f"<p>hello {tags}</p>"


def add_subscriber(session: Session, issue: Issue, user: User, **values: Any) -> None:
    session.add(make.issue_subscriber(issue, user, **values))
    session.flush()


def add_preferences(session: Session, user: User, **flags: bool) -> None:
    """A user_notification_preferences row: Plane's defaults (all on) unless `flags` say not."""
    session.add(make.notification_preference(user, **flags))
    session.flush()


def cases(world: SampleWorld) -> ConsumerSamples:
    creator, other, actor, bot = (make.user(i) for i in range(4))
    with Session(world.engine, expire_on_commit=False) as session, session.begin():
        session.add_all([creator, other, actor, bot])
        session.flush()
        ws = make.workspace(creator, slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        proj = make.project(ws)
        session.add(proj)
        session.flush()
        done = make.state(proj, "Done", "completed")
        session.add_all([done, *(make.project_member(proj, u) for u in (creator, other, actor, bot))])
        issues = [make.issue(proj, n + 1) for n in range(world.size)]
        session.add_all(issues)
        session.flush()
        add_preferences(session, creator)
        add_preferences(session, other, state_change=False, issue_completed=False)
        add_preferences(session, actor)
        for issue in issues:
            add_subscriber(session, issue, creator)
            add_subscriber(session, issue, other)

    events, expected = [], []
    for n, issue in enumerate(issues):
        key = str(issue.id)
        expected.append(("subscriber", key, str(actor.id)))
        expected += [("subscriber", key, str(u.id)) for u in (creator, other)]
        if n % 2 == 0:
            activity = serialized_activity(
                issue, actor, field="state", old_value="Todo", new_value="Done", new_identifier=done.id
            )
            data = event_data(
                "issue.activity.updated", issue, actor, [activity], {"state_id": str(done.id)}, {}
            )
            expected += [
                ("notification", key, str(creator.id), "in_app:issue_activities:created", None),
                ("notification", key, str(other.id), "in_app:issue_activities:subscribed", None),
                ("email", key, str(creator.id), "state"),
            ]
        else:
            activity = serialized_activity(issue, actor, field="description", new_value="hello")
            requested = {"description_html": mention_html(bot)}
            data = event_data(
                "issue.activity.updated", issue, actor, [activity], requested, {"description_html": "<p></p>"}
            )
            expected += [
                ("notification", key, str(bot.id), "in_app:issue_activities:mentioned", _mentioned(issue)),
                ("email", key, str(bot.id), "mention"),
                ("subscriber", key, str(bot.id)),
                ("mention", key, str(bot.id), False),
            ]
        events.append((key, new_event(EVENT_TYPE, data)))
    return ConsumerSamples(
        events=events, effects=lambda: effects(world.engine), expected=sorted(expected, key=str)
    )


def _mentioned(issue: Issue) -> str:
    return f"You have been mentioned in the issue {issue.name}"


def effects(engine: Engine) -> list[tuple[Any, ...]]:
    """Every row this consumer writes, reduced to what must hold whatever crashed or repeated."""
    n, s, m = Notification, IssueSubscriber, IssueMention
    E = EmailNotificationLog
    with engine.connect() as conn:
        rows: list[tuple[Any, ...]] = [
            ("notification", str(i), str(r), sender, message)
            for i, r, sender, message in conn.execute(
                select(n.entity_identifier, n.receiver_id, n.sender, n.message)
            )
        ]
        rows += [
            ("email", str(i), str(r), data["issue_activity"]["field"])
            for i, r, data in conn.execute(select(E.entity_identifier, E.receiver_id, E.data))
        ]
        rows += [
            ("subscriber", str(i), str(u))
            for i, u in conn.execute(select(s.issue_id, s.subscriber_id).where(s.deleted_at.is_(None)))
        ]
        rows += [
            ("mention", str(i), str(u), d is not None)
            for i, u, d in conn.execute(select(m.issue_id, m.mention_id, m.deleted_at))
        ]
    return sorted(rows, key=str)
