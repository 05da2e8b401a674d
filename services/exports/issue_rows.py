"""Plane's IssueExportSerializer rows (utils/porters/serializers/issue.py), streamed.

Plane loads every issue of the export with seven prefetches and serialises the whole list; here
one statement (newest first, Plane's `-created_at` ordering, ties broken by id) carries each
related set as an array column and is read through a server-side cursor a page at a time. Memory is
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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, text

# One statement for the whole export, streamed through a server-side cursor: each related set is
# an ARRAY(...) subquery on its issue_id index, in Plane's order for that relation (pairs and
# tuples as rows of a 2-D text array). Keyset pages re-sorted every issue of the projects for
# each page (no index on created_at) and took ten round trips per page: 3,100 rows/s at 20,000.
ISSUES = text(
    """
    SELECT i.id::text AS id, i.created_at, i.updated_at, i.sequence_id, i.name, i.priority, i.start_date,
           i.target_date, i.completed_at, i.archived_at, i.is_draft,
           p.name AS project_name, p.identifier AS project_identifier, s.name AS state_name,
           cb.first_name AS cb_first, cb.last_name AS cb_last, ep.value AS estimate,
           pp.identifier AS parent_identifier, par.sequence_id AS parent_sequence,
           ARRAY(SELECT ARRAY[u.first_name, u.last_name] FROM issue_assignees a
                 JOIN users u ON u.id = a.assignee_id
                 WHERE a.issue_id = i.id AND a.deleted_at IS NULL AND u.is_active
                 ORDER BY u.created_at DESC, u.id) AS assignees,
           ARRAY(SELECT ARRAY[u.first_name, u.last_name] FROM issue_subscribers su
                 JOIN users u ON u.id = su.subscriber_id
                 WHERE su.issue_id = i.id AND su.deleted_at IS NULL
                 ORDER BY su.created_at DESC, su.id) AS subscribers,
           ARRAY(SELECT l.name FROM issue_labels il JOIN labels l ON l.id = il.label_id
                 WHERE il.issue_id = i.id AND il.deleted_at IS NULL
                 ORDER BY il.created_at DESC, il.id) AS labels,
           ARRAY(SELECT c.name FROM cycle_issues ci JOIN cycles c ON c.id = ci.cycle_id
                 WHERE ci.issue_id = i.id AND ci.deleted_at IS NULL
                 ORDER BY ci.created_at DESC, ci.id) AS cycles,
           ARRAY(SELECT m.name FROM module_issues mi JOIN modules m ON m.id = mi.module_id
                 WHERE mi.issue_id = i.id AND mi.deleted_at IS NULL
                 ORDER BY mi.created_at DESC, mi.id) AS modules,
           ARRAY(SELECT ARRAY[lk.url, lk.title] FROM issue_links lk
                 WHERE lk.issue_id = i.id AND lk.deleted_at IS NULL
                 ORDER BY lk.created_at DESC, lk.id) AS links,
           ARRAY(SELECT ARRAY[r.relation_type, rp.identifier || '-' || o.sequence_id]
                 FROM issue_relations r JOIN issues o ON o.id = r.related_issue_id
                 JOIN projects rp ON rp.id = o.project_id
                 WHERE r.issue_id = i.id AND r.deleted_at IS NULL
                 ORDER BY r.created_at DESC, r.id) AS outgoing,
           ARRAY(SELECT ARRAY[r.relation_type, rp.identifier || '-' || o.sequence_id]
                 FROM issue_relations r JOIN issues o ON o.id = r.issue_id
                 JOIN projects rp ON rp.id = o.project_id
                 WHERE r.related_issue_id = i.id AND r.deleted_at IS NULL
                 ORDER BY r.created_at DESC, r.id) AS incoming,
           ARRAY(SELECT ARRAY[c.comment_stripped, a.first_name, a.last_name,
                              to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')]
                 FROM issue_comments c LEFT JOIN users a ON a.id = c.actor_id
                 WHERE c.issue_id = i.id AND c.deleted_at IS NULL
                 ORDER BY c.created_at, c.id) AS comments
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
    ORDER BY i.created_at DESC, i.id DESC
    """
)


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


def _names(pairs: Sequence[Sequence[str | None]]) -> list[str]:
    return [full_name(first, last) for first, last in pairs]


def _relations(pairs: Sequence[Sequence[str]], direction: str) -> list[dict[str, str]]:
    return [{"type": kind, "issue": issue, "direction": direction} for kind, issue in pairs]


def _row(issue: Any) -> dict[str, Any]:
    """One IssueExportSerializer row, keys in Plane's Meta.fields order."""
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
        "assignees": _names(issue.assignees),
        "subscribers": _names(issue.subscribers),
        "created_by_name": full_name(issue.cb_first, issue.cb_last) if issue.cb_first is not None else "",
        "start_date": drf_date(issue.start_date),
        "target_date": drf_date(issue.target_date),
        "completed_at": drf_datetime(issue.completed_at),
        "created_at": drf_datetime(issue.created_at),
        "updated_at": drf_datetime(issue.updated_at),
        "archived_at": drf_date(issue.archived_at),
        "estimate": issue.estimate if issue.estimate is not None else "",
        "labels": issue.labels,
        "cycles": issue.cycles,
        "modules": issue.modules,
        "links": [{"url": url, "title": title or url} for url, title in issue.links],
        "relations": _relations(issue.outgoing, "outgoing") + _relations(issue.incoming, "incoming"),
        "comments": [
            {"comment": comment, "created_by": full_name(first, last), "created_at": when or ""}
            for comment, first, last, when in issue.comments
        ],
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
    """Every exported issue's row, newest first, fetched `page_size` at a time from one
    server-side cursor. `between_pages` runs before each page (cancellation checks).

    The next page is read on a thread of its own while this one is written: PostgreSQL builds it
    (the related sets) and psycopg2 waits for it without the GIL, so the two overlap instead of
    taking turns. Memory is two pages. The reader is the cursor's only user, and leaving early
    waits for its fetch in flight before the connection closes.

    One read-only REPEATABLE READ transaction for the whole export: one snapshot, as Plane's
    single queryset reads, and it stays open as long as the export runs (seconds to minutes;
    vacuum keeps row versions newer than it meanwhile)."""
    projects = [str(uuid.UUID(p)) for p in project_ids]
    params = {"workspace": workspace_id, "projects": projects, "member": member_id}
    options = {"stream_results": True, "max_row_buffer": page_size, "isolation_level": "REPEATABLE READ"}
    with (
        engine.connect().execution_options(**options) as conn,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-read") as reader,
    ):
        pages = conn.execute(ISSUES, params).partitions(page_size)
        pending = reader.submit(next, pages, None)
        while True:
            between_pages()
            page = pending.result()
            if page is None:
                return
            pending = reader.submit(next, pages, None)
            for issue in page:
                yield _row(issue)
            if pause_s:
                time.sleep(pause_s)
