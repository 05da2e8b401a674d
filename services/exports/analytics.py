"""`plane.analytics_export.v1`: Plane's analytic_export_task (bgtasks/analytic_plot_export.py).

The distribution Plane's `build_graph_plot` computes (utils/analytics_plot.py) for `x_axis`,
`y_axis` (issue_count or estimate) and an optional `segment`, over `Issue.issue_objects` of the
workspace (not deleted, drafts, archived issues and triage out, projects not archived) narrowed
by Plane's POST filters; ids on the x axis and in the segment header are replaced by names, and the
rows are mailed as "Your Export is ready" with `{slug}-analytics.csv` attached, through the
`emails` topic (services/emails/mails_exports.py writes the CSV: QUOTE_ALL, sanitised).

Plane's shapes are kept: headers from its `row_mapping` ("X-Axis"/"Y-Axis" where it has none),
date axes bucketed "YYYY-M", rows sorted as its `sort_data` sorts them (priority in its fixed order,
else by key with "none" last), a missing segment value "0", the x axis with no value left out.
Where Plane's result depended on chance or on a bug, it does not here: the segment columns are
sorted (Plane took a set's order), module segments get their names (Plane looked them up in the
labels), and filters on labels, assignees, cycles and modules select issues without counting an
issue once per matching row (Django's join did). Filters supported: project, state, state_group,
priority, estimate_point, parent, labels, assignees, created_by, cycle, module, created_at and
completed_at (Plane's "date;after|before" and "N_weeks|months;after|before;fromnow|ago" forms).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import Engine, text

from shared.events import Event, new_event
from shared.kafka.handler import PermanentError

AXES = (
    "state_id", "state__group", "labels__id", "assignees__id", "estimate_point__value",
    "issue_cycle__cycle_id", "issue_module__module_id", "priority", "start_date", "target_date",
    "created_at", "completed_at",
)  # fmt: skip
Y_AXES = ("issue_count", "estimate")
DATE_AXES = ("created_at", "start_date", "target_date", "completed_at")
ROW_MAPPING = {
    "state__name": "State", "state__group": "State Group", "labels__id": "Label",
    "assignees__id": "Assignee Name", "start_date": "Start Date", "target_date": "Due Date",
    "completed_at": "Completed At", "created_at": "Created At", "issue_count": "Issue Count",
    "priority": "Priority", "estimate": "Estimate", "issue_cycle__cycle_id": "Cycle",
    "issue_module__module_id": "Module",
}  # fmt: skip
PRIORITY_ORDER = ("low", "medium", "high", "urgent", "none")
MAIL_TYPE = "plane.email.analytics_export.v1"
MAIL_NAMESPACE = uuid.UUID("6f1c1c1e-8a2b-4c1e-9a57-0c2f4e5d6a7b")

# Each axis: (SQL of its value, the join it needs). Related rows soft-deleted are left out.
_JOIN = "LEFT JOIN {table} {{a}} ON {{a}}.issue_id = i.id AND {{a}}.deleted_at IS NULL"
_AXIS_SQL = {
    "state_id": ("i.state_id::text", ""),
    "state__group": ('s."group"', ""),
    "labels__id": ("{a}.label_id::text", _JOIN.format(table="issue_labels")),
    "assignees__id": ("{a}.assignee_id::text", _JOIN.format(table="issue_assignees")),
    "estimate_point__value": ("ep.value", ""),
    "issue_cycle__cycle_id": ("{a}.cycle_id::text", _JOIN.format(table="cycle_issues")),
    "issue_module__module_id": ("{a}.module_id::text", _JOIN.format(table="module_issues")),
    "priority": ("i.priority", ""),
}
for _axis in DATE_AXES:
    _AXIS_SQL[_axis] = (
        f"(extract(year from i.{_axis})::int::text || '-' || extract(month from i.{_axis})::int::text)",
        "",
    )

# Filter key -> SQL over `i` taking the list :name (Plane's POST `issue_filters`).
_LIST_FILTERS = {
    "project": "i.project_id::text = ANY(:{k})",
    "state": "i.state_id::text = ANY(:{k})",
    "state_group": 's."group" = ANY(:{k})',
    "priority": "i.priority = ANY(:{k})",
    "estimate_point": "i.estimate_point_id::text = ANY(:{k})",
    "parent": "i.parent_id::text = ANY(:{k})",
    "created_by": "i.created_by_id::text = ANY(:{k})",
    "labels": "EXISTS (SELECT 1 FROM issue_labels f WHERE f.issue_id = i.id AND f.deleted_at IS NULL"
    " AND f.label_id::text = ANY(:{k}))",
    "assignees": "EXISTS (SELECT 1 FROM issue_assignees f WHERE f.issue_id = i.id AND f.deleted_at IS NULL"
    " AND f.assignee_id::text = ANY(:{k}))",
    "cycle": "EXISTS (SELECT 1 FROM cycle_issues f WHERE f.issue_id = i.id AND f.deleted_at IS NULL"
    " AND f.cycle_id::text = ANY(:{k}))",
    "module": "EXISTS (SELECT 1 FROM module_issues f WHERE f.issue_id = i.id AND f.deleted_at IS NULL"
    " AND f.module_id::text = ANY(:{k}))",
}
_RELATIVE = re.compile(r"^(\d+)_(weeks|months)$")

_NAMES = {
    "assignees__id": "SELECT id::text, first_name || ' ' || last_name FROM users WHERE id::text = ANY(:ids)",
    "labels__id": "SELECT id::text, name FROM labels WHERE id::text = ANY(:ids)",
    "state_id": "SELECT id::text, name FROM states WHERE id::text = ANY(:ids)",
    "issue_cycle__cycle_id": "SELECT id::text, name FROM cycles WHERE id::text = ANY(:ids)",
    "issue_module__module_id": "SELECT id::text, name FROM modules WHERE id::text = ANY(:ids)",
}


def _date_conditions(column: str, queries: Any, params: dict[str, Any], today: date) -> list[str]:
    """Plane's date_filter: each "value;after|before" or "N_weeks;after|before;fromnow|ago"."""
    conditions = []
    for n, query in enumerate(queries if isinstance(queries, list) else []):
        parts = str(query).split(";")
        if len(parts) < 2:
            continue
        if match := _RELATIVE.match(parts[0]):
            if len(parts) != 3:
                continue
            days = int(match[1]) * (7 if match[2] == "weeks" else 30)
            bound: date | str = today + timedelta(days=days if parts[2] == "fromnow" else -days)
        else:
            bound = parts[0]
        name = f"{column}_{n}"
        params[name] = str(bound)
        op = ">=" if parts[1] == "after" else "<="
        conditions.append(f"(i.{column} AT TIME ZONE 'UTC')::date {op} CAST(:{name} AS date)")
    return conditions


