"""Source rows -> `ImportRow`, the one shape the writer knows: pure functions, no I/O.

Two sources:
- Our own export (services/exports): IssueExportSerializer rows, from its JSON (native values)
  or its CSV (Title Case headers, lists and dicts as JSON strings, None as "", booleans "True" /
  "False", and every string cell that began with a formula trigger prefixed with `'`: the prefix
  is taken off again, so an issue named `=SUM(1)` comes back under its own name; a cell that
  really began with `'=` comes back without its quote). The external id is the exported
  identifier (`PA-12`); parent and relations name other issues by it.
- GitHub's REST issues (`GET /repos/O/R/issues`): pull requests are skipped (the endpoint lists
  them too), the external id is GitHub's global issue id, title -> name, open -> the project's
  default state and closed -> its first completed state (cancelled when `state_reason` is
  not_planned), labels with their colours, assignee logins, created/updated/closed times. The
  body is Markdown: it is stored as escaped text, one <p> per blank-line-separated paragraph and
  <br> for single newlines, not rendered (no Markdown dependency, and nothing a body holds can
  become markup).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from services.exports.formats import FORMULA_TRIGGERS, prettify

PRIORITIES = ("urgent", "high", "medium", "low", "none")
# The export's columns (issue_rows._row), which a CSV's headers are mapped back to.
EXPORT_COLUMNS = (
    "project_name", "project_identifier", "parent", "identifier", "sequence_id", "name", "state_name",
    "priority", "assignees", "subscribers", "created_by_name", "start_date", "target_date",
    "completed_at", "created_at", "updated_at", "archived_at", "estimate", "labels", "cycles",
    "modules", "links", "relations", "comments", "is_draft",
)  # fmt: skip
_LIST_COLUMNS = ("assignees", "subscribers", "labels", "cycles", "modules", "links", "relations", "comments")
MAX_NAME = 255


class BadSource(ValueError):
    """The file or a row of it cannot be read as the format it claims (permanent)."""


@dataclass
class ImportRow:
    external_id: str
    name: str
    description_html: str = "<p></p>"
    state_name: str | None = None
    state_group: str | None = None  # used when no state has `state_name` (GitHub's open/closed)
    priority: str = "none"
    assignees: list[str] = field(default_factory=list)  # full names, display names, e-mails, logins
    subscribers: list[str] = field(default_factory=list)
    created_by: str | None = None
    start_date: date | None = None
    target_date: date | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    archived_at: date | None = None
    estimate: str | None = None
    labels: list[tuple[str, str | None]] = field(default_factory=list)  # (name, colour)
    cycles: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (url, title)
    comments: list[tuple[str, str, datetime | None]] = field(default_factory=list)  # (text, author, at)
    is_draft: bool = False
    parent: str | None = None  # external id of the parent
    relations: list[tuple[str, str]] = field(default_factory=list)  # (relation type, external id)


def priority(value: Any) -> str:
    text = str(value or "").strip().lower()
    return text if text in PRIORITIES else "none"


def parse_datetime(value: Any) -> datetime | None:
    """DRF's ISO 8601 ('Z' or an offset), the comments' 'YYYY-MM-DD HH:MM:SS' (UTC), or empty."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadSource(f"not a date-time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError as exc:
        raise BadSource(f"not a date: {value!r}") from exc


def text_html(text: str) -> str:
    """Plain or Markdown text as escaped HTML: paragraphs on blank lines, <br> on newlines."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if p.strip()]
    if not paragraphs:
        return "<p></p>"
    return "".join(f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def unneutralise(value: Any) -> Any:
    """Undo the export's formula guard (formats.neutralise) on a CSV cell."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in FORMULA_TRIGGERS:
        return value[1:]
    return value


def _strings(value: Any, column: str) -> list[Any]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise BadSource(f"{column} is not a list: {value!r:.80}")
    return value


