"""The importer's pure mapping: export rows (JSON and CSV), GitHub issues, rate limits, Link."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from urllib3 import HTTPHeaderDict

from services.exports.formats import CsvWriter
from services.imports.github import GitHubIssues, GitHubRefused, next_url, rate_limit_wait
from services.imports.mapping import (
    BadSource,
    from_export,
    from_github,
    oldest_first,
    priority,
    read_plane_csv,
    read_plane_json,
    text_html,
    unneutralise,
)
from shared.http.client import SafeResponse
from shared.settings import Settings

ROW = {
    "project_name": "A", "project_identifier": "PA", "parent": "PA-1", "identifier": "PA-2", "sequence_id": 2,
    "name": "=SUM(1)", "state_name": "Todo", "priority": "HIGH", "assignees": ["Ada L"], "subscribers": [],
    "created_by_name": "Ada L", "start_date": "2024-01-02", "target_date": None, "completed_at": None,
    "created_at": "2024-01-01T00:00:02Z", "updated_at": "2024-01-01T00:00:03.5Z", "archived_at": None,
    "estimate": "", "labels": ["bug"], "cycles": [], "modules": ["m"],
    "links": [{"url": "https://e.x/1", "title": "One"}],
    "relations": [{"type": "blocked_by", "issue": "PA-3", "direction": "outgoing"},
                  {"type": "blocked_by", "issue": "PA-1", "direction": "incoming"}],
    "comments": [{"comment": "@SUM(2)", "created_by": "Ada L", "created_at": "2024-01-01 00:00:09"}],
    "is_draft": False,
}  # fmt: skip


def test_an_export_row_maps_every_column() -> None:
    row = from_export(ROW)
    assert (row.external_id, row.name, row.priority, row.parent) == ("PA-2", "=SUM(1)", "high", "PA-1")
    assert row.start_date == date(2024, 1, 2) and row.estimate is None
    assert row.updated_at == datetime(2024, 1, 1, 0, 0, 3, 500000, tzinfo=UTC)
    assert row.relations == [("blocked_by", "PA-3")]  # the incoming one is PA-1's outgoing
    assert row.comments == [("@SUM(2)", "Ada L", datetime(2024, 1, 1, 0, 0, 9, tzinfo=UTC))]
    assert row.labels == [("bug", None)] and row.links == [("https://e.x/1", "One")]


def test_csv_reads_back_what_the_export_writes_formula_guard_included() -> None:
    out = io.BytesIO()
    writer = CsvWriter(out)
    writer.write(ROW)
    writer.close()
    assert b"'=SUM(1)" in out.getvalue()  # the export's guard
    (row,) = read_plane_csv(out.getvalue())
    assert row == from_export(ROW)


def test_bad_files_are_one_clear_error() -> None:
    with pytest.raises(BadSource, match="not JSON"):
        read_plane_json(b"{")
    with pytest.raises(BadSource, match="list"):
        read_plane_json(b'{"a": 1}')
    with pytest.raises(BadSource, match="no identifier"):
        read_plane_json(b'[{"name": "x"}]')
    with pytest.raises(BadSource, match="not a date"):
        from_export({**ROW, "start_date": "soon"})
    with pytest.raises(BadSource, match="Identifier"):
        read_plane_csv(b"Title,Body\nx,y\n")
    with pytest.raises(BadSource, match="line 2: labels"):
        read_plane_csv(b"Identifier,Name,Labels\nPA-1,x,[oops\n")


def test_small_rules() -> None:
    assert [priority(p) for p in ("Urgent", "none", "", "blocker")] == ["urgent", "none", "none", "none"]
    assert unneutralise("'=x") == "=x" and unneutralise("'plain") == "'plain" and unneutralise("'") == "'"
    assert text_html("a <script>\nb\n\n\nc") == "<p>a &lt;script&gt;<br>b</p><p>c</p>"
    assert text_html("  ") == "<p></p>"
    rows = [
        from_export({**ROW, "identifier": f"PA-{n}", "created_at": f"2024-01-0{n}T00:00:00Z"})
        for n in (3, 1, 2)
    ]
    assert [r.external_id for r in oldest_first(rows)] == ["PA-1", "PA-2", "PA-3"]


def test_github_issues_map_and_pull_requests_are_skipped() -> None:
    issue = {
        "id": 7, "number": 3, "title": " T ", "body": None, "state": "closed", "state_reason": "not_planned",
        "labels": [{"name": "bug", "color": "ff0000"}, "plain"], "assignees": [{"login": "ada"}],
        "created_at": "2024-01-01T00:00:00Z", "closed_at": "2024-01-02T00:00:00Z", "html_url": "https://g/3",
    }  # fmt: skip
    row = from_github(issue)
    assert row is not None
    assert (row.external_id, row.name, row.state_group, row.description_html) == (
        "7",
        "T",
        "cancelled",
        "<p></p>",
    )
    assert row.labels == [("bug", "#ff0000"), ("plain", None)] and row.assignees == ["ada"]
    assert from_github({**issue, "pull_request": {}}) is None
    assert from_github({**issue, "state": "open"}).state_group is None  # type: ignore[union-attr]


def response(status: int, **headers: str) -> SafeResponse:
    return SafeResponse(status, HTTPHeaderDict(headers), b"", False, 0.0, "http://x", "127.0.0.1")


def test_rate_limits_and_links() -> None:
    assert rate_limit_wait(response(200)) is None
    assert rate_limit_wait(response(403)) is None  # a plain 403 is no rate limit
    assert rate_limit_wait(response(429, **{"Retry-After": "7"})) == 7.0
    spent = response(403, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000"})
    assert rate_limit_wait(spent, now=990.0) == 11.0
    link = '<https://api.github.com/repos/o/r/issues?page=2>; rel="next", <https://x?page=9>; rel="last"'
    assert next_url(link) == "https://api.github.com/repos/o/r/issues?page=2"
    assert next_url('<https://x?page=1>; rel="prev"') is None and next_url(None) is None


def test_next_urls_stay_on_the_repository() -> None:
    settings = Settings.from_env({})
    gh = GitHubIssues(settings, None, "o/r")  # type: ignore[arg-type]
    assert gh.allowed(gh.first_url()) and gh.allowed("https://api.github.com/repos/o/r/issues?after=x")
    assert not gh.allowed("https://evil.example/repos/o/r/issues")
    assert not gh.allowed("https://api.github.com/repos/o/other/issues")
    with pytest.raises(GitHubRefused):
        GitHubIssues(settings, None, "not a repo")  # type: ignore[arg-type]
