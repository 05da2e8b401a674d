"""Plane's IssueExportSerializer rows (utils/porters/serializers/issue.py), read a page at a time.

Plane loads every issue of the export with seven prefetches and serialises the whole list; here a
keyset page of issues (newest first, Plane's `-created_at` ordering, ties broken by id) is read,
then each related set for that page's ids in one query, and the page's rows are yielded. Memory is
one page (EXPORT_PAGE_SIZE issues and their comments, links, ...), whatever the export's size.

Selection, as Plane's `issue_export_task`: issues of the workspace and the requested projects that
are not deleted (drafts and archived issues included), in projects that are not archived, where the
initiator is an active project member. Unlike Plane's join, a soft-deleted membership does not
count. Related sets follow Plane's managers: soft-deleted assignee, label, cycle, module, link,
relation, subscriber and comment rows are left out (Plane's assignees came through a many-to-many
that ignored its through-rows' `deleted_at`, so a removed assignee stayed in its export), each
ordered as Plane's model Meta orders it (`-created_at`), comments oldest first.

Values are DRF's: datetimes ISO 8601 in UTC with `Z`, dates `YYYY-MM-DD`. The three counts Plane's
serializer declares (sub_issues_count, link_count, attachment_count) are not annotated by its
queryset, so DRF leaves them out; so do we.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

ISSUES = text(
    """
    SELECT i.id::text AS id, i.created_at, i.updated_at, i.sequence_id, i.name, i.priority, i.start_date,
           i.target_date, i.completed_at, i.archived_at, i.is_draft,
           p.name AS project_name, p.identifier AS project_identifier, s.name AS state_name,
           cb.first_name AS cb_first, cb.last_name AS cb_last, ep.value AS estimate,
           pp.identifier AS parent_identifier, par.sequence_id AS parent_sequence
    FROM issues i
    JOIN projects p ON p.id = i.project_id
    LEFT JOIN states s ON s.id = i.state_id
    LEFT JOIN users cb ON cb.id = i.created_by_id
    LEFT JOIN estimate_points ep ON ep.id = i.estimate_point_id
    LEFT JOIN issues par ON par.id = i.parent_id AND par.deleted_at IS NULL
    LEFT JOIN projects pp ON pp.id = par.project_id
    WHERE i.workspace_id = CAST(:workspace AS uuid) AND i.project_id = ANY(CAST(:projects AS uuid[]))
      AND i.deleted_at IS NULL AND p.archived_at IS NULL
      AND EXISTS (SELECT 1 FROM project_members pm WHERE pm.project_id = i.project_id
                  AND pm.member_id = CAST(:member AS uuid) AND pm.is_active AND pm.deleted_at IS NULL)
      AND (CAST(:after_at AS timestamptz) IS NULL
           OR (i.created_at, i.id) < (:after_at, CAST(:after_id AS uuid)))
    ORDER BY i.created_at DESC, i.id DESC
    LIMIT :limit
    """
)

# Each yields (issue id, value) in Plane's order for that relation.
RELATED: dict[str, str] = {
    "assignees": """
        SELECT a.issue_id::text, u.first_name, u.last_name FROM issue_assignees a
        JOIN users u ON u.id = a.assignee_id
        WHERE a.issue_id = ANY(CAST(:ids AS uuid[])) AND a.deleted_at IS NULL AND u.is_active
        ORDER BY a.issue_id, u.created_at DESC, u.id""",
    "subscribers": """
        SELECT s.issue_id::text, u.first_name, u.last_name FROM issue_subscribers s
        JOIN users u ON u.id = s.subscriber_id
        WHERE s.issue_id = ANY(CAST(:ids AS uuid[])) AND s.deleted_at IS NULL
        ORDER BY s.issue_id, s.created_at DESC, s.id""",
    "labels": """
        SELECT il.issue_id::text, l.name FROM issue_labels il JOIN labels l ON l.id = il.label_id
        WHERE il.issue_id = ANY(CAST(:ids AS uuid[])) AND il.deleted_at IS NULL
        ORDER BY il.issue_id, il.created_at DESC, il.id""",
    "cycles": """
        SELECT ci.issue_id::text, c.name FROM cycle_issues ci JOIN cycles c ON c.id = ci.cycle_id
        WHERE ci.issue_id = ANY(CAST(:ids AS uuid[])) AND ci.deleted_at IS NULL
        ORDER BY ci.issue_id, ci.created_at DESC, ci.id""",
    "modules": """
        SELECT mi.issue_id::text, m.name FROM module_issues mi JOIN modules m ON m.id = mi.module_id
        WHERE mi.issue_id = ANY(CAST(:ids AS uuid[])) AND mi.deleted_at IS NULL
        ORDER BY mi.issue_id, mi.created_at DESC, mi.id""",
    "links": """
        SELECT issue_id::text, url, title FROM issue_links
        WHERE issue_id = ANY(CAST(:ids AS uuid[])) AND deleted_at IS NULL
        ORDER BY issue_id, created_at DESC, id""",
    "outgoing": """
        SELECT r.issue_id::text, r.relation_type, p.identifier, o.sequence_id FROM issue_relations r
        JOIN issues o ON o.id = r.related_issue_id JOIN projects p ON p.id = o.project_id
        WHERE r.issue_id = ANY(CAST(:ids AS uuid[])) AND r.deleted_at IS NULL
        ORDER BY r.issue_id, r.created_at DESC, r.id""",
    "incoming": """
        SELECT r.related_issue_id::text, r.relation_type, p.identifier, o.sequence_id FROM issue_relations r
        JOIN issues o ON o.id = r.issue_id JOIN projects p ON p.id = o.project_id
        WHERE r.related_issue_id = ANY(CAST(:ids AS uuid[])) AND r.deleted_at IS NULL
        ORDER BY r.related_issue_id, r.created_at DESC, r.id""",
    "comments": """
        SELECT c.issue_id::text, c.comment_stripped, a.first_name, a.last_name, c.created_at
        FROM issue_comments c LEFT JOIN users a ON a.id = c.actor_id
        WHERE c.issue_id = ANY(CAST(:ids AS uuid[])) AND c.deleted_at IS NULL
        ORDER BY c.issue_id, c.created_at, c.id""",
}
_RELATED = {name: text(sql) for name, sql in RELATED.items()}


def full_name(first: str | None, last: str | None) -> str:
    """Plane's User.full_name."""
    return f"{first or ''} {last or ''}".strip()


