"""Snapshot an issue's description after it changed, coalescing one user's edits for 10 minutes.

Plane's semantics (bgtasks/issue_description_version_task.py): if the description did not change
and the issue is not being created, nothing happens; otherwise the newest version is amended when
the same user saved it at most 600 s ago, else a new version row is written. The content always
comes from the live issue. Differences: a missing issue is retried and finally dead-lettered
instead of being logged and dropped, and created_by/updated_by are never nulled.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared.db.plane import Issue, IssueDescriptionVersion
from shared.events import Event
from shared.kafka.handler import HandlerContext, PermanentError

COALESCE_WINDOW = timedelta(seconds=600)


class IssueNotFound(LookupError):
    """Retried: the API may publish before its own transaction is visible."""


def handle(event: Event, ctx: HandlerContext) -> None:
    session = ctx.session
    assert session is not None, "registered with idempotency='transaction'"
    data = event.data
    previous = _previous_issue(data.get("updated_issue"))

    issue = session.scalar(
        select(Issue).where(Issue.id == uuid.UUID(data["issue_id"]), Issue.deleted_at.is_(None))
    )
    if issue is None:
        raise IssueNotFound(f"issue {data['issue_id']} does not exist or is deleted")
    if previous.get("description_html") == issue.description_html and not data.get("is_creating"):
        return

    now = datetime.now(UTC)
    user_id = uuid.UUID(data["user_id"])
    latest = session.scalar(
        select(IssueDescriptionVersion)
        .where(
            IssueDescriptionVersion.issue_id == issue.id,
            IssueDescriptionVersion.deleted_at.is_(None),
        )
        .order_by(IssueDescriptionVersion.last_saved_at.desc())
        .limit(1)
        .with_for_update()
    )
    if latest is not None and latest.owned_by_id == user_id and now - latest.last_saved_at <= COALESCE_WINDOW:
        _copy_description(issue, latest)
        latest.last_saved_at = now
        latest.updated_at = now
        return
    version = IssueDescriptionVersion.new(
        now=now,
        issue_id=issue.id,
        workspace_id=issue.workspace_id,
        project_id=issue.project_id,
        created_by_id=issue.created_by_id,
        updated_by_id=issue.updated_by_id,
        owned_by_id=user_id,
        last_saved_at=now,
    )
    _copy_description(issue, version)
    session.add(version)


def _copy_description(issue: Issue, version: IssueDescriptionVersion) -> None:
    version.description_json = issue.description_json
    version.description_html = issue.description_html
    version.description_binary = issue.description_binary
    version.description_stripped = issue.description_stripped


def _previous_issue(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PermanentError(f"updated_issue is not a JSON string: {exc}") from None
    return value if isinstance(value, dict) else {}
