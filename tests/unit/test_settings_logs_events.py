"""Settings parsing, secret redaction in logs, and envelope validation."""

from __future__ import annotations

import copy
import io
import json
import logging

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import logs
from shared.events import InvalidEvent, new_event, parse_event
from shared.events.schemas import fast_validator_for, validator_for
from shared.settings import VARIABLES, Settings, markdown_table, secret_values

IDV = "plane.issue_description_version.v1"
UUID = "6f1c0e3e-4d7a-4b8e-9a51-0c1c2b7f3a11"


def test_settings_from_env_and_clear_errors() -> None:
    s = Settings.from_env({"HARD_DELETE_AFTER_DAYS": "30", "WEBHOOK_ALLOWED_IPS": "10.0.0.0/8, 1.2.3.4"})
    assert s.hard_delete_after_days == 30
    assert s.webhook_allowed_ips == ("10.0.0.0/8", "1.2.3.4")
    assert s.topic("issue-activity") == "plane.issue-activity"
    with pytest.raises(ValueError, match="HARD_DELETE_AFTER_DAYS='soon'"):
        Settings.from_env({"HARD_DELETE_AFTER_DAYS": "soon"})


@pytest.mark.parametrize("name", [v.env for v in VARIABLES if v.minimum is not None])
def test_a_value_below_its_minimum_is_refused_by_name(name: str) -> None:
    """A concurrency of 0 would start and then wait for ever; it is refused before anything runs."""
    with pytest.raises(ValueError, match=f"^{name}='0' must be at least 1$"):
        Settings.from_env({name: "0"})
    assert getattr(Settings.from_env({name: "1"}), name.lower()) == 1


def test_the_concurrency_settings_have_a_minimum() -> None:
    bounded = {v.env for v in VARIABLES if v.minimum is not None}
    assert {"LINK_CRAWLER_CONCURRENCY", "EXPORT_CONCURRENCY", "WEBHOOK_CONCURRENCY"} <= bounded


def test_secrets_are_hidden_from_repr_and_logs() -> None:
    s = Settings.from_env({"EMAIL_HOST_PASSWORD": "hunter2-secret", "SECRET_KEY": "django-key-123"})
    assert "hunter2-secret" not in repr(s)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(secret_values(s)))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    with logs.log_context(event_id="e-1", topic="t", partition=0, offset=7):
        logger.error("login failed with hunter2-secret for %s", "django-key-123")
    line = json.loads(stream.getvalue())
    assert "hunter2-secret" not in stream.getvalue() and "django-key-123" not in stream.getvalue()
    assert line["event_id"] == "e-1" and line["offset"] == 7


@pytest.mark.parametrize(
    ("url", "shown", "passwords"),
    [
        (
            "postgresql://plane:pw-1234@db:5432/plane",
            "postgresql://plane:[redacted]@db:5432/plane",
            ["pw-1234"],
        ),
        (
            "postgres://plane:p%40ss-word@db/plane",
            "postgres://plane:[redacted]@db/plane",
            ["p%40ss-word", "p@ss-word"],
        ),
        ("postgresql://plane:raw@pass@db/plane", "postgresql://plane:[redacted]@db/plane", ["raw@pass"]),
        (
            "postgresql://plane@db/plane?password=qs-pass",
            "postgresql://plane@db/plane?password=[redacted]",
            ["qs-pass"],
        ),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            [],
        ),
        ("postgresql://plane@db/plane", "postgresql://plane@db/plane", []),
        ("kafka-0:9092,kafka-1:9092", "kafka-0:9092,kafka-1:9092", []),
    ],
)
def test_url_passwords_are_redacted(url: str, shown: str, passwords: list[str]) -> None:
    assert logs.redact_url(url) == shown
    assert list(logs.url_passwords(url)) == passwords
    assert logs.redact_url_passwords(f"failed to reach {url} today") == f"failed to reach {shown} today"


