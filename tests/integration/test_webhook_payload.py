"""Webhook payloads (`get_model_data`) on Plane's real schema: shapes, soft deletes, JSON types."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from services.webhooks.payload import build_payload, model_data, user_lite
from shared.testing.plane_rows import insert_one, insert_user

NOW = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
BINARY = b"\x00\x01yjs-update\xff"
USER_LITE_KEYS = ["id", "first_name", "last_name", "email", "avatar", "avatar_url", "display_name"]


@dataclass
class World:
    owner: uuid.UUID
    ws: uuid.UUID
    project: uuid.UUID
    state: uuid.UUID
    label: uuid.UUID
    assignee: uuid.UUID
    avatar_asset: uuid.UUID
    issue: uuid.UUID
    deleted_issue: uuid.UUID
    cycle: uuid.UUID
    module: uuid.UUID
    cycle_issue: uuid.UUID
    module_issue: uuid.UUID
    comment: uuid.UUID
    intake: uuid.UUID
    intake_issue: uuid.UUID


@pytest.fixture
def conn(engine: Engine):  # type: ignore[no-untyped-def]
    with engine.begin() as c:
        yield c


@pytest.fixture
def world(conn: Connection) -> World:
    owner = insert_user(conn, first_name="Olive", display_name="olive", avatar="https://x/o.png")
    ws = insert_one(conn, "workspaces", name="Acme", slug=f"acme-{uuid.uuid4().hex[:6]}", owner_id=owner)
    scoped: dict[str, Any] = {"workspace_id": ws, "created_by_id": owner}
    project = insert_one(
        conn, "projects", name="P", identifier="P", network=2, cover_image="https://x/c.png", **scoped
    )
    scoped["project_id"] = project
    state = insert_one(conn, "states", name="Todo", group="unstarted", color="#aaa", **scoped)
    label = insert_one(conn, "labels", name="bug", color="#f00", **scoped)
    gone_label = insert_one(conn, "labels", name="old", color="#0f0", **scoped)
    avatar_asset = insert_one(conn, "file_assets", workspace_id=ws, entity_type="USER_AVATAR", asset="a.png")
    assignee = insert_user(conn, first_name="Ann", avatar="", avatar_asset_id=avatar_asset)
    unassigned = insert_user(conn, first_name="Ex")

    def issue(seq: int, **values: Any) -> uuid.UUID:
        values = {"name": f"issue {seq}", "sequence_id": seq, "priority": "high", **scoped, **values}
        return insert_one(conn, "issues", **values)

    issue_id = issue(
        1, state_id=state, start_date=date(2024, 1, 1), created_at=NOW, updated_at=NOW + timedelta(seconds=1),
        description_json=json.dumps({"type": "doc"}), description_binary=BINARY, external_id="ext-1",
    )  # fmt: skip
    deleted_issue = issue(2, deleted_at=NOW)
    insert_one(conn, "issue_labels", issue_id=issue_id, label_id=label, **scoped)
    insert_one(conn, "issue_labels", issue_id=issue_id, label_id=gone_label, deleted_at=NOW, **scoped)
    insert_one(conn, "issue_assignees", issue_id=issue_id, assignee_id=assignee, **scoped)
    insert_one(conn, "issue_assignees", issue_id=issue_id, assignee_id=unassigned, deleted_at=NOW, **scoped)
    cycle = insert_one(conn, "cycles", name="C1", owned_by_id=owner, end_date=NOW, **scoped)
    module = insert_one(conn, "modules", name="M1", status="backlog", **scoped)
    insert_one(conn, "module_members", module_id=module, member_id=assignee, **scoped)
    intake = insert_one(conn, "intakes", name="Intake", **scoped)
    intake_issue = insert_one(conn, "intake_issues", intake_id=intake, issue_id=issue_id, status=-2, **scoped)
    return World(
        owner=owner, ws=ws, project=project, state=state, label=label, assignee=assignee,
        avatar_asset=avatar_asset, issue=issue_id, deleted_issue=deleted_issue, cycle=cycle, module=module,
        cycle_issue=insert_one(conn, "cycle_issues", cycle_id=cycle, issue_id=issue_id, **scoped),
        module_issue=insert_one(conn, "module_issues", module_id=module, issue_id=issue_id, **scoped),
        comment=insert_one(
            conn, "issue_comments", issue_id=issue_id, actor_id=owner, comment_html="<p>hi</p>",
            comment_stripped="hi", comment_json=json.dumps({"type": "doc"}), access="INTERNAL", **scoped,
        ),
        intake=intake, intake_issue=intake_issue,
    )  # fmt: skip


def columns(conn: Connection, table: str) -> list[str]:
    query = text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = :t ORDER BY ordinal_position"
    )
    return list(conn.scalars(query, {"t": table}))


def test_issue_payload_has_plane_keys_and_expansions(conn: Connection, world: World) -> None:
    data = model_data(conn, "issue", world.issue)
    assert data is not None
    assert data["id"] == str(world.issue)
    assert data["project"] == str(world.project)
    assert data["workspace"] == str(world.ws)
    assert data["created_by"] == str(world.owner)
    assert data["parent"] is None
    assert not {"project_id", "workspace_id", "state_id", "created_by_id"} & data.keys()
    assert data["external_id"] == "ext-1"  # not a foreign key: keeps its name
    assert data["state"] == {"id": str(world.state), "name": "Todo", "color": "#aaa", "group": "unstarted"}
    assert data["labels"] == [{"id": str(world.label), "name": "bug", "color": "#f00"}]
    assert [a["id"] for a in data["assignees"]] == [str(world.assignee)]
    assert list(data["assignees"][0]) == USER_LITE_KEYS
    assert data["description"] == data["description_json"] == {"type": "doc"}
    assert base64.b64decode(data["description_binary"]) == BINARY  # DRF ModelField: base64
    assert data["created_at"] == "2024-01-02T03:04:05.123456Z"
    assert data["updated_at"] == "2024-01-02T03:04:06.123456Z"
    assert data["start_date"] == "2024-01-01"
    assert data["deleted_at"] is None
    assert "cycle" not in data and "module" not in data  # DRF skips them (reverse FKs, not one-to-one)


def test_every_column_is_present_under_its_drf_name(conn: Connection, world: World) -> None:
    cases = {
        "project": ("projects", world.project),
        "cycle": ("cycles", world.cycle),
        "module": ("modules", world.module),
        "cycle_issue": ("cycle_issues", world.cycle_issue),
        "module_issue": ("module_issues", world.module_issue),
        "intake_issue": ("intake_issues", world.intake_issue),
    }
    for event, (table, row_id) in cases.items():
        data = model_data(conn, event, str(row_id))
        assert data is not None, event
        for column in columns(conn, table):
            key = column.removesuffix("_id") if column.endswith("_id") and column != "external_id" else column
            assert key in data, (event, key)
        assert data["id"] == str(row_id)
        assert data["created_at"].endswith("Z")
        json.dumps(data)


def test_related_extras(conn: Connection, world: World) -> None:
    project = model_data(conn, "project", world.project)
    assert project is not None and project["workspace"] == str(world.ws)
    assert project["cover_image_url"] == project["cover_image"] == "https://x/c.png"
    cycle = model_data(conn, "cycle", world.cycle)
    assert cycle is not None and cycle["end_date"] == "2024-01-02T03:04:05.123456Z"
    module = model_data(conn, "module", world.module)
    assert module is not None and module["members"] == [str(world.assignee)]
    cycle_issue = model_data(conn, "cycle_issue", world.cycle_issue)
    assert cycle_issue is not None and cycle_issue["cycle"] == str(world.cycle)
    assert cycle_issue["issue"] == str(world.issue)
    intake = model_data(conn, "intake_issue", world.intake_issue)
    assert intake is not None and intake["inbox"] == intake["intake"] == str(world.intake)
    detail = intake["issue_detail"]
    assert detail["id"] == str(world.issue)
    assert detail["labels"] == [str(world.label)]  # not expanded outside the issue event
    assert detail["assignees"] == [str(world.assignee)]


def test_missing_or_soft_deleted_rows_give_none(conn: Connection, world: World) -> None:
    assert model_data(conn, "issue", world.deleted_issue) is None
    assert model_data(conn, "issue", uuid.uuid4()) is None
    assert model_data(conn, "user", uuid.uuid4()) is None
    conn.execute(text("UPDATE issue_comments SET deleted_at = now() WHERE id = :id"), {"id": world.comment})
    assert model_data(conn, "issue_comment", world.comment) is None


def test_comment_excludes_stripped_and_json(conn: Connection, world: World) -> None:
    data = model_data(conn, "issue_comment", world.comment)
    assert data is not None
    assert "comment_stripped" not in data and "comment_json" not in data
    assert data["comment_html"] == "<p>hi</p>"
    assert data["issue"] == str(world.issue)
    assert data["actor"] == str(world.owner)
    assert data["attachments"] == []


def test_user_lite(conn: Connection, world: World) -> None:
    owner = user_lite(conn, world.owner)
    assert owner is not None and list(owner) == USER_LITE_KEYS
    assert owner["id"] == str(world.owner)
    assert owner["avatar_url"] == owner["avatar"] == "https://x/o.png"
    assignee = user_lite(conn, str(world.assignee))
    assert assignee is not None
    assert assignee["avatar_url"] == f"/api/assets/v2/static/{world.avatar_asset}/"
    assert model_data(conn, "user", world.owner) == owner


def test_unknown_event_raises(conn: Connection) -> None:
    with pytest.raises(ValueError, match="Model not found for event: page"):
        model_data(conn, "page", uuid.uuid4())


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("POST", "create"),
        ("PATCH", "update"),
        ("PUT", "update"),
        ("DELETE", "delete"),
        ("deleted", "deleted"),
    ],
)
def test_build_payload_order_and_action(action: str, expected: str) -> None:
    payload = build_payload(uuid.uuid4(), uuid.uuid4(), "issue", action, {"id": uuid.uuid4()}, None)
    assert list(payload) == ["event", "action", "webhook_id", "workspace_id", "data", "activity"]
    assert payload["action"] == expected
    assert isinstance(payload["webhook_id"], str) and isinstance(payload["data"]["id"], str)


def test_full_payload_is_plain_json(conn: Connection, world: World) -> None:
    activity = {
        "field": "priority",
        "new_value": "high",
        "old_value": "none",
        "actor": user_lite(conn, world.owner),
        "old_identifier": None,
        "new_identifier": None,
    }
    data = model_data(conn, "issue", world.issue)
    payload = build_payload("wh", world.ws, "issue", "updated", data, activity)
    assert json.loads(json.dumps(payload)) == payload
    assert payload["activity"]["actor"]["id"] == str(world.owner)