def from_export(row: Mapping[str, Any]) -> ImportRow:
    """One IssueExportSerializer row (JSON values) -> ImportRow."""
    if not isinstance(row, Mapping):
        raise BadSource(f"a row is not an object: {row!r:.80}")
    identifier = str(row.get("identifier") or "").strip()
    name = str(row.get("name") or "").strip()
    if not identifier or not name:
        raise BadSource(f"a row has no identifier or no name: {dict(row)!r:.120}")
    comments = []
    for c in _strings(row.get("comments"), "comments"):
        if not isinstance(c, Mapping):
            raise BadSource(f"a comment is not an object: {c!r:.80}")
        comments.append(
            (str(c.get("comment") or ""), str(c.get("created_by") or ""), parse_datetime(c.get("created_at")))
        )
    links = []
    for link in _strings(row.get("links"), "links"):
        if not isinstance(link, Mapping) or not link.get("url"):
            raise BadSource(f"a link has no url: {link!r:.80}")
        links.append((str(link["url"]), str(link.get("title") or link["url"])))
    relations = []
    for r in _strings(row.get("relations"), "relations"):
        if not isinstance(r, Mapping) or not r.get("type") or not r.get("issue"):
            raise BadSource(f"a relation has no type or issue: {r!r:.80}")
        if r.get("direction", "outgoing") == "outgoing":  # an incoming one is the other's outgoing
            relations.append((str(r["type"]), str(r["issue"])))
    estimate = row.get("estimate")
    return ImportRow(
        external_id=identifier,
        name=name[:MAX_NAME],
        state_name=str(row.get("state_name") or "") or None,
        priority=priority(row.get("priority")),
        assignees=[str(a) for a in _strings(row.get("assignees"), "assignees") if a],
        subscribers=[str(s) for s in _strings(row.get("subscribers"), "subscribers") if s],
        created_by=str(row.get("created_by_name") or "") or None,
        start_date=parse_date(row.get("start_date")),
        target_date=parse_date(row.get("target_date")),
        completed_at=parse_datetime(row.get("completed_at")),
        created_at=parse_datetime(row.get("created_at")),
        updated_at=parse_datetime(row.get("updated_at")),
        archived_at=parse_date(row.get("archived_at")),
        estimate=None if estimate in (None, "") else str(estimate),
        labels=[(str(n), None) for n in _strings(row.get("labels"), "labels") if n],
        cycles=[str(n) for n in _strings(row.get("cycles"), "cycles") if n],
        modules=[str(n) for n in _strings(row.get("modules"), "modules") if n],
        links=links,
        comments=comments,
        is_draft=row.get("is_draft") in (True, "True", "true", "1", 1),
        parent=str(row.get("parent") or "") or None,
        relations=relations,
    )


def read_plane_json(body: bytes) -> list[ImportRow]:
    try:
        rows = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSource(f"not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise BadSource("not a JSON list of issues (our export writes one)")
    return [from_export(row) for row in rows]


def read_plane_csv(body: bytes) -> list[ImportRow]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadSource(f"not UTF-8: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    known = {prettify(column): column for column in EXPORT_COLUMNS}
    columns = [known.get(h.strip()) for h in header]
    if "identifier" not in columns or "name" not in columns:
        raise BadSource(f"CSV header has no Identifier or Name column: {header[:6]!r}")
    return [from_export(_csv_row(columns, cells, n)) for n, cells in enumerate(reader, start=2) if cells]


def _csv_row(columns: Sequence[str | None], cells: Sequence[str], line: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, cell in zip(columns, cells, strict=False):
        if column is None:
            continue
        value = unneutralise(cell)
        if column in _LIST_COLUMNS and value:
            try:
                value = json.loads(value)
            except ValueError:
                raise BadSource(f"CSV line {line}: {column} is not a JSON list") from None
        row[column] = value
    return row


def oldest_first(rows: list[ImportRow]) -> list[ImportRow]:
    """The export writes newest first; numbering oldest first keeps the source's order."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r.created_at or epoch, r.external_id))


def from_github(issue: Mapping[str, Any]) -> ImportRow | None:
    """One GitHub issue -> ImportRow; None for a pull request."""
    if issue.get("pull_request") is not None:
        return None
    if not isinstance(issue.get("id"), int) or not isinstance(issue.get("title"), str):
        raise BadSource(f"a GitHub issue without id or title: {str(issue)[:80]}")
    closed = issue.get("state") == "closed"
    group = ("cancelled" if issue.get("state_reason") == "not_planned" else "completed") if closed else None
    labels = []
    for label in issue.get("labels") or ():
        if isinstance(label, Mapping) and label.get("name"):
            color = label.get("color")
            labels.append((str(label["name"]), f"#{color}" if color else None))
        elif isinstance(label, str):
            labels.append((label, None))
    assignees = [
        a["login"] for a in issue.get("assignees") or () if isinstance(a, Mapping) and a.get("login")
    ]
    user = issue.get("user") if isinstance(issue.get("user"), Mapping) else {}
    return ImportRow(
        external_id=str(issue["id"]),
        name=(issue["title"].strip() or f"#{issue.get('number')}")[:MAX_NAME],
        description_html=text_html(str(issue.get("body") or "")),
        state_group=group,
        assignees=assignees,
        created_by=user.get("login"),
        created_at=parse_datetime(issue.get("created_at")),
        updated_at=parse_datetime(issue.get("updated_at")),
        completed_at=parse_datetime(issue.get("closed_at")) if closed else None,
        labels=labels,
        links=[(str(issue["html_url"]), f"GitHub #{issue.get('number')}")] if issue.get("html_url") else [],
    )


def github_rows(issues: Any) -> Iterator[ImportRow]:
    if not isinstance(issues, list):
        raise BadSource("GitHub's issues answer is not a list")
    for issue in issues:
        if not isinstance(issue, Mapping):
            raise BadSource("a GitHub issue is not an object")
        row = from_github(issue)
        if row is not None:
            yield row
