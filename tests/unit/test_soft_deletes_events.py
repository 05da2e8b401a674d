"""soft-deletes: what an event may say, and what the handler makes of it (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.soft_deletes.cascade import Root, soft_action
from services.soft_deletes.handler import EVENT_TYPE, root_of, stamp_of
from services.soft_deletes.models import MODEL_TABLES
from shared.db.fk_graph import ForeignKey, Graph
from shared.events import new_event
from shared.events.envelope import InvalidEvent
from shared.kafka.handler import PermanentError

GRAPH = Graph(
    referencing={},
    soft_deletable=frozenset({"issues", "pages", "project_identifiers", "workspaces"}),
    primary_key={"project_identifiers": "id"},
    primary_key_type={
        "issues": "uuid",
        "pages": "uuid",
        "project_identifiers": "bigint",
        "workspaces": "uuid",
    },
)
ID = uuid.uuid4()


def test_plane_bridge_shape_and_table_shape_are_valid() -> None:
    plane = {"app_label": "db", "model_name": "issue", "instance_pk": str(ID), "using": None}
    assert new_event(EVENT_TYPE, plane).data == plane
    assert new_event(
        EVENT_TYPE, {"table": "issues", "instance_pk": str(ID), "deleted_at": "2026-01-01T00:00:00Z"}
    )
    assert new_event(EVENT_TYPE, {"model_name": "projectidentifier", "instance_pk": 7})


@pytest.mark.parametrize(
    "data",
    [
        {"instance_pk": str(ID)},  # neither model nor table
        {"model_name": "issue"},  # no key
        {"model_name": "issue", "instance_pk": "not-a-uuid"},
        {"model_name": "issue", "instance_pk": 0},
        {"model_name": "issue", "instance_pk": str(ID), "extra": 1},
        {"table": "Issues; DROP", "instance_pk": str(ID)},
        {"model_name": "issue", "instance_pk": str(ID), "deleted_at": 5},
    ],
)
def test_malformed_events_are_rejected_by_the_schema(data: dict) -> None:
    with pytest.raises(InvalidEvent) as caught:
        new_event(EVENT_TYPE, data)
    assert caught.value.kind == "schema_violation"


def test_root_by_model_or_table() -> None:
    assert root_of({"app_label": "db", "model_name": "Issue", "instance_pk": str(ID)}, GRAPH) == Root(
        "issues", ID
    )
    assert root_of({"model_name": "issue", "instance_pk": str(ID)}, GRAPH) == Root(
        "issues", ID
    )  # db by default
    assert root_of({"table": "pages", "instance_pk": str(ID)}, GRAPH) == Root("pages", ID)
    assert root_of({"model_name": "projectidentifier", "instance_pk": "12"}, GRAPH) == Root(
        "project_identifiers", 12
    )
    assert root_of({"table": "project_identifiers", "instance_pk": 12}, GRAPH) == Root(
        "project_identifiers", 12
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model_name": "nosuch", "instance_pk": str(ID)}, "unknown soft-deletable model db.nosuch"),
        ({"app_label": "license", "model_name": "issue", "instance_pk": str(ID)}, "license.issue"),
        ({"model_name": "user", "instance_pk": str(ID)}, "unknown soft-deletable model db.user"),
        ({"model_name": "issue", "table": "pages", "instance_pk": str(ID)}, "is table issues, not pages"),
        ({"table": "users", "instance_pk": str(ID)}, "'users' does not exist or has no deleted_at"),
        ({"table": "issues", "instance_pk": 12}, "issues is keyed by uuid: 12"),
        ({"table": "project_identifiers", "instance_pk": str(ID)}, "keyed by bigint"),
    ],
)
def test_what_can_never_name_a_root_is_permanent(data: dict, message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        root_of(data, GRAPH)


def test_stamps() -> None:
    assert stamp_of({}) is None and stamp_of({"deleted_at": None}) is None
    assert stamp_of({"deleted_at": "2026-01-02T03:04:05.123456Z"}) == datetime(
        2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC
    )
    with pytest.raises(PermanentError, match="no time zone"):
        stamp_of({"deleted_at": "2026-01-02T03:04:05"})
    with pytest.raises(PermanentError):
        stamp_of({"deleted_at": "yesterday"})


def fk(django: str, child: str = "issues", nullable: bool = True) -> ForeignKey:
    return ForeignKey(child, "x_id", "workspaces", "id", nullable, django)


def test_on_delete_as_plane_task_reads_it() -> None:
    assert soft_action(fk("CASCADE"), GRAPH) == "CASCADE"
    assert soft_action(fk("PROTECT"), GRAPH) == "CASCADE"  # Plane's else branch
    assert soft_action(fk("CASCADE", child="accounts"), GRAPH) == "SKIP"  # no deleted_at: not followed
    assert soft_action(fk("SET_NULL"), GRAPH) == "SET_NULL"
    assert soft_action(fk("SET_NULL", child="users"), GRAPH) == "SET_NULL"  # nulled even without deleted_at
    assert soft_action(fk("DO_NOTHING"), GRAPH) == "SKIP"
    # An FK Plane's table does not know yet: as hard-delete reads it (nullable: SET NULL).
    assert soft_action(fk("unknown"), GRAPH) == "SET_NULL"
    assert soft_action(fk("unknown", nullable=False), GRAPH) == "CASCADE"


def test_model_registry_names_each_table_once() -> None:
    tables = list(MODEL_TABLES.values())
    assert len(tables) == len(set(tables)) == 92
    assert MODEL_TABLES[("db", "workspace")] == "workspaces"
    assert MODEL_TABLES[("license", "instance")] == "instances"
