"""The notifications consumer on Plane's schema in real PostgreSQL: the notification matrix.

Most tests call the batch handler inside one transaction, as the runtime does; the last ones run
the registered consumer on the broker (a batch with a bad event in it, and the samples).
Expectations follow Plane's `notifications` task (reference §5.2); where a test says "Plane",
it names a bug of Plane's that is fixed on purpose and what Plane did instead.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from services.notifications.handler import handle
from services.notifications.payload import EVENT_TYPE, BadPayload
from services.notifications.rules import UnknownActor
from services.notifications.samples import (
    add_preferences,
    add_subscriber,
    event_data,
    mention_html,
    serialized_activity,
)
from shared import registry
from shared.db.engine import get_engine
from shared.db.plane import (
    EmailNotificationLog,
    Issue,
    IssueActivity,
    IssueMention,
    IssueSubscriber,
    Notification,
    Project,
    State,
    User,
    UserNotificationPreference,
)
from shared.events import Event, new_event
from shared.events.producer import EventProducer
from shared.kafka.handler import HandlerContext
from shared.settings import Settings
from shared.testing import plane_factory as make
from tests.helpers import consumer_thread, dead_letters, processed, wait_until

CREATED = "in_app:issue_activities:created"
ASSIGNED = "in_app:issue_activities:assigned"
SUBSCRIBED = "in_app:issue_activities:subscribed"
MENTIONED = "in_app:issue_activities:mentioned"


@pytest.fixture
def engine(database_url: str) -> Engine:
    # The database alone: these tests need no broker.
    return get_engine(database_url)


@dataclass
class World:
    engine: Engine
    project: Project
    issue: Issue
    creator: User
    actor: User
    assignee: User
    subscriber: User
    mentioned: User
    inactive: User
    bot: User  # no preferences row
    outsider: User  # not a member
    todo: State
    done: State
    slug: str


@pytest.fixture
def w(engine: Engine) -> World:
    names = ("creator", "actor", "assignee", "subscriber", "mentioned", "inactive", "bot", "outsider")
    users = {name: make.user(n, display_name=name) for n, name in enumerate(names)}
    users["bot"].is_bot = True
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(users.values())
        session.flush()
        ws = make.workspace(users["creator"], slug=f"ws-{uuid.uuid4().hex[:8]}")
        session.add(ws)
        session.flush()
        proj = make.project(ws)
        session.add(proj)
        session.flush()
        todo, done = make.state(proj, "Todo", "unstarted"), make.state(proj, "Done", "completed")
        session.add_all([todo, done])
        session.flush()
        issue = make.issue(proj, 1, state_id=todo.id)
        session.add(issue)
        for name, user in users.items():
            if name != "outsider":
                session.add(make.project_member(proj, user, is_active=name != "inactive"))
        session.flush()
        session.add(make.issue_assignee(issue, users["assignee"]))
        for name in ("creator", "assignee", "subscriber", "inactive", "bot", "actor"):
            add_subscriber(session, issue, users[name])
        for name, user in users.items():
            if name != "bot":
                add_preferences(session, user)
    return World(engine, proj, issue, **users, todo=todo, done=done, slug=ws.slug)


def run(engine: Engine, *datas: dict[str, Any]) -> list[Event]:
    events = [new_event(EVENT_TYPE, d) for d in datas]
    with Session(engine) as session, session.begin():
        handle(events, cast(HandlerContext, _Ctx(session)))
    return events


@dataclass
class _Ctx:
    session: Session
    consumer: str = "notifications"


def notifications(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Notification.__table__)).mappings().all()
    return sorted((dict(r) for r in rows), key=lambda r: (str(r["receiver_id"]), r["sender"]))


def receivers(engine: Engine) -> dict[uuid.UUID, str]:
    return {n["receiver_id"]: n["sender"] for n in notifications(engine)}


def email_logs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(EmailNotificationLog.__table__)).mappings().all()
    return [dict(r) for r in rows]


def emailed(engine: Engine) -> set[tuple[uuid.UUID, str]]:
    return {(e["receiver_id"], e["data"]["issue_activity"]["field"]) for e in email_logs(engine)}


def subscribers(engine: Engine) -> set[uuid.UUID]:
    s = IssueSubscriber
    with engine.connect() as conn:
        return set(conn.scalars(select(s.subscriber_id).where(s.deleted_at.is_(None))))


def mention_rows(engine: Engine) -> list[tuple[uuid.UUID, bool]]:
    m = IssueMention
    with engine.connect() as conn:
        return sorted((u, d is not None) for u, d in conn.execute(select(m.mention_id, m.deleted_at)))


def set_preferences(w: World, user: User, **flags: bool) -> None:
    p = UserNotificationPreference
    with w.engine.begin() as conn:
        conn.execute(update(p).where(p.user_id == user.id).values(**flags))


def state_change(
    w: World, *, to: State | None = None, actor: User | None = None, **kw: Any
) -> dict[str, Any]:
    to = to or w.done
    actor = actor or w.actor
    activity = serialized_activity(
        w.issue,
        actor,
        field="state",
        old_value="Todo",
        new_value=to.name,
        old_identifier=w.todo.id,
        new_identifier=to.id,
        comment="updated the state to",
    )
    return event_data(
        "issue.activity.updated", w.issue, actor, [activity], {"state_id": str(to.id)}, {}, **kw
    )


def field_change(w: World, field: str, **kw: Any) -> dict[str, Any]:
    activity = serialized_activity(
        w.issue, w.actor, field=field, old_value="a", new_value="b", comment="set it"
    )
    return event_data(
        "issue.activity.updated", w.issue, w.actor, [activity], {field: "b"}, {field: "a"}, **kw
    )


def comment_event(w: World, comment_id: uuid.UUID, new: str, old: str | None = None) -> dict[str, Any]:
    activity = serialized_activity(
        w.issue,
        w.actor,
        verb="created" if old is None else "updated",
        field="comment",
        new_value=new,
        old_value=old,
        comment="created a comment" if old is None else "updated a comment",
        issue_comment=comment_id,
    )
    kind = "comment.activity.created" if old is None else "comment.activity.updated"
    return event_data(kind, w.issue, w.actor, [activity], {"comment_html": new}, None)


def description_event(w: World, new: str, old: str, actor: User | None = None) -> dict[str, Any]:
    actor = actor or w.actor
    activity = serialized_activity(
        w.issue, actor, field="description", new_value="x", comment="updated the description"
    )
    return event_data(
        "issue.activity.updated",
        w.issue,
        actor,
        [activity],
        {"description_html": new},
        {"description_html": old},
    )


def add_comment(w: World, html: str, stripped: str) -> uuid.UUID:
    comment = make.issue_comment(w.issue, w.actor, html, stripped)
    with Session(w.engine, expire_on_commit=False) as session, session.begin():
        session.add(comment)
    return comment.id


# --- who is notified ------------------------------------------------------------------------------


def test_subscribers_are_notified_with_plane_senders_and_rows(w: World) -> None:
    """Creator, assignee, subscriber and the subscribed bot get one row each; the actor and the
    inactive member (both subscribed) get none."""
    (event,) = run(w.engine, state_change(w))
    assert receivers(w.engine) == {
        w.creator.id: CREATED,
        w.assignee.id: ASSIGNED,
        w.subscriber.id: SUBSCRIBED,
        w.bot.id: SUBSCRIBED,
    }
    activity = json.loads(event.data["issue_activities_created"])[0]
    row = next(n for n in notifications(w.engine) if n["receiver_id"] == w.subscriber.id)
    assert {k: row[k] for k in row if k not in ("id", "created_at", "updated_at")} == {
        "workspace_id": w.project.workspace_id,
        "project_id": w.project.id,
        "entity_identifier": w.issue.id,
        "entity_name": "issue",
        "title": "updated the state to",
        "message": None,
        "message_html": "<p></p>",
        "message_stripped": None,
        "sender": SUBSCRIBED,
        "read_at": None,
        "snoozed_till": None,
        "archived_at": None,
        "receiver_id": w.subscriber.id,
        "triggered_by_id": w.actor.id,
        "created_by_id": None,
        "updated_by_id": None,
        "deleted_at": None,
        "data": {
            "issue": {
                "id": str(w.issue.id),
                "name": w.issue.name,
                "identifier": "DEMO",
                "sequence_id": 1,
                "state_name": "Todo",
                "state_group": "unstarted",
            },
            "issue_activity": {
                "id": activity["id"],
                "verb": "updated",
                "field": "state",
                # Plane: "None" (it read actor_id, which the serializer does not emit; bug 7).
                "actor": str(w.actor.id),
                "new_value": "Done",
                "old_value": "Todo",
                "issue_comment": "",
                "old_identifier": str(w.todo.id),
                "new_identifier": str(w.done.id),
            },
        },
    }


def test_the_creator_assigned_to_their_issue_makes_other_assignees_subscribed(w: World) -> None:
    with Session(w.engine) as session, session.begin():
        session.add(make.issue_assignee(w.issue, w.creator))
    run(w.engine, state_change(w))
    assert receivers(w.engine)[w.creator.id] == CREATED
    assert receivers(w.engine)[w.assignee.id] == SUBSCRIBED


def test_actor_is_subscribed_only_when_asked(w: World, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(IssueSubscriber).values(deleted_at=datetime.now(UTC)))
    run(engine, state_change(w, subscriber=False))
    assert subscribers(engine) == set()
    run(engine, state_change(w, subscriber=True))
    assert subscribers(engine) == {w.actor.id}
    s = IssueSubscriber
    with engine.connect() as conn:
        query = select(s.created_by_id, s.updated_by_id, s.project_id, s.workspace_id)
        by = conn.execute(query.where(s.deleted_at.is_(None))).one()
    assert tuple(by) == (w.actor.id, w.actor.id, w.project.id, w.project.workspace_id)


def test_nothing_for_a_relation_mirror_or_a_description_edit_without_mentions(w: World) -> None:
    other = uuid.uuid4()
    mirror = serialized_activity(w.issue, w.actor, field="blocked_by", new_value="DEMO-2", about=other)
    run(w.engine, event_data("issue.activity.updated", w.issue, w.actor, [mirror], {}, {}))
    run(w.engine, description_event(w, "<p>new</p>", "<p>old</p>"))
    assert notifications(w.engine) == []
    assert email_logs(w.engine) == []


def test_plane_skipped_types_write_nothing_at_all(w: World) -> None:
    for kind in ("cycle.activity.created", "issue_reaction.activity.created", "issue_draft.activity.updated"):
        data = state_change(w)
        run(
            w.engine,
            {
                **data,
                "type": kind,
                "requested_data": json.dumps({"description_html": mention_html(w.mentioned)}),
            },
        )
    assert notifications(w.engine) == [] and email_logs(w.engine) == [] and mention_rows(w.engine) == []


# --- e-mail preferences, each for its own kind ----------------------------------------------------

PREFS_OFF = dict.fromkeys(("property_change", "state_change", "comment", "mention", "issue_completed"), False)


@pytest.mark.parametrize(
    ("on", "change", "emailed_"),
    [
        ("state_change", "state->todo", True),
        ("issue_completed", "state->done", True),
        ("issue_completed", "state->todo", False),
        ("property_change", "priority", True),
        ("comment", "comment", True),
        (None, "state->done", False),
        (None, "priority", False),
        (None, "comment", False),
        # Plane: property_change on sent state and comment changes whatever their own switch said.
        ("property_change", "state->done", False),
        ("property_change", "comment", False),
        # state_change and comment do not open the door to other fields.
        ("state_change", "priority", False),
        ("comment", "priority", False),
    ],
)
def test_each_preference_decides_its_own_kind_of_change(
    w: World, on: str | None, change: str, emailed_: bool
) -> None:
    set_preferences(w, w.subscriber, **{**PREFS_OFF, **({on: True} if on else {})})
    if change.startswith("state->"):
        data = state_change(w, to=w.done if change.endswith("done") else w.todo)
    elif change == "comment":
        data = comment_event(w, add_comment(w, "<p>hi</p>", "hi"), "<p>hi</p>")
    else:
        data = field_change(w, change)
    run(w.engine, data)
    field = "state" if change.startswith("state") else change
    assert ((w.subscriber.id, field) in emailed(w.engine)) is emailed_
    assert w.subscriber.id in receivers(w.engine)  # the in-app notification does not depend on it


def test_subscriber_email_log_rows_are_plane_shaped(w: World) -> None:
    (event,) = run(w.engine, state_change(w))
    logs = [e for e in email_logs(w.engine) if e["receiver_id"] == w.creator.id]
    assert len(logs) == 1
    log = logs[0]
    activity = json.loads(event.data["issue_activities_created"])[0]
    assert (log["triggered_by_id"], log["entity_identifier"], log["entity_name"], log["entity"]) == (
        w.actor.id,
        w.issue.id,
        "issue",
        "",
    )
    assert (log["processed_at"], log["sent_at"], log["old_value"], log["new_value"]) == (
        None,
        None,
        None,
        None,
    )
    assert log["data"]["issue"]["project_id"] == str(w.project.id)
    assert log["data"]["issue"]["workspace_slug"] == w.slug
    assert log["data"]["issue_activity"]["activity_time"] == activity["created_at"]
    assert log["data"]["issue_activity"]["actor"] == str(w.actor.id)


# --- mentions -------------------------------------------------------------------------------------


def test_description_mention_notifies_subscribes_and_records_the_mention(w: World) -> None:
    run(w.engine, description_event(w, mention_html(w.mentioned, w.outsider, w.inactive), "<p></p>"))
    mention = [n for n in notifications(w.engine) if n["receiver_id"] == w.mentioned.id]
    assert [(n["sender"], n["message"], n["title"]) for n in mention] == [
        (MENTIONED, f"You have been mentioned in the issue {w.issue.name}", "")
    ]
    # Only active members count: the outsider and the inactive member get nothing.
    assert set(receivers(w.engine)) == {w.mentioned.id}
    # Plane: receiver_id=subscriber, the leftover loop variable (bug 7).
    assert emailed(w.engine) == {(w.mentioned.id, "mention")}
    assert w.mentioned.id in subscribers(w.engine)
    assert w.outsider.id not in subscribers(w.engine) and w.inactive.id in subscribers(w.engine)  # seeded
    assert mention_rows(w.engine) == [(w.mentioned.id, False)]


def test_a_mention_removed_from_the_description_is_soft_deleted(w: World) -> None:
    run(w.engine, description_event(w, mention_html(w.mentioned), "<p></p>"))
    run(w.engine, description_event(w, "<p>gone</p>", mention_html(w.mentioned)))
    assert mention_rows(w.engine) == [(w.mentioned.id, True)]


def test_an_update_without_a_description_keeps_the_mentions(w: World) -> None:
    """Plane diffed the absent description as empty: a state change soft-deleted every mention."""
    run(w.engine, description_event(w, mention_html(w.mentioned), "<p></p>"))
    data = state_change(w)
    data["current_instance"] = json.dumps({"description_html": mention_html(w.mentioned)})
    run(w.engine, data)
    assert mention_rows(w.engine) == [(w.mentioned.id, False)]


def test_mention_email_honours_the_mention_preference(w: World) -> None:
    set_preferences(w, w.mentioned, **{**PREFS_OFF, "property_change": True})
    run(w.engine, description_event(w, mention_html(w.mentioned), "<p></p>"))
    assert w.mentioned.id in receivers(w.engine)
    assert emailed(w.engine) == set()


def test_a_coalesced_description_edit_names_the_actors_latest_activity(w: World) -> None:
    latest = IssueActivity.new(
        verb="updated",
        field="description",
        old_value="old",
        new_value="new",
        comment="updated the description",
        attachments=[],
        issue_id=w.issue.id,
        project_id=w.project.id,
        workspace_id=w.project.workspace_id,
        actor_id=w.actor.id,
        now=datetime.now(UTC) - timedelta(minutes=1),
    )
    with Session(w.engine, expire_on_commit=False) as session, session.begin():
        session.add(latest)
    data = description_event(w, mention_html(w.mentioned), "<p></p>")
    data["issue_activities_created"] = "[]"  # Plane bumped the existing activity instead
    run(w.engine, data)
    (row,) = notifications(w.engine)
    assert row["receiver_id"] == w.mentioned.id
    assert row["data"]["issue_activity"]["id"] == str(latest.id)
    assert row["data"]["issue_activity"]["actor"] == str(w.actor.id)
    assert row["data"]["issue"]["workspace_slug"] == w.slug
    (log,) = email_logs(w.engine)
    assert (log["receiver_id"], log["data"]["issue_activity"]["field"]) == (w.mentioned.id, "mention")


def test_comment_mention_notifies_the_mentioned_and_not_as_subscriber(w: World) -> None:
    html = f"<p>see {mention_html(w.subscriber)}</p>"
    comment_id = add_comment(w, html, "see @subscriber")
    run(w.engine, comment_event(w, comment_id, html))
    rows = {(n["receiver_id"], n["sender"]): n for n in notifications(w.engine)}
    mention = rows.pop((w.subscriber.id, MENTIONED))
    assert mention["message"] == f"actor has mentioned you in a comment in issue {w.issue.name}"
    assert (w.subscriber.id, SUBSCRIBED) not in rows
    # The others get the comment, its text from issue_comments.comment_stripped.
    assert rows[(w.creator.id, CREATED)]["data"]["issue_activity"]["issue_comment"] == "see @subscriber"
    assert (w.subscriber.id, "mention") in emailed(w.engine)
    assert (w.creator.id, "comment") in emailed(w.engine)


def test_an_edited_comment_notifies_only_the_newly_mentioned(w: World) -> None:
    old = mention_html(w.subscriber)
    new = mention_html(w.subscriber, w.mentioned)
    run(w.engine, comment_event(w, add_comment(w, new, "x"), new, old))
    mentioned = {n["receiver_id"] for n in notifications(w.engine) if n["sender"] == MENTIONED}
    assert mentioned == {w.mentioned.id}
    assert w.mentioned.id in subscribers(w.engine)


def test_the_actor_mentioning_themselves_gets_no_notification(w: World) -> None:
    run(w.engine, description_event(w, mention_html(w.actor), "<p></p>"))
    assert notifications(w.engine) == []


# --- bots, bad input, missing rows ----------------------------------------------------------------


def test_a_bot_without_preferences_gets_plane_defaults_and_the_rest_still_applies(w: World) -> None:
    run(w.engine, state_change(w), description_event(w, mention_html(w.bot), "<p></p>"))
    assert (w.bot.id, "state") in emailed(w.engine)  # defaults: everything on
    assert (w.bot.id, "mention") in emailed(w.engine)
    assert (w.creator.id, "state") in emailed(w.engine)


@pytest.mark.parametrize("gone", ["unknown issue", "deleted issue", "deleted project"])
def test_a_gone_issue_or_project_is_skipped_with_a_log_line(
    w: World, gone: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = state_change(w)
    if gone == "unknown issue":
        data["issue_id"] = str(uuid.uuid4())
    else:
        model = Issue if gone == "deleted issue" else Project
        with w.engine.begin() as conn:
            conn.execute(update(model).values(deleted_at=datetime.now(UTC)))
    with caplog.at_level(logging.INFO, "services.notifications.handler"):
        run(w.engine, data)
    assert notifications(w.engine) == [] and email_logs(w.engine) == []
    assert any("nothing to notify" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "activities",
    ["[{not json", json.dumps([1, 2]), json.dumps([{"id": "x"}]), json.dumps({"id": str(uuid.uuid4())})],
    ids=["not-json", "not-objects", "missing-fields", "not-a-list"],
)
def test_unreadable_activities_are_a_permanent_error(w: World, activities: str) -> None:
    with pytest.raises(BadPayload, match="issue_activities_created"):
        run(w.engine, {**state_change(w), "issue_activities_created": activities})


def test_an_actor_who_is_not_a_user_is_a_permanent_error(w: World) -> None:
    with pytest.raises(UnknownActor):
        run(w.engine, {**state_change(w), "actor_id": str(uuid.uuid4())})


def test_unreadable_requested_data_is_no_mentions_as_in_plane(w: World) -> None:
    run(w.engine, {**description_event(w, mention_html(w.mentioned), ""), "requested_data": "{oops"})
    assert mention_rows(w.engine) == []


# --- batches and repeats --------------------------------------------------------------------------


def test_events_of_one_batch_see_each_other_as_separate_runs_would(w: World, engine: Engine) -> None:
    """A subscriber added by one event is notified by the next; a mention added then removed in
    the same batch ends soft-deleted, as two of Plane's tasks in a row would leave it."""
    with engine.begin() as conn:
        conn.execute(update(IssueSubscriber).values(deleted_at=datetime.now(UTC)))
    run(
        engine,
        state_change(w, actor=w.subscriber),  # subscribes the subscriber again, notifies no one
        state_change(w, actor=w.actor),
        description_event(w, mention_html(w.mentioned), "<p></p>"),
        description_event(w, "<p></p>", mention_html(w.mentioned)),
    )
    by_subscriber = [n for n in notifications(engine) if n["receiver_id"] == w.subscriber.id]
    assert [n["triggered_by_id"] for n in by_subscriber] == [w.actor.id]
    assert mention_rows(engine) == [(w.mentioned.id, True)]


