"""Plane's track_page_version: a page's description history in `page_versions`.

Plane's rules (bgtasks/page_version_task.py): nothing happens when the description HTML is the
one the page had before the save. Otherwise the newest live version (by last_saved_at) is amended
when the same user created it at most 600 s ago (its last_saved_at is not moved on, so the window
runs from the version's creation), else a version is added; then, past 20 live versions, the
oldest is soft-deleted. The content always comes from the live page.

Differences: Plane's task reads `page.description`, a field renamed to `description_json`, and
so writes no version at all at its HEAD (bug 2 of the reference); this reads `description_json`.
Every version past the newest 20 is soft-deleted, not just one (equal when there were at most
21). The new version's created_by is the saving user (Plane's worker has no current user and
leaves it NULL). Not replay-safe by itself (the window depends on the time it runs): the
runtime's claim of the event id, in the same transaction, is what makes a redelivery a no-op.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from shared.db.plane import Page, PageVersion, User
from shared.kafka.handler import PermanentError

COALESCE_WINDOW = timedelta(seconds=600)  # Plane's PAGE_VERSION_TASK_TIMEOUT
MAX_VERSIONS = 20


def apply(session: Session, page: Page, data: dict[str, Any], now: datetime) -> bool:
    """True when a version was written (added or amended)."""
    previous = _previous_page(data.get("existing_instance"))
    if previous.get("description_html") == page.description_html:
        return False
    user_id = uuid.UUID(data["user_id"])
    latest = session.scalar(
        select(PageVersion)
        .where(PageVersion.page_id == page.id, PageVersion.deleted_at.is_(None))
        .order_by(PageVersion.last_saved_at.desc(), PageVersion.created_at.desc())
        .limit(1)
    )
    saved_at = latest.last_saved_at if latest is not None else None  # nullable in Plane's schema
    if (
        latest is not None
        and latest.owned_by_id == user_id
        and saved_at is not None
        and now - saved_at <= COALESCE_WINDOW
    ):
        _copy_description(page, latest)
        latest.updated_at = now
    else:
        if not session.scalar(select(exists().where(User.id == user_id))):
            raise PermanentError(f"user {user_id} does not exist: no version can be owned by it")
        version = PageVersion.new(
            now=now,
            page_id=page.id,
            workspace_id=page.workspace_id,
            owned_by_id=user_id,
            created_by_id=user_id,
            last_saved_at=now,
        )
        _copy_description(page, version)
        session.add(version)
    session.flush()
    _cap(session, page.id, now)
    return True


def _cap(session: Session, page_id: uuid.UUID, now: datetime) -> None:
    beyond = (
        select(PageVersion.id)
        .where(PageVersion.page_id == page_id, PageVersion.deleted_at.is_(None))
        .order_by(PageVersion.last_saved_at.desc(), PageVersion.created_at.desc(), PageVersion.id)
        .offset(MAX_VERSIONS)
    )
    session.execute(
        update(PageVersion)
        .where(PageVersion.id.in_(beyond.scalar_subquery()))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _copy_description(page: Page, version: PageVersion) -> None:
    version.description_json = page.description_json
    version.description_html = page.description_html
    version.description_binary = page.description_binary
    version.description_stripped = page.description_stripped
    version.sub_pages_data = {}


def _previous_page(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PermanentError(f"existing_instance is not a JSON string: {exc}") from None
    return value if isinstance(value, dict) else {}