def test_the_database_password_is_a_secret_everywhere() -> None:
    s = Settings.from_env(
        {"DATABASE_URL": "postgresql://plane:db-secret-99@db/plane", "SECRET_KEY": "k-123456"}
    )
    assert "db-secret-99" not in repr(s) and "k-123456" not in repr(s)
    assert "postgresql://plane:[redacted]@db/plane" in repr(s)
    assert {"db-secret-99", "k-123456"} <= set(secret_values(s))
    formatter = logs.TextFormatter(secret_values(s))
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "cannot use %s", (s.database_url,), None)
    assert "db-secret-99" not in formatter.format(record)


def test_every_variable_is_documented() -> None:
    table = markdown_table()
    assert all(f"`{v.env}`" in table for v in VARIABLES)


def test_envelope_round_trip_and_rejections() -> None:
    event = new_event(IDV, {"issue_id": UUID, "user_id": UUID, "updated_issue": None})
    assert parse_event(event.to_json(), max_bytes=10_000) == event
    cases = {
        b"\xff\xfe": "malformed_json",
        b"[1]": "invalid_envelope",
        event.to_json().replace(b"1.0", b"0.3"): "invalid_envelope",
        event.to_json().replace(IDV.encode(), b"plane.unknown.v1"): "unknown_type",
        event.to_json().replace(UUID.encode(), b"not-a-uuid", 1): "schema_violation",
    }
    for raw, kind in cases.items():
        with pytest.raises(InvalidEvent) as info:
            parse_event(raw, max_bytes=10_000)
        assert info.value.kind == kind
    with pytest.raises(InvalidEvent) as info:
        parse_event(event.to_json(), max_bytes=10)
    assert info.value.kind == "oversize"
    with pytest.raises(InvalidEvent):
        new_event(IDV, {"issue_id": UUID})  # user_id missing: refused at produce time too


def test_an_event_of_a_type_the_caller_does_not_take_is_unknown_to_it() -> None:
    event = new_event(IDV, {"issue_id": UUID, "user_id": UUID, "updated_issue": None})
    assert parse_event(event.to_json(), max_bytes=10_000, accept=(IDV,)) == event
    with pytest.raises(InvalidEvent) as info:
        parse_event(event.to_json(), max_bytes=10_000, accept=("plane.webhook_delivery.v1",))
    assert info.value.kind == "unknown_type"
    assert IDV in str(info.value)


VALID = {
    "plane.issue_activity.v1": {  # its optional fields have schema defaults, which must not appear
        "type": "issue.activity.updated",
        "requested_data": None,
        "current_instance": None,
        "issue_id": UUID,
        "actor_id": UUID,
        "project_id": UUID,
        "epoch": 1_790_000_000,
    },
    "cloudevent": new_event(IDV, {"issue_id": UUID, "user_id": UUID, "updated_issue": None}).to_dict(),
    "plane.webhook_delivery.v1": {
        "webhook_id": UUID,
        "workspace_id": UUID,
        "slug": "acme",
        "current_site": "https://plane.example",
        "event": "issue",
        "action": "updated",
        "payload": {
            "event": "issue",
            "action": "updated",
            "webhook_id": UUID,
            "workspace_id": UUID,
            "data": {},
            "activity": {},
        },
    },
}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=60)
    | st.sampled_from([UUID, UUID.upper(), UUID.replace("-", ""), "2026-11-22T10:00:00Z", "1.0", "issue"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(
    schema=st.sampled_from(sorted(VALID)),
    field=st.sampled_from(
        ["specversion", "id", "type", "time", "data", "webhook_id", "slug", "event", "payload", "extra"]
    ),
    value=JSON_VALUES,
    drop=st.booleans(),
)
def test_fast_validator_agrees_with_jsonschema(schema: str, field: str, value: object, drop: bool) -> None:
    """The compiled validator (hot path) and jsonschema (the reference) accept the same instances."""
    instance = dict(VALID[schema])
    if drop:
        instance.pop(field, None)
    else:
        instance[field] = value
    before = copy.deepcopy(instance)
    fast_accepts = True
    try:
        fast_validator_for(schema)(instance)
    except fastjsonschema.JsonSchemaException:
        fast_accepts = False
    assert instance == before  # validating never fills in defaults
    assert fast_accepts == validator_for(schema).is_valid(instance), instance
