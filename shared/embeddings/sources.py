"""What is embedded, read from Plane's own tables: issues (name + description_stripped) and pages.

One query per entity type for a whole batch of ids (the consumer), or one keyset page at a time in
id order (the backfill). An entity that is absent, soft-deleted (`deleted_at`), or a draft is not
indexed: Plane's default managers hide those rows, and Plane AI answers from what users can see.
Archived issues stay searchable, as they do in Plane.

The version of what is read is the row's `updated_at` (as index.external_version): the text and its
version come from the same row, so an event that says "v2" while the row already holds v3 indexes
v3 under v3, and a replayed v2 after it is ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from shared.embeddings.chunking import ISSUE, PAGE, Document, issue_document, page_document
from shared.embeddings.index import external_version

# Entity types whose text the consumer reads from Plane's database; others carry it in the event.
DB_TYPES = frozenset({ISSUE, PAGE})

_ISSUES = text(
    """
    SELECT id, workspace_id, project_id, name, description_stripped, updated_at
    FROM issues
    WHERE id = ANY(CAST(:ids AS uuid[])) AND deleted_at IS NULL AND NOT is_draft
    """
)
# A page's project: the first live link in project_pages (a page shared with several projects is
# indexed once, under one of them); none means a workspace page.
_PAGES = text(
    """
    SELECT p.id, p.workspace_id, pp.project_id, p.name, p.description_stripped, p.updated_at
    FROM pages p
    LEFT JOIN LATERAL (
        SELECT project_id FROM project_pages
        WHERE page_id = p.id AND deleted_at IS NULL ORDER BY created_at, project_id LIMIT 1
    ) pp ON true
    WHERE p.id = ANY(CAST(:ids AS uuid[])) AND p.deleted_at IS NULL
    """
)
_ISSUE_PAGE = text(
    """
    SELECT id, workspace_id, project_id, name, description_stripped, updated_at
    FROM issues
    WHERE workspace_id = :ws AND deleted_at IS NULL AND NOT is_draft AND id > CAST(:after AS uuid)
    ORDER BY id
    LIMIT :limit
    """
)
_ISSUE_IDS = text(
    """
    SELECT id FROM issues
    WHERE workspace_id = :ws AND deleted_at IS NULL AND NOT is_draft AND id > CAST(:after AS uuid)
    ORDER BY id
    LIMIT :limit
    """
)
_ISSUE_COUNT = text(
    "SELECT count(*) FROM issues WHERE workspace_id = :ws AND deleted_at IS NULL AND NOT is_draft"
)
FIRST_ID = "00000000-0000-0000-0000-000000000000"


def valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _issue(row: Sequence[object]) -> Document:
    id_, ws, project, name, stripped, updated_at = row
    return issue_document(
        issue_id=str(id_),
        workspace_id=str(ws),
        project_id=str(project),
        version=external_version(updated_at),  # type: ignore[arg-type]
        name=str(name or ""),
        description_stripped=stripped,  # type: ignore[arg-type]
    )


def _page(row: Sequence[object]) -> Document:
    id_, ws, project, name, stripped, updated_at = row
    return page_document(
        page_id=str(id_),
        workspace_id=str(ws),
        project_id=None if project is None else str(project),
        version=external_version(updated_at),  # type: ignore[arg-type]
        name=str(name or ""),
        description_stripped=stripped,  # type: ignore[arg-type]
    )


def read_documents(conn: Connection, entity_type: str, ids: Iterable[str]) -> dict[str, Document]:
    """The current Document of each id that Plane still shows; missing ids vanished."""
    if entity_type not in DB_TYPES:
        raise ValueError(f"{entity_type!r} is not read from Plane's database")
    wanted = sorted({i for i in ids if valid_uuid(i)})
    if not wanted:
        return {}
    query, build = (_ISSUES, _issue) if entity_type == ISSUE else (_PAGES, _page)
    return {str(row[0]): build(row) for row in conn.execute(query, {"ids": wanted})}


@dataclass(frozen=True)
class IssuePage:
    documents: list[Document]
    last_id: str | None  # the keyset position after this page; None: the page was empty


def issue_page(conn: Connection, workspace_id: str, after: str, limit: int) -> IssuePage:
    """The next `limit` issues of a workspace after id `after`, in id order (keyset: each page is
    one index range scan, however deep the backfill is)."""
    rows = conn.execute(_ISSUE_PAGE, {"ws": workspace_id, "after": after, "limit": limit}).all()
    docs = [_issue(row) for row in rows]
    return IssuePage(docs, docs[-1].entity_id if docs else None)


def count_issues(conn: Connection, workspace_id: str) -> int:
    return int(conn.execute(_ISSUE_COUNT, {"ws": workspace_id}).scalar_one())


def issue_ids(conn: Connection, workspace_id: str, after: str, limit: int) -> list[str]:
    """The next `limit` live issue ids of a workspace after `after` (no text: for counting)."""
    return [
        str(i)
        for i in conn.execute(_ISSUE_IDS, {"ws": workspace_id, "after": after, "limit": limit}).scalars()
    ]
