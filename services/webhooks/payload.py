"""Webhook payloads: Plane's `get_model_data` and payload envelope (bgtasks/webhook_task.py).

Follows Plane's `plane/api/serializers` (DRF `fields="__all__"`, rendered the way DRF and
`DjangoJSONEncoder` render them):

- every column of the row; a foreign-key column `<x>_id` appears as `<x>` holding the id string
  (FK columns are those listed in `plane_on_delete.ON_DELETE`, so `external_id` stays as is);
- uuid -> str; timestamptz -> ISO 8601 in UTC with `Z` (DRF DateTimeField); date -> ISO date;
  Decimal -> str; JSON and array columns as stored;
- bytea (`issues.description_binary`) -> base64, as DRF's ModelField does for a BinaryField;
- the row is looked up through Plane's soft-delete manager, i.e. `deleted_at IS NULL` only (not
  `Issue.issue_objects`: drafts, archived and triage issues are still returned); missing -> None;
- per-serializer extras: issue (IssueExpandSerializer with expand=labels,assignees): `labels`
  [{id,name,color}] and `assignees` [UserLite] over live link rows (the label itself may be
  soft-deleted, as with Django's select_related), `state` nested {id,name,color,group},
  `description` (= description_json); project: `cover_image_url`; module: `members` (ids, via
  module_members, link rows not filtered, as Django's M2M manager does); intake_issue:
  `issue_detail` (issue without expansion: label/assignee ids) and `inbox`; issue_comment: no
  `comment_stripped`/`comment_json`; user: UserLite.

Deviations: keys follow the table's column order, extras last (DRF puts declared fields first);
`avatar_url`/`cover_image_url` assume the asset is an avatar/cover asset (Plane's
`FileAsset.asset_url` gives `/api/assets/v2/static/<id>/` for those kinds); an `event_id` that
is not a UUID raises ValueError. DRF attributes that Plane never annotates here (cycle/module on
issues, issue counts on cycles/modules/projects, `is_member`, `sub_issues_count`) are skipped by
DRF, so they are absent here too.
"""

from __future__ import annotations

import base64
import decimal
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection, text

from shared.db.plane_on_delete import ON_DELETE

TABLES = {
    "project": "projects",
    "issue": "issues",
    "cycle": "cycles",
    "module": "modules",
    "cycle_issue": "cycle_issues",
    "module_issue": "module_issues",
    "issue_comment": "issue_comments",
    "intake_issue": "intake_issues",
}
EXCLUDE = {"issue_comments": {"comment_stripped", "comment_json"}}
FOREIGN_KEYS = frozenset(ON_DELETE)
ACTIONS = {"POST": "create", "PATCH": "update", "PUT": "update", "DELETE": "delete"}


def _static_url(asset: str, fallback: str) -> str:
    """SQL for Plane's `avatar_url`/`cover_image_url` properties: asset URL, else the URL, else null."""
    return (
        f"CASE WHEN {asset} IS NOT NULL THEN '/api/assets/v2/static/' || {asset} || '/' "
        f"ELSE NULLIF({fallback}, '') END"
    )


USER_LITE = (
    "u.id, u.first_name, u.last_name, u.email, u.avatar, "
    f"{_static_url('u.avatar_asset_id', 'u.avatar')} AS avatar_url, u.display_name"
)


