"""issue-activity and notifications together on the embedded broker.

What issue-activity hands on (`plane.notifications.v1`, built by its `_notifications_event`) must
be what the notifications schema and consumer accept: an issue's subscriber gets Plane's
notification rows and e-mail logs for the activities issue-activity wrote, the actor gets none,
and the same events delivered again change nothing. Each consumer's own rules are checked in
test_issue_activity_rows.py and test_notifications.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Message
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared import registry
from shared.db.plane import (
    EmailNotificationLog,
    Issue,
    IssueActivity,
    IssueComment,
    IssueSubscriber,
    Notification,
    State,
    User,
)
from shared.events import Event, new_event
from shared.events.envelope import parse_event
from shared.events.producer import EventProducer
from shared.metrics import REGISTRY
from shared.settings import Settings
from shared.testing import plane_factory as make
from shared.testing.topics import read_topic
from tests.helpers import consumer_thread, dead_letters, processed, wait_until
from tests.integration.webhook_world import produce

ISSUE_ACTIVITY = registry.consumer("issue-activity")
NOTIFICATIONS = registry.consumer("notifications")
SUBSCRIBED = "in_app:issue_activities:subscribed"
EPOCH = 1764547200


@dataclass
class World:
    engine: Engine
    actor: User
    subscriber: User
    issue: Issue
    todo: State
    done: State
    comment: IssueComment


@pytest.fixture
def w(engine: Engine) -> World:
    """A project whose issue the actor (its creator) changes and another member subscribes to."""
    actor, subscriber = make.user(0, display_name="actor"), make.user(1, display_name="subscriber")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all([actor, subscriber])
        session.flush()
        ws = make.workspace(actor, slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        proj = make.project(ws)
        session.add(proj)
        session.flush()
        todo, done = make.state(proj, "Todo", "unstarted"), make.state(proj, "Done", "completed")
        session.add_all([todo, done])
        session.flush()
        # Plane saves the issue, then queues issue_activity: the rows already hold the change.
        issue = make.issue(proj, 1, state_id=done.id, priority="high")
        session.add(issue)
        session.flush()
        comment = make.issue_comment(issue, actor, "<p>looks good</p>", "looks good")
        session.add_all([make.project_member(proj, u) for u in (actor, subscriber)] + [comment])
        session.add_all(
            [
                make.issue_subscriber(issue, subscriber),
                make.notification_preference(actor),
                # State changes (completion included) not e-mailed: only priority and comment are.
                make.notification_preference(subscriber, state_change=False, issue_completed=False),
            ]
        )
    return World(engine, actor, subscriber, issue, todo, done, comment)


def activity_event(w: World, kind: str, requested: dict[str, Any], current: dict[str, Any] | None) -> Event:
    """`issue_activity.delay(...)` as Plane's API calls it, asking for notifications."""
    return new_event(
        "plane.issue_activity.v1",
        {
            "type": kind,
            "requested_data": json.dumps(requested),
            "current_instance": None if current is None else json.dumps(current),
            "issue_id": str(w.issue.id),
            "actor_id": str(w.actor.id),
            "project_id": str(w.issue.project_id),
            "epoch": EPOCH,
            "subscriber": True,
            "notification": True,
            "origin": "https://app.plane.example",
        },
    )


def events(w: World) -> list[Event]:
    c = w.comment
    comment = {  # IssueCommentSerializer data
        "id": str(c.id),
        "comment_html": c.comment_html,
        "comment_stripped": c.comment_stripped,
        "comment_json": {},
        "attachments": [],
        "access": "INTERNAL",
        "issue": str(w.issue.id),
        "project": str(w.issue.project_id),
        "workspace": str(w.issue.workspace_id),
        "actor": str(w.actor.id),
    }
    return [
        activity_event(w, "issue.activity.updated", {"priority": "high"}, {"priority": "none"}),
        activity_event(
            w, "issue.activity.updated", {"state_id": str(w.done.id)}, {"state_id": str(w.todo.id)}
        ),
        activity_event(w, "comment.activity.created", comment, None),
    ]


