"""The notification rules and the payload they read, without a database.

`Reads` is built by hand here; tests/integration/test_notifications.py loads it from Plane's
schema. Each test that says "Plane" pins a bug of Plane's that is fixed on purpose.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notifications import rules
from services.notifications.payload import BadPayload, NotificationRequest, parse
from services.notifications.reads import (
    DEFAULT_PREFERENCES,
    IssueRow,
    LatestActivity,
    Preferences,
    ProjectRow,
    Reads,
)
from shared.events import new_event
from shared.events.envelope import InvalidEvent

EVENT_TYPE = "plane.notifications.v1"
WS, PROJECT, ISSUE, OTHER_ISSUE, DONE = (uuid.uuid4() for _ in range(5))
CREATOR, ACTOR, ASSIGNEE, SUB, MENTIONED, BOT = (uuid.uuid4() for _ in range(6))
MEMBERS = frozenset({CREATOR, ACTOR, ASSIGNEE, SUB, MENTIONED, BOT})


def reads(**overrides: Any) -> Reads:
    r = Reads(
        projects={PROJECT: ProjectRow(PROJECT, WS, "acme", "DEMO")},
        issues={ISSUE: IssueRow(ISSUE, PROJECT, "Fix it", 7, CREATOR, "DEMO", "Todo", "unstarted", False)},
        members={PROJECT: MEMBERS},
        display_names={ACTOR: "ada"},
        preferences={u: Preferences() for u in MEMBERS - {BOT}},
        completed_states={(PROJECT, DONE)},
    )
    for user in (CREATOR, ASSIGNEE, SUB, ACTOR, BOT):
        r.subscriber_rows[ISSUE].add((user, PROJECT))
    r.assignee_rows[ISSUE].add((ASSIGNEE, PROJECT))
    for name, value in overrides.items():
        setattr(r, name, value)
    return r


def activity(**values: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "verb": "updated",
        "field": "priority",
        "old_value": "low",
        "new_value": "high",
        "old_identifier": None,
        "new_identifier": None,
        "comment": "set the priority",
        "issue_comment": None,
        "actor": str(ACTOR),
        "issue_detail": {"id": str(ISSUE)},
        "created_at": "2024-05-01T10:00:00.123456Z",
        **values,
    }


def request(*activities: dict[str, Any], as_string: bool = True, **data: Any) -> NotificationRequest:
    listed = list(activities) or [activity()]
    payload = {
        "type": "issue.activity.updated",
        "issue_id": str(ISSUE),
        "project_id": str(PROJECT),
        "actor_id": str(ACTOR),
        "subscriber": True,
        "issue_activities_created": json.dumps(listed) if as_string else listed,
        "requested_data": json.dumps({"priority": "high"}),
        "current_instance": json.dumps({"priority": "low"}),
        **data,
    }
    return parse(new_event(EVENT_TYPE, payload))


def mention(user: uuid.UUID) -> str:
    tag = f'<mention-component entity_name="user_mention" entity_identifier="{user}"></mention-component>'
    return f"<p>{tag}</p>"


def by_receiver(plan: rules.Plan) -> dict[uuid.UUID, str]:
    return {n.receiver_id: n.sender for n in plan.notifications}


# --- payload --------------------------------------------------------------------------------------


def test_the_json_string_and_the_plain_list_read_the_same() -> None:
    a = activity()
    assert request(a).activities == request(a, as_string=False).activities


def test_actor_comes_from_the_serializer_actor_key_or_actor_id() -> None:
    other = uuid.uuid4()
    with_actor_id = {k: v for k, v in activity().items() if k != "actor"} | {"actor_id": str(other)}
    assert request(with_actor_id).activities[0].actor == other
    assert request(activity()).activities[0].actor == ACTOR


def test_issue_detail_or_issue_names_the_activity_issue() -> None:
    plain = {k: v for k, v in activity().items() if k != "issue_detail"} | {"issue": str(OTHER_ISSUE)}
    assert request(plain).activities[0].issue == OTHER_ISSUE


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "is not JSON"),
        (json.dumps(["x"]), r"\[0\]: 'x' is not of type 'object'"),
        (json.dumps([{**activity(), "issue_comment": "nope"}]), r"\[0\]"),
        (
            json.dumps([{k: v for k, v in activity().items() if k != "created_at"}]),
            "'created_at' is a required",
        ),
        (json.dumps([{k: v for k, v in activity().items() if k not in ("actor",)}]), r"\[0\]"),
    ],
)
def test_unreadable_activities_are_bad_payloads(value: str, message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        request(issue_activities_created=value)


def test_the_schema_rejects_invalid_ids_and_missing_plane_arguments() -> None:
    good = {
        "type": "issue.activity.updated",
        "issue_id": str(ISSUE),
        "project_id": str(PROJECT),
        "actor_id": str(ACTOR),
        "subscriber": True,
        "issue_activities_created": "[]",
        "requested_data": None,
        "current_instance": None,
    }
    new_event(EVENT_TYPE, good)
    for bad in ({"issue_id": "12"}, {"actor_id": None}, {"subscriber": "yes"}, {"extra": 1}):
        with pytest.raises(InvalidEvent):
            new_event(EVENT_TYPE, good | bad)
    with pytest.raises(InvalidEvent):
        new_event(EVENT_TYPE, {k: v for k, v in good.items() if k != "current_instance"})
    with pytest.raises(InvalidEvent):  # the plain list is checked by the schema itself
        new_event(EVENT_TYPE, good | {"issue_activities_created": [{"id": str(ISSUE)}]})


def test_unreadable_requested_data_means_no_description() -> None:
    req = request(requested_data="{nope", current_instance=json.dumps({"description_html": mention(SUB)}))
    assert not req.requested.present
    assert rules.plan(req, reads()).mentions_removed == []


# --- who and which sender -------------------------------------------------------------------------


def test_senders_and_exclusions() -> None:
    r = reads()
    r.subscriber_rows[ISSUE].add((uuid.uuid4(), PROJECT))  # not an active member
    assert by_receiver(rules.plan(request(), r)) == {
        CREATOR: rules.CREATED,
        ASSIGNEE: rules.ASSIGNED,
        SUB: rules.SUBSCRIBED,
        BOT: rules.SUBSCRIBED,
    }


def test_a_subscription_of_another_project_does_not_count() -> None:
    r = reads()
    r.subscriber_rows[ISSUE] = {(SUB, uuid.uuid4())}
    assert rules.plan(request(), r).notifications == []


def test_the_actor_recorded_is_the_activity_actor() -> None:
    """Plane: "None", from the actor_id key the serializer does not have (bug 7)."""
    plan = rules.plan(request(), reads())
    assert {n.data["issue_activity"]["actor"] for n in plan.notifications} == {str(ACTOR)}


def test_a_missing_comment_is_an_empty_title_and_a_missing_state_is_null() -> None:
    r = reads()
    r.issues[ISSUE] = IssueRow(ISSUE, PROJECT, "Fix it", 7, CREATOR, "DEMO", None, None, False)
    plan = rules.plan(request(activity(comment=None)), r)
    assert {n.title for n in plan.notifications} == {""}
    assert plan.notifications[0].data["issue"]["state_name"] is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"projects": {}}, "project"),
        ({"issues": {}}, "does not exist"),
    ],
)
def test_gone_project_or_issue_is_skipped(overrides: dict[str, Any], reason: str) -> None:
    plan = rules.plan(request(), reads(**overrides))
    assert plan.skipped is not None and reason in plan.skipped
    assert plan.notifications == [] and not plan.subscribe_actor


def test_unknown_actor_is_permanent() -> None:
    with pytest.raises(rules.UnknownActor):
        rules.plan(request(), reads(display_names={}))


def test_skipped_types_plan_nothing() -> None:
    plan = rules.plan(request(type="issue_reaction.activity.created"), reads())
    assert plan.skipped and plan.notifications == [] and plan.mention_subscribers == []


# --- e-mail preferences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pref", "field", "completed", "expected"),
    [
        (Preferences(state_change=True, property_change=False), "state", False, True),
        (Preferences(state_change=False, issue_completed=True, property_change=True), "state", True, True),
        (Preferences(state_change=False, issue_completed=True, property_change=True), "state", False, False),
        (Preferences(comment=True, property_change=False), "comment", False, True),
        # Plane: property_change decided these too.
        (Preferences(comment=False, property_change=True), "comment", False, False),
        (Preferences(state_change=False, issue_completed=False, property_change=True), "state", True, False),
        (Preferences(property_change=True, state_change=False, comment=False), "labels", False, True),
        (Preferences(property_change=False), None, False, False),
    ],
)
def test_wants_email(pref: Preferences, field: str | None, completed: bool, expected: bool) -> None:
    assert rules.wants_email(pref, field, completed) is expected


def test_a_user_without_preferences_gets_plane_defaults() -> None:
    assert reads().preference(BOT) == DEFAULT_PREFERENCES
    plan = rules.plan(request(), reads())
    assert BOT in {e.receiver_id for e in plan.email_logs}


def test_issue_completed_reads_the_new_state() -> None:
    prefs = {u: Preferences(state_change=False, property_change=False) for u in MEMBERS}
    r = reads(preferences=prefs)
    state = activity(field="state", new_identifier=str(DONE))
    assert {e.receiver_id for e in rules.plan(request(state), r).email_logs} == {CREATOR, ASSIGNEE, SUB, BOT}
    other = activity(field="state", new_identifier=str(uuid.uuid4()))
    assert rules.plan(request(other), r).email_logs == []


# --- mentions -------------------------------------------------------------------------------------


def description(new: str, old: str) -> dict[str, Any]:
    return {
        "requested_data": json.dumps({"description_html": new}),
        "current_instance": json.dumps({"description_html": old}),
    }


def test_description_mention_email_goes_to_the_mentioned() -> None:
    """Plane: receiver_id=subscriber, a leftover loop variable (bug 7)."""
    r = reads()
    r.subscriber_rows[ISSUE] = set()
    plan = rules.plan(request(activity(field="description"), **description(mention(MENTIONED), "")), r)
    assert [(n.receiver_id, n.sender, n.message) for n in plan.notifications] == [
        (MENTIONED, rules.MENTIONED, "You have been mentioned in the issue Fix it")
    ]
    assert [e.receiver_id for e in plan.email_logs] == [MENTIONED]
    assert plan.email_logs[0].data["issue_activity"]["field"] == "mention"
    assert plan.mentions_added == [MENTIONED] and plan.mention_subscribers == [MENTIONED]


def test_newly_mentioned_subscribers_get_the_mention_not_the_update() -> None:
    plan = rules.plan(request(**description(mention(SUB), "")), reads())
    assert by_receiver(plan)[SUB] == rules.MENTIONED
    assert SUB not in plan.mention_subscribers  # already subscribed


def test_a_non_description_update_leaves_mentions_alone() -> None:
    """Plane diffed the absent description as empty and soft-deleted every mention."""
    req = request(current_instance=json.dumps({"description_html": mention(SUB)}))
    assert rules.plan(req, reads()).mentions_removed == []
    removed = request(**description("<p></p>", mention(SUB)))
    assert rules.plan(removed, reads()).mentions_removed == [SUB]


def test_coalesced_description_edit_uses_the_latest_activity_and_its_own_identifiers() -> None:
    latest_id, ident = uuid.uuid4(), uuid.uuid4()
    latest = LatestActivity(
        latest_id, "updated", "description", ACTOR, "a", "b", ident, None, datetime(2024, 5, 1, tzinfo=UTC)
    )
    r = reads(latest={ISSUE: latest})
    r.subscriber_rows[ISSUE] = set()
    plan = rules.plan(
        request(activity(old_identifier=str(uuid.uuid4())), **description(mention(MENTIONED), "")), r
    )
    (n,) = plan.notifications
    assert n.data["issue_activity"]["id"] == str(latest_id)
    assert n.data["issue_activity"]["old_identifier"] == str(ident)  # Plane: another activity's
    assert n.data["issue"]["workspace_slug"] == "acme"
    assert plan.email_logs[0].data["issue_activity"]["activity_time"] == "2024-05-01T00:00:00Z"


def test_comment_mentions_of_non_members_and_of_the_actor_are_ignored() -> None:
    stranger = uuid.uuid4()
    html = mention(MENTIONED) + mention(stranger) + mention(ACTOR)
    a = activity(field="comment", issue_comment=str(uuid.uuid4()), new_value=html, old_value=None)
    plan = rules.plan(request(a, type="comment.activity.created"), reads())
    mentioned = {n.receiver_id for n in plan.notifications if n.sender == rules.MENTIONED}
    assert mentioned == {MENTIONED}
    assert plan.notifications[-1].message == "ada has mentioned you in a comment in issue Fix it"
    assert set(plan.mention_subscribers) == {MENTIONED}  # the actor is already subscribed


def test_ids_are_fixed_by_the_event() -> None:
    req = request()
    first, second = rules.plan(req, reads()), rules.plan(req, reads())
    assert [n.id for n in first.notifications] == [n.id for n in second.notifications]
    assert len({n.id for n in first.notifications} | {e.id for e in first.email_logs}) == 8
    assert all(n.id.version == 4 for n in first.notifications)
    other = request()
    assert not {n.id for n in rules.plan(other, reads()).notifications} & {n.id for n in first.notifications}