def model_data(conn: Connection, event: str, event_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The webhook `data` for `event`/`event_id`, or None when the row is missing or soft-deleted."""
    if event == "user":
        return user_lite(conn, event_id)
    table = TABLES.get(event)
    if table is None:
        raise ValueError(f"Model not found for event: {event}")
    row = _row(conn, table, event_id, live_only=True)
    if row is None:
        return None
    data = serialize_row(table, row)
    if event == "issue":
        data.update(_issue_extras(conn, row, expand=True))
    elif event == "project":
        cover = text(
            f"SELECT {_static_url('cover_image_asset_id', 'cover_image')} FROM projects WHERE id = :id"
        )
        data["cover_image_url"] = conn.scalar(cover, {"id": row["id"]})
    elif event == "module":
        members = text(
            "SELECT mm.member_id FROM module_members mm JOIN users u ON u.id = mm.member_id "
            "WHERE mm.module_id = :id ORDER BY u.created_at DESC"
        )
        data["members"] = [str(m) for m in conn.scalars(members, {"id": row["id"]})]
    elif event == "intake_issue":
        issue = _row(conn, "issues", row["issue_id"], live_only=False)  # a FK: Django's base manager
        data["issue_detail"] = None
        if issue is not None:
            data["issue_detail"] = serialize_row("issues", issue) | _issue_extras(conn, issue, expand=False)
        data["inbox"] = str(row["intake_id"])
    return data


def user_lite(conn: Connection, user_id: uuid.UUID | str) -> dict[str, Any] | None:
    """Plane's UserLiteSerializer: id, first_name, last_name, email, avatar, avatar_url, display_name."""
    query = text(f"SELECT {USER_LITE} FROM users u WHERE u.id = :id")
    row = conn.execute(query, {"id": _uuid(user_id)}).mappings().first()
    return None if row is None else {key: _json_value(value) for key, value in row.items()}


def build_payload(
    webhook_id: uuid.UUID | str,
    workspace_id: uuid.UUID | str,
    event: str,
    action: str,
    data: Any,
    activity: Any,
) -> dict[str, Any]:
    """Plane's webhook body, keys in Plane's order (the signature is over `json.dumps` of it)."""
    return SharedBody.of(workspace_id, event, action, data, activity).for_webhook(webhook_id)


@dataclass(frozen=True)
class SharedBody:
    """What every webhook's body for one event has in common, converted once: the fan-out builds
    a hundred bodies per event, and `data` (a whole serialised issue) was converted each time."""

    event: str
    action: str
    workspace_id: str
    data: Any
    activity: Any

    @classmethod
    def of(
        cls, workspace_id: uuid.UUID | str, event: str, action: str, data: Any, activity: Any
    ) -> SharedBody:
        return cls(
            event, ACTIONS.get(action, action), str(workspace_id), _django_json(data), _django_json(activity)
        )

    def for_webhook(self, webhook_id: uuid.UUID | str) -> dict[str, Any]:
        # The dicts are shared between the bodies, not copied: nothing mutates a built body.
        return {
            "event": self.event,
            "action": self.action,
            "webhook_id": str(webhook_id),
            "workspace_id": self.workspace_id,
            "data": self.data,
            "activity": self.activity,
        }


def serialize_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row the way DRF's ModelSerializer(fields="__all__") renders it."""
    excluded = EXCLUDE.get(table, ())
    return {
        (column[:-3] if (table, column) in FOREIGN_KEYS else column): _json_value(value)
        for column, value in row.items()
        if column not in excluded
    }


def _issue_extras(conn: Connection, issue: Mapping[str, Any], expand: bool) -> dict[str, Any]:
    """IssueExpandSerializer's declared fields: labels, assignees, nested state, description."""
    labels = text(
        "SELECT l.id, l.name, l.color FROM issue_labels il JOIN labels l ON l.id = il.label_id "
        "WHERE il.issue_id = :id AND il.deleted_at IS NULL ORDER BY il.created_at DESC"
    )
    assignees = text(
        f"SELECT {USER_LITE} FROM issue_assignees ia JOIN users u ON u.id = ia.assignee_id "
        "WHERE ia.issue_id = :id AND ia.deleted_at IS NULL ORDER BY ia.created_at DESC"
    )
    state = text('SELECT id, name, color, "group" FROM states WHERE id = :id')
    params = {"id": issue["id"]}
    label_rows = [_plain(r) for r in conn.execute(labels, params).mappings()]
    assignee_rows = [_plain(r) for r in conn.execute(assignees, params).mappings()]
    state_row = conn.execute(state, {"id": issue["state_id"]}).mappings().first()
    return {
        "labels": label_rows if expand else [r["id"] for r in label_rows],
        "assignees": assignee_rows if expand else [r["id"] for r in assignee_rows],
        "state": None if state_row is None else _plain(state_row),
        "description": issue["description_json"],
    }


def _row(conn: Connection, table: str, row_id: Any, live_only: bool) -> Mapping[str, Any] | None:
    live = " AND deleted_at IS NULL" if live_only else ""
    query = text(f"SELECT * FROM {table} WHERE id = :id{live}")  # table names come from TABLES
    return conn.execute(query, {"id": _uuid(row_id)}).mappings().first()


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    """One column value as DRF renders it (ISO 8601 in UTC with Z, ids as strings, bytes base64)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        iso = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        return iso.removesuffix("+00:00") + "Z"
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(value).decode("ascii")
    return value


def _django_json(value: Any) -> Any:
    """Plane's `json.loads(json.dumps(x, cls=DjangoJSONEncoder))` round trip."""
    return None if value is None else json.loads(json.dumps(value, default=_django_default))


def _django_default(o: Any) -> Any:
    """DjangoJSONEncoder.default for the types a payload can carry (datetimes to milliseconds)."""
    if isinstance(o, datetime):
        iso = o.isoformat()
        if o.microsecond:
            iso = iso[:23] + iso[26:]
        return iso.removesuffix("+00:00") + "Z" if iso.endswith("+00:00") else iso
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, time):
        return o.isoformat()[:12] if o.microsecond else o.isoformat()
    if isinstance(o, uuid.UUID | decimal.Decimal):
        return str(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