def test_running_one_event_twice_writes_its_rows_once(w: World) -> None:
    """Row ids derive from the event: a repeat (no claim in this test) conflicts on them."""
    event = new_event(EVENT_TYPE, state_change(w))
    for _ in range(2):
        with Session(w.engine) as session, session.begin():
            handle([event], cast(HandlerContext, _Ctx(session)))
    assert len(notifications(w.engine)) == 4
    assert len(email_logs(w.engine)) == 4


# --- the registered consumer on the broker --------------------------------------------------------


def test_a_batch_with_bad_events_applies_the_rest_once(w: World, settings: Settings) -> None:
    """Activities that are not JSON, and an actor who is no user, are dead-lettered alone; the
    good events around them, in the same batch and of the same issue, are applied once."""
    spec = registry.consumer("notifications")
    good = [state_change(w), field_change(w, "priority")]
    bad = [
        {**state_change(w), "issue_activities_created": "[{"},
        {**state_change(w), "actor_id": str(uuid.uuid4())},
    ]
    events = [new_event(EVENT_TYPE, d) for d in (good[0], bad[0], good[1], bad[1])]
    producer = EventProducer(settings)
    with consumer_thread(spec, settings):
        producer.send_many(spec.topic, [(str(w.issue.id), e) for e in events])
        producer.close()
        wait_until(lambda: len(dead_letters(settings, spec.topic)) == 2)
        wait_until(lambda: processed(w.engine, spec.name) == 2)
    letters = dead_letters(settings, spec.topic)
    assert sorted(d["value"]["id"] for d in letters) == sorted((events[1].id, events[3].id))
    assert {d["headers"]["error-class"] for d in letters} == {
        "services.notifications.payload.BadPayload",
        "services.notifications.rules.UnknownActor",
    }
    # Two events, four receivers each, once.
    assert len(notifications(w.engine)) == 8
    assert {n["data"]["issue_activity"]["field"] for n in notifications(w.engine)} == {"state", "priority"}
