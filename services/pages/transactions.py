"""Plane's page_transaction: a page's mentions and images kept in `page_logs`.

Plane's rules: components of the new HTML get a log row (transaction = component id), except
those the old HTML had already while the page has live logs (they were logged then); components
of the old HTML that the new one lacks are soft-deleted. Insert conflicts on (page_id,
transaction) are ignored. Differences, on purpose:
- Removals are scoped to the page. Plane deletes every page's logs with those transaction ids.
- A component removed and later put back (an undo) gets its soft-deleted row back. Plane's
  ignored conflict leaves it deleted for ever: the unique key also covers deleted rows.
- A bad component is skipped alone (services/pages/components.py) instead of failing the page.
Applying the same event twice changes nothing (live rows conflict, deleted ones stay deleted),
and the runtime's claim makes a redelivery a no-op anyway.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.pages.components import component_ids, components
from shared.db.plane import Page, PageLog

UNIQUE = "page_logs_page_id_transaction_9ab05334_uniq"


def apply(session: Session, page: Page, data: dict[str, Any], now: datetime) -> None:
    old = components(data.get("old_description_html"))
    new = components(data["new_description_html"])
    has_logs = session.scalar(
        select(exists().where(PageLog.page_id == page.id, PageLog.deleted_at.is_(None)))
    )
    added = [c for t, c in new.items() if not (has_logs and t in old)]
    if added:
        _log(session, page, added, now)
    removed = sorted(old.keys() - component_ids(data["new_description_html"])) if old else []
    if removed:
        # Plane's queryset delete(): deleted_at only (update() leaves updated_at alone).
        session.execute(
            update(PageLog)
            .where(
                PageLog.page_id == page.id,
                PageLog.transaction.in_(removed),
                PageLog.deleted_at.is_(None),
            )
            .values(deleted_at=now)
        )


def _log(session: Session, page: Page, added: list[Any], now: datetime) -> None:
    rows = [
        {
            "id": uuid.uuid4(),
            "created_at": now,
            "updated_at": now,
            "transaction": c.transaction,
            "page_id": page.id,
            "entity_identifier": c.entity_identifier,
            "entity_name": c.entity_name,
            "entity_type": None,
            "workspace_id": page.workspace_id,
        }
        for c in added
    ]
    statement = insert(PageLog).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            constraint=UNIQUE,
            set_={
                "deleted_at": None,
                "entity_identifier": statement.excluded.entity_identifier,
                "entity_name": statement.excluded.entity_name,
                "updated_at": statement.excluded.updated_at,
            },
            # A live row stays as it is (Plane's ignore_conflicts); only a deleted one returns.
            where=PageLog.deleted_at.is_not(None),
        )
    )