def rows(engine: Engine, model: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(select(model.__table__)).mappings().all()
    return sorted((dict(r) for r in found), key=lambda r: str(r["id"]))


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    models = (IssueActivity, Notification, EmailNotificationLog, IssueSubscriber)
    return {m.__tablename__: rows(engine, m) for m in models}


def duplicates(consumer: str) -> float:
    """Events the consumer skipped because an earlier delivery's effects were committed."""
    labels = {"consumer": consumer, "outcome": "duplicate"}
    return REGISTRY.get_sample_value("plane_workers_events_processed_total", labels) or 0.0


def settled(engine: Engine, settings: Settings, n: int) -> bool:
    """Both consumers are done with `n` events each, applied or dead-lettered."""
    return all(
        processed(engine, spec.name) + len(dead_letters(settings, spec.topic)) >= n
        for spec in (ISSUE_ACTIVITY, NOTIFICATIONS)
    )


def handed_on(settings: Settings) -> list[Message]:
    return read_topic(settings, settings.topic(NOTIFICATIONS.topic))


def test_the_subscriber_is_notified_of_what_issue_activity_wrote(w: World, settings: Settings) -> None:
    sent = events(w)
    key = str(w.issue.id)
    with consumer_thread(ISSUE_ACTIVITY, settings), consumer_thread(NOTIFICATIONS, settings):
        produce(settings, ISSUE_ACTIVITY.topic, sent, key)
        wait_until(lambda: settled(w.engine, settings, len(sent)), 90, 0.5)
        for spec in (ISSUE_ACTIVITY, NOTIFICATIONS):
            letters = dead_letters(settings, spec.topic)
            assert letters == [], [d["headers"].get("error-message") for d in letters]
        first = snapshot(w.engine)

        # The same events again: issue-activity has claimed them, so it writes and hands on
        # nothing; its follow-ups delivered again (as after a crash before its commit) are
        # claimed by notifications. Either way the rows stay as they are.
        before = duplicates(ISSUE_ACTIVITY.name), duplicates(NOTIFICATIONS.name)
        produce(settings, ISSUE_ACTIVITY.topic, sent, key)
        wait_until(lambda: duplicates(ISSUE_ACTIVITY.name) >= before[0] + len(sent), 60)
        notices = handed_on(settings)
        assert len(notices) == len(sent)  # the repeats handed nothing on
        producer = EventProducer(settings)
        producer.send_raw_many(notices[0].topic(), [(m.key(), m.value(), ()) for m in notices])
        producer.close()
        wait_until(lambda: duplicates(NOTIFICATIONS.name) >= before[1] + len(sent), 60)
    assert snapshot(w.engine) == first

    # What issue-activity handed on is valid plane.notifications.v1, naming the rows it wrote.
    activities = {str(a["id"]): a for a in first["issue_activities"]}
    assert sorted(a["field"] for a in activities.values()) == ["comment", "priority", "state"]
    for message in notices:
        event = parse_event(message.value(), max_bytes=settings.event_max_bytes)
        assert event.type == "plane.notifications.v1"
        assert {a["id"] for a in event.data["issue_activities_created"]} <= activities.keys()

    notifications = first["notifications"]
    assert {n["receiver_id"] for n in notifications} == {w.subscriber.id}  # the actor: none
    assert sorted(n["data"]["issue_activity"]["id"] for n in notifications) == sorted(activities)
    for n in notifications:
        activity = activities[n["data"]["issue_activity"]["id"]]
        assert n["sender"] == SUBSCRIBED
        assert n["title"] == activity["comment"]
        assert n["triggered_by_id"] == w.actor.id
        assert (n["entity_name"], n["entity_identifier"]) == ("issue", w.issue.id)
        assert (n["project_id"], n["workspace_id"]) == (w.issue.project_id, w.issue.workspace_id)
        assert n["data"]["issue_activity"]["field"] == activity["field"]
        assert n["data"]["issue"]["state_name"] == "Done"
    [on_comment] = [n for n in notifications if n["data"]["issue_activity"]["field"] == "comment"]
    assert on_comment["data"]["issue_activity"]["issue_comment"] == "looks good"

    logs = first["email_notification_logs"]
    emailed = sorted((e["receiver_id"], e["data"]["issue_activity"]["field"]) for e in logs)
    assert emailed == [(w.subscriber.id, "comment"), (w.subscriber.id, "priority")]  # no state
    for e in logs:
        activity = activities[e["data"]["issue_activity"]["id"]]
        assert e["data"]["issue_activity"]["field"] == activity["field"]
        assert e["triggered_by_id"] == w.actor.id

    # The actor is subscribed by the first event (subscriber=true), once.
    subscribed = sorted(
        str(s["subscriber_id"]) for s in first["issue_subscribers"] if s["deleted_at"] is None
    )
    assert subscribed == sorted([str(w.actor.id), str(w.subscriber.id)])
