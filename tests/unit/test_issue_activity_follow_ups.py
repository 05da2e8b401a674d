"""What issue-activity hands to notifications (services/issue_activity/handler.py): only events
that task acts on, each valid plane.notifications.v1. The join on the broker is checked in
tests/integration/test_activity_to_notifications.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.issue_activity.handler import _notifications_event, _wants_notifications
from services.issue_activity.result import ActivityResult, ActivityRow
from services.notifications.payload import parse
from shared.events import Event, new_event
from shared.events.envelope import validate

PROJECT, WORKSPACE, ACTOR, ISSUE = (uuid.uuid4() for _ in range(4))


def event(kind: str, issue_id: uuid.UUID | None = ISSUE, **extra: Any) -> Event:
    return new_event(
        "plane.issue_activity.v1",
        {
            "type": kind,
            "requested_data": "{}",
            "current_instance": None,
            "issue_id": None if issue_id is None else str(issue_id),
            "actor_id": str(ACTOR),
            "project_id": str(PROJECT),
            "epoch": 1764547200,
            "notification": True,
            **extra,
        },
    )


def row(issue_id: uuid.UUID | None = ISSUE, **values: Any) -> ActivityRow:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "issue_id": issue_id,
        "project_id": PROJECT,
        "workspace_id": WORKSPACE,
        "actor_id": ACTOR,
        "verb": "updated",
        "field": "priority",
        "old_value": "none",
        "new_value": "high",
        "comment": "updated the priority to",
        "old_identifier": None,
        "new_identifier": None,
        "issue_comment_id": None,
        "epoch": 1764547200.0,
        "created_at": now,
        "updated_at": now,
    }
    return ActivityRow(**{**fields, **values})


def test_an_update_is_handed_on_as_valid_plane_notifications_v1() -> None:
    source = event("issue.activity.updated", subscriber=False, origin="https://app.plane.example/x")
    created = row()
    notice = _notifications_event(source, ActivityResult(rows=[created]))
    validate(notice.to_dict())  # raises InvalidEvent on a schema violation
    request = parse(notice)  # and the consumer reads it back as written
    assert (request.issue_id, request.actor_id, request.subscriber) == (ISSUE, ACTOR, False)
    [activity] = request.activities
    assert (activity.id, activity.issue, activity.actor) == (str(created.id), ISSUE, ACTOR)
    assert notice.data["origin"] == "https://app.plane.example"


def test_a_comment_activity_names_its_comment() -> None:
    comment = uuid.uuid4()
    created = row(field="comment", issue_comment_id=comment, new_identifier=comment, new_value="<p>x</p>")
    notice = _notifications_event(event("comment.activity.created"), ActivityResult(rows=[created]))
    validate(notice.to_dict())
    assert parse(notice).activities[0].issue_comment == comment


@pytest.mark.parametrize(
    ("source", "handed_on"),
    [
        (event("issue.activity.updated"), True),
        (event("issue.activity.updated", notification=False), False),
        # Sent without an issue_id, and ignored by Plane's notifications task anyway.
        (event("cycle.activity.created", issue_id=None), False),
        (event("comment_reaction.activity.created", issue_id=None), False),
        # Its row has no issue; ignored by the task too.
        (event("issue_draft.activity.deleted"), False),
        (event("issue_reaction.activity.created"), False),
    ],
    ids=lambda v: v.data["type"] if isinstance(v, Event) else str(v),
)
def test_only_what_notifications_acts_on_is_handed_on(source: Event, handed_on: bool) -> None:
    assert _wants_notifications(source.data) is handed_on


def test_an_activity_without_an_issue_has_no_issue_detail() -> None:
    # Plane's IssueActivitySerializer: issue_detail is null, not {"id": null}.
    notice = _notifications_event(event("issue.activity.updated"), ActivityResult(rows=[row(None)]))
    assert notice.data["issue_activities_created"][0]["issue_detail"] is None