def drf_datetime(value: datetime | None) -> str | None:
    """DRF's DateTimeField in Plane's UTC: ISO 8601, '+00:00' written 'Z'."""
    if value is None:
        return None
    iso = value.astimezone(UTC).isoformat()
    return iso[:-6] + "Z" if iso.endswith("+00:00") else iso


def drf_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _shape(name: str, row: Any) -> Any:
    if name in ("assignees", "subscribers"):
        return full_name(row[1], row[2])
    if name in ("labels", "cycles", "modules"):
        return row[1]
    if name == "links":
        return {"url": row[1], "title": row[2] or row[1]}
    if name in ("outgoing", "incoming"):
        return {"type": row[1], "issue": f"{row[2]}-{row[3]}", "direction": name}
    # comments
    when = row[4].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if row[4] else ""
    return {"comment": row[1], "created_by": full_name(row[2], row[3]), "created_at": when}


def _related(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
    found: dict[str, dict[str, list[Any]]] = {}
    for name, query in _RELATED.items():
        per_issue: dict[str, list[Any]] = defaultdict(list)
        for row in conn.execute(query, {"ids": list(ids)}):
            per_issue[row[0]].append(_shape(name, row))
        found[name] = per_issue
    return found


def _row(issue: Any, related: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """One IssueExportSerializer row, keys in Plane's Meta.fields order."""
    iid = issue.id
    parent = ""
    if issue.parent_sequence is not None:
        parent = f"{issue.parent_identifier}-{issue.parent_sequence}"
    return {
        "project_name": issue.project_name,
        "project_identifier": issue.project_identifier,
        "parent": parent,
        "identifier": f"{issue.project_identifier}-{issue.sequence_id}",
        "sequence_id": issue.sequence_id,
        "name": issue.name,
        "state_name": "" if issue.state_name is None else issue.state_name,
        "priority": issue.priority,
        "assignees": related["assignees"].get(iid, []),
        "subscribers": related["subscribers"].get(iid, []),
        "created_by_name": full_name(issue.cb_first, issue.cb_last) if issue.cb_first is not None else "",
        "start_date": drf_date(issue.start_date),
        "target_date": drf_date(issue.target_date),
        "completed_at": drf_datetime(issue.completed_at),
        "created_at": drf_datetime(issue.created_at),
        "updated_at": drf_datetime(issue.updated_at),
        "archived_at": drf_date(issue.archived_at),
        "estimate": issue.estimate if issue.estimate is not None else "",
        "labels": related["labels"].get(iid, []),
        "cycles": related["cycles"].get(iid, []),
        "modules": related["modules"].get(iid, []),
        "links": related["links"].get(iid, []),
        "relations": related["outgoing"].get(iid, []) + related["incoming"].get(iid, []),
        "comments": related["comments"].get(iid, []),
        "is_draft": issue.is_draft,
    }


def issue_rows(
    engine: Engine,
    workspace_id: str,
    project_ids: Sequence[str],
    member_id: str,
    page_size: int,
    pause_s: float = 0.0,
    between_pages: Callable[[], None] = lambda: None,
) -> Iterator[dict[str, Any]]:
    """Every exported issue's row, newest first, one keyset page (one short transaction) at a
    time. `between_pages` runs before each page (cancellation checks)."""
    projects = [str(uuid.UUID(p)) for p in project_ids]
    after: tuple[datetime | None, str | None] = (None, None)
    while True:
        between_pages()
        params = {"workspace": workspace_id, "projects": projects, "member": member_id, "limit": page_size}
        with engine.connect() as conn:
            issues = conn.execute(
                ISSUES,
                params | {"after_at": after[0], "after_id": after[1]},
            ).all()
            related = _related(conn, [i.id for i in issues]) if issues else {}
        for issue in issues:
            yield _row(issue, related)
        if len(issues) < page_size:
            return
        after = (issues[-1].created_at, issues[-1].id)
        if pause_s:
            time.sleep(pause_s)