def _where(filters: Mapping[str, Any], params: dict[str, Any]) -> list[str]:
    conditions = []
    for key, sql in _LIST_FILTERS.items():
        value = filters.get(key)
        if value and value != "null" and isinstance(value, list):
            params[key] = [str(v) for v in value]
            conditions.append(sql.format(k=key))
    today = datetime.now(UTC).date()
    for column in ("created_at", "completed_at"):
        conditions += _date_conditions(column, filters.get(column), params, today)
    return conditions


def distribution(engine: Engine, slug: str, data: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Plane's build_graph_plot: {dimension: [{dimension, segment?, count|estimate}]}, sorted."""
    x_axis, y_axis, segment = data.get("x_axis"), data.get("y_axis"), data.get("segment") or None
    if x_axis not in AXES or y_axis not in Y_AXES or (segment and (segment not in AXES or segment == x_axis)):
        raise PermanentError(f"invalid axes: x_axis={x_axis!r} y_axis={y_axis!r} segment={segment!r}")
    x_sql, x_join = _AXIS_SQL[x_axis]
    joins = [x_join.format(a="xj")]
    columns = [f"{x_sql.format(a='xj')} AS dimension"]
    group = ["1"]
    if segment:
        s_sql, s_join = _AXIS_SQL[segment]
        joins.append(s_join.format(a="sj"))
        columns.append(f"{s_sql.format(a='sj')} AS segment")
        group.append("2")
    measure = "count(*)" if y_axis == "issue_count" else "sum(CAST(ep.value AS double precision))"
    params: dict[str, Any] = {"slug": slug}
    where = [
        "w.slug = :slug", "i.deleted_at IS NULL", "i.archived_at IS NULL", "NOT i.is_draft",
        "p.archived_at IS NULL", "(s.\"group\" IS NULL OR s.\"group\" <> 'triage')",
        f"{x_sql.format(a='xj')} IS NOT NULL", *_where(data, params),
    ]  # fmt: skip
    sql = f"""
        SELECT {", ".join(columns)}, {measure} AS value FROM issues i
        JOIN workspaces w ON w.id = i.workspace_id JOIN projects p ON p.id = i.project_id
        LEFT JOIN states s ON s.id = i.state_id LEFT JOIN estimate_points ep ON ep.id = i.estimate_point_id
        {" ".join(j for j in joins if j)}
        WHERE {" AND ".join(where)}
        GROUP BY {", ".join(group)}
        ORDER BY 1{", 2" if segment else ""}
    """
    key = "count" if y_axis == "issue_count" else "estimate"
    with engine.connect() as conn:
        found = [
            {"dimension": r.dimension, **({"segment": r.segment} if segment else {}), key: r.value}
            for r in conn.execute(text(sql), params)
        ]
    grouped = {str(k): list(v) for k, v in groupby(found, key=lambda r: r["dimension"])}
    if x_axis == "priority":
        return {k: grouped[k] for k in PRIORITY_ORDER if k in grouped}
    return dict(sorted(grouped.items(), key=lambda kv: (kv[0] == "none", kv[0])))


def _names(engine: Engine, axis: str | None, ids: list[str]) -> dict[str, str]:
    if axis not in _NAMES or not ids:
        return {}
    with engine.connect() as conn:
        return {str(i): str(name) for i, name in conn.execute(text(_NAMES[axis]), {"ids": ids})}


def rows(engine: Engine, slug: str, data: Mapping[str, Any]) -> list[list[Any]]:
    """Plane's generate_segmented_rows / generate_non_segmented_rows: the header row, then one
    row per x value."""
    x_axis, y_axis, segment = data["x_axis"], data["y_axis"], data.get("segment") or None
    plot = distribution(engine, slug, data)
    key = "count" if y_axis == "issue_count" else "estimate"
    x_names = _names(engine, x_axis, list(plot))
    header: list[Any] = [ROW_MAPPING.get(x_axis, "X-Axis"), ROW_MAPPING.get(y_axis, "Y-Axis")]
    body = []
    if segment:
        segments = sorted(
            {r.get("segment") for items in plot.values() for r in items}, key=lambda v: (v is None, str(v))
        )
        seg_names = _names(engine, segment, [s for s in segments if s is not None])
        header += [seg_names.get(str(s), s) for s in segments]
        for item, found in plot.items():
            row: list[Any] = [x_names.get(item, item), sum(r[key] for r in found if r[key] is not None)]
            row += [next((r[key] for r in found if r.get("segment") == s), "0") for s in segments]
            body.append(row)
    else:
        body = [[x_names.get(item, item), found[0][key]] for item, found in plot.items()]
    return [header, *body]


def mail_event(source: Event, email: str, slug: str, table: list[list[Any]], max_bytes: int) -> Event:
    """The emails topic's analytics_export mail for these rows. Its id derives from the export
    event's, so a redelivered export produces the same mail event, which the emails consumer
    sends once."""
    header, *body = table
    keys = [str(n) for n in range(len(header))]
    data = {
        "data": [dict(zip(keys, row, strict=True)) for row in body],
        "headers": header,
        "keys": keys,
        "email": email,
        "slug": slug,
    }
    size = len(json.dumps(data))
    if size > max_bytes // 2:
        raise PermanentError(f"analytics export of {len(body)} rows is {size} bytes, too large to mail")
    return new_event(MAIL_TYPE, data, event_id=str(uuid.uuid5(MAIL_NAMESPACE, source.id)))
