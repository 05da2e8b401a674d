"""Celery protocol-2 decoding and Plane-signature binding, on messages as kombu writes them."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest
from kombu.utils import json as kombu_json

from services.celery_bridge.protocol import Malformed, decode, due_time, to_json_value
from services.celery_bridge.tasks import BY_TASK
from services.celery_bridge.translate import InvalidArguments, event_id, translate

IDV = "plane.bgtasks.issue_description_version_task.issue_description_version_task"


def _body(args: list, kwargs: dict) -> bytes:
    return kombu_json.dumps(
        [args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ).encode()


def test_kombu_types_decode_and_become_plain_json():
    issue, when = uuid.uuid4(), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    task = decode(
        {"task": IDV, "id": "t-1"}, _body([None, issue], {"user_id": issue, "at": when}), "application/json"
    )
    assert task.args == (None, issue) and task.kwargs["at"] == when and task.eta is None
    assert to_json_value({"u": issue, "t": when, "d": decimal.Decimal("1.5"), "b": b"\x00"}) == {
        "u": str(issue),
        "t": "2026-01-02T03:04:05+00:00",
        "d": "1.5",
        "b": "AA==",
    }


@pytest.mark.parametrize(
    ("headers", "body", "content_type"),
    [
        ({"id": "x"}, _body([], {}), "application/json"),  # no task header
        ({"task": IDV}, _body([], {}), "application/json"),  # no id
        ({"task": IDV, "id": "x"}, b"\x80\x04pickle", "application/x-python-serialize"),
        ({"task": IDV, "id": "x"}, b"{nope", "application/json"),
        ({"task": IDV, "id": "x"}, b'{"task": "protocol 1"}', "application/json"),
        ({"task": IDV, "id": "x"}, b'["args", {}, {}]', "application/json"),
        ({"task": IDV, "id": "x", "eta": "tomorrow"}, _body([], {}), "application/json"),
    ],
)
def test_what_is_not_a_protocol_2_json_task_is_malformed(headers, body, content_type):
    with pytest.raises(Malformed):
        decode(headers, body, content_type)


def test_eta_naive_means_utc_and_countdown_counts_from_now():
    assert due_time({"eta": "2026-01-02T03:04:05"}) == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert due_time({"countdown": 30}, now) == now + dt.timedelta(seconds=30)
    assert due_time({"eta": None}) is None


def test_positional_and_keyword_calls_bind_to_the_same_event():
    issue, user = str(uuid.uuid4()), str(uuid.uuid4())
    route = BY_TASK[IDV]
    by_position = decode({"task": IDV, "id": "a"}, _body([None, issue, user], {}), "application/json")
    by_name = decode(
        {"task": IDV, "id": "a"},
        _body([], {"issue_id": issue, "user_id": user, "updated_issue": None}),
        "application/json",
    )
    one, two = translate(by_position, route, None), translate(by_name, route, None)
    assert json.loads(one.value)["data"] == json.loads(two.value)["data"]
    assert json.loads(one.value)["id"] == one.event_id == two.event_id == event_id("a")
    assert one.key == issue and one.topic == "issue-description-versions"
    assert route.bind((None, issue, user), {}) == {
        "updated_issue": None,
        "issue_id": issue,
        "user_id": user,
        "is_creating": False,  # Plane's default
    }


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([None, "x"], {}),  # user_id missing
        ([None, "x", "y"], {"issue_id": "z"}),  # issue_id twice
        ([None, "x", "y", False, "extra"], {}),  # one too many
        ([], {"updated_issue": None, "issue_id": "x", "user_id": "y", "surprise": 1}),
    ],
)
def test_calls_celery_would_refuse_are_invalid_arguments(args, kwargs):
    task = decode({"task": IDV, "id": "b"}, _body(args, kwargs), "application/json")
    with pytest.raises(InvalidArguments):
        translate(task, BY_TASK[IDV], None)


def test_every_mail_route_binds_plane_positional_order():
    from services.emails.catalogue import MAIL_TYPES

    for kind in MAIL_TYPES:
        route = BY_TASK[kind.plane_task]
        assert route.event_type == kind.event_type and route.topic == "emails"
        values = tuple(f"v{i}" for i in range(len(kind.plane_args)))
        assert list(route.bind(values, {})) == list(kind.plane_args)
