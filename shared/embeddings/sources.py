"""What is embedded, read from Plane's own tables: issues (name + description_stripped) and pages.

One query per entity type for a whole batch of ids (the consumer), or one keyset page of a type at a
time in id order (the backfill). An entity that is absent, soft-deleted (`deleted_at`), or a draft is not
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

_LIVE = {  # Plane's default managers: what users see
    ISSUE: "p.deleted_at IS NULL AND NOT p.is_draft",
    PAGE: "p.deleted_at IS NULL",
}
_ISSUE_COLUMNS = (
    "SELECT p.id, p.workspace_id, p.project_id, p.name, p.description_stripped, p.updated_at FROM issues p"
)
# A page's project: the first live link in project_pages (a page shared with several projects is
# indexed once, under one of them); none means a workspace page.
_PAGE_COLUMNS = """
    SELECT p.id, p.workspace_id, pp.project_id, p.name, p.description_stripped, p.updated_at
    FROM pages p
    LEFT JOIN LATERAL (
        SELECT project_id FROM project_pages
        WHERE page_id = p.id AND deleted_at IS NULL ORDER BY created_at, project_id LIMIT 1
    ) pp ON true"""
_FROM = {ISSUE: "FROM issues p", PAGE: "FROM pages p"}
_BY_IDS = " WHERE p.id = ANY(CAST(:ids AS uuid[])) AND "
_IN_WORKSPACE = " WHERE p.workspace_id = :ws AND "
_KEYSET = " AND p.id > CAST(:after AS uuid) ORDER BY p.id LIMIT :limit"

_ISSUES = text(_ISSUE_COLUMNS + _BY_IDS + _LIVE[ISSUE])
_PAGES = text(_PAGE_COLUMNS + _BY_IDS + _LIVE[PAGE])
# Keyset pages of a workspace's live documents, their ids alone, and their count.
_ENTITY_PAGE = {
    ISSUE: text(_ISSUE_COLUMNS + _IN_WORKSPACE + _LIVE[ISSUE] + _KEYSET),
    PAGE: text(_PAGE_COLUMNS + _IN_WORKSPACE + _LIVE[PAGE] + _KEYSET),
}
_ENTITY_IDS = {
    kind: text(f"SELECT p.id {_FROM[kind]}{_IN_WORKSPACE}{_LIVE[kind]}{_KEYSET}") for kind in _LIVE
}
_ENTITY_COUNT = {kind: text(f"SELECT count(*) {_FROM[kind]}{_IN_WORKSPACE}{_LIVE[kind]}") for kind in _LIVE}
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
class KeysetPage:
    documents: list[Document]
    last_id: str | None  # the keyset position after this page; None: the page was empty


def entity_page(conn: Connection, entity_type: str, workspace_id: str, after: str, limit: int) -> KeysetPage:
    """The next `limit` issues or pages of a workspace after id `after`, in id order (keyset: each
    page is one index range scan, however deep the backfill is)."""
    params = {"ws": workspace_id, "after": after, "limit": limit}
    build = _issue if entity_type == ISSUE else _page
    docs = [build(row) for row in conn.execute(_ENTITY_PAGE[entity_type], params)]
    return KeysetPage(docs, docs[-1].entity_id if docs else None)


def count_entities(conn: Connection, entity_type: str, workspace_id: str) -> int:
    return int(conn.execute(_ENTITY_COUNT[entity_type], {"ws": workspace_id}).scalar_one())


def entity_ids(conn: Connection, entity_type: str, workspace_id: str, after: str, limit: int) -> list[str]:
    """The next `limit` live ids of a type in a workspace after `after` (no text: for counting)."""
    params = {"ws": workspace_id, "after": after, "limit": limit}
    return [str(i) for i in conn.execute(_ENTITY_IDS[entity_type], params).scalars()]
