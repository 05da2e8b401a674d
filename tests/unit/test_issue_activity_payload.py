"""Reading event fields as Plane's task and Django's fields do (services/issue_activity/payload.py)."""

from __future__ import annotations

import uuid

import pytest

from services.issue_activity.payload import Payload, as_uuid, id_list, is_valid_uuid4, parse_json, text
from services.issue_activity.result import InvalidActivity

V4 = "0b3c1b5e-8f7a-4d2e-9c1a-2f4e6d8b0a1c"
V1 = "6fa459ea-ee8a-11d6-8f5c-00c04fd430c8"


@pytest.mark.parametrize(
    ("value", "valid"),
    [(V4, True), (V4.upper(), True), (V4.replace("-", ""), True), (V1, False), ("abc", False), (None, False)],
)
def test_is_valid_uuid4_is_version_4_only_like_plane(value: object, valid: bool) -> None:
    assert is_valid_uuid4(value) is valid


def test_is_valid_uuid4_treats_non_strings_as_invalid_where_plane_would_raise() -> None:
    assert is_valid_uuid4(123) is False
    assert is_valid_uuid4({"id": V4}) is False


def test_as_uuid_accepts_what_djangos_uuidfield_accepts() -> None:
    assert as_uuid(V1, "x") == uuid.UUID(V1)  # any version
    assert as_uuid(V4.replace("-", ""), "x") == uuid.UUID(V4)
    assert as_uuid(5, "x") == uuid.UUID(int=5)
    assert as_uuid(None, "x") is None


@pytest.mark.parametrize("value", ["", "not-a-uuid", True, 1.5, [V4], -1])
def test_as_uuid_raises_invalid_activity_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidActivity, match="old_identifier"):
        as_uuid(value, "old_identifier")


def test_text_coerces_like_djangos_text_field() -> None:
    assert text(None) is None
    assert text("x") == "x"
    assert text(1) == "1"
    assert text(True) == "True"
    assert text({"a": 1}) == "{'a': 1}"  # Python's str(), not JSON: what Plane stored


def test_parse_json() -> None:
    assert parse_json('{"a": 1}', "requested_data") == {"a": 1}
    assert parse_json({"a": 1}, "requested_data") == {"a": 1}  # already decoded
    assert parse_json(None, "requested_data") is None
    with pytest.raises(InvalidActivity, match="requested_data is not JSON"):
        parse_json("{not json", "requested_data")
    with pytest.raises(InvalidActivity, match="must be a JSON string"):
        parse_json(42, "requested_data")


def test_payload_parses_lazily_so_an_unused_bad_field_is_harmless() -> None:
    payload = Payload('{"name": "x"}', "<garbage>")
    assert payload.requested() == {"name": "x"}
    with pytest.raises(InvalidActivity, match="current_instance is not JSON"):
        payload.current()


@pytest.mark.parametrize(("raw", "shape"), [("[1, 2]", "list"), ('"s"', "str"), (None, "null")])
def test_payload_requires_an_object_where_plane_calls_get(raw: str | None, shape: str) -> None:
    with pytest.raises(InvalidActivity, match=f"got {shape}"):
        Payload(raw, None).requested()


def test_payload_optional_object_allows_null_only() -> None:
    assert Payload(None, None).requested_or_none() is None
    with pytest.raises(InvalidActivity):
        Payload("[]", None).requested_or_none()


def test_id_list_primary_then_fallback_key() -> None:
    assert id_list({"label_ids": [V4], "labels": [V1]}, "label_ids", "labels") == {V4}
    assert id_list({"labels": [V1]}, "label_ids", "labels") == {V1}
    assert id_list(None, "label_ids", "labels") == set()
    assert id_list({}, "label_ids", "labels") == set()


@pytest.mark.parametrize("value", [None, V4, {"id": V4}])
def test_id_list_refuses_non_lists_plane_would_iterate_or_crash_on(value: object) -> None:
    with pytest.raises(InvalidActivity, match="label_ids must be a list"):
        id_list({"label_ids": value}, "label_ids", "labels")
