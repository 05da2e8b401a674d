"""One import call: read the source from where its cursor says, write batches until done or the
deadline, and say where the next call goes on (the consumer's continuation, the CLI's loop).

The cursor is plain JSON in the event: for a file `{"phase": "issues" | "relations", "start": n}`
(rows are numbered oldest first, so every call sees the same order), for GitHub
`{"next_url": ...}` (checked against the repository's issues path before it is fetched).
Whatever a cursor says, idempotency does not depend on it: every batch skips the external ids
that exist, so a replay from an older cursor only costs time.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from services.imports import mapping, writer
from services.imports.github import GitHubIssues, RateLimited
from shared.http.client import SafeHttpClient
from shared.settings import Settings

KINDS = ("plane_json", "plane_csv", "github")
SOURCES = {"plane_json": "plane-export", "plane_csv": "plane-export", "github": "github"}
READERS: dict[str, Callable[[bytes], list[mapping.ImportRow]]] = {
    "plane_json": mapping.read_plane_json,
    "plane_csv": mapping.read_plane_csv,
}


@dataclass
class Outcome:
    status: str  # "done" or "paused"
    cursor: dict[str, Any] | None = None
    counts: Counter = field(default_factory=Counter)
    rate_limited: bool = False


def external_source(data: Mapping[str, Any]) -> str:
    return str(data.get("external_source") or SOURCES[data["kind"]])[:255]


def run(
    engine: Engine,
    settings: Settings,
    data: Mapping[str, Any],
    *,
    body: bytes | None = None,
    client: SafeHttpClient | None = None,
    deadline: float | None = None,
) -> Outcome:
    """Import from `data["cursor"]` on; `body` is the file (plane_json, plane_csv), `client` the
    HTTP client (github). `deadline` (time.monotonic()) bounds the call, None: until done."""
    project = writer.load_project(engine, uuid.UUID(data["project_id"]), uuid.UUID(data["actor_id"]))
    if str(project.workspace_id) != str(data["workspace_id"]):
        raise writer.ProjectNotFound(f"project {project.id} is not in workspace {data['workspace_id']}")
    cursor = dict(data.get("cursor") or {})
    source = external_source(data)
    if data["kind"] == "github":
        assert client is not None
        return _github(engine, settings, data, project, source, cursor, client, deadline)
    assert body is not None
    return _file(engine, settings, READERS[data["kind"]](body), project, source, cursor, deadline)


def _over(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _file(  # type: ignore[no-untyped-def]
    engine: Engine, settings: Settings, rows, project, source: str, cursor: dict, deadline: float | None
) -> Outcome:
    rows = mapping.oldest_first(rows)
    outcome = Outcome("done")
    size = settings.import_batch_size
    phase, start = cursor.get("phase", "issues"), int(cursor.get("start", 0))
    phases = ("issues", "relations")
    worked = False  # every call does one batch at least, whatever its deadline: no empty loop
    for current in phases[phases.index(phase) :] if phase in phases else phases:
        step = writer.create_batch if current == "issues" else writer.relate
        for at in range(start, len(rows), size):
            if worked and _over(deadline):
                return Outcome("paused", {"phase": current, "start": at}, outcome.counts)
            step(engine, project, source, rows[at : at + size], outcome.counts)
            worked = True
        start = 0
    return outcome


def _github(  # type: ignore[no-untyped-def]
    engine: Engine, settings: Settings, data, project, source: str, cursor: dict, client, deadline
) -> Outcome:
    issues = GitHubIssues(settings, client, str(data.get("repository") or ""))
    url: str | None = cursor.get("next_url") or issues.first_url()
    outcome = Outcome("done")
    started = url
    while url is not None:
        if url != started and _over(deadline):
            return Outcome("paused", {"next_url": url}, outcome.counts)
        left = 30.0 if deadline is None else max(1.0, min(30.0, deadline - time.monotonic()))
        try:
            page = issues.page(url, deadline_s=left, max_wait_s=None if deadline is None else left)
        except RateLimited:
            if url == started:
                raise  # nothing done in this call: the retry tiers wait for the reset
            # Keep what this call read: the next call starts at the page that was refused.
            return Outcome("paused", {"next_url": url}, outcome.counts, rate_limited=True)
        rows = list(mapping.github_rows(page.issues))
        outcome.counts["pages"] += 1
        outcome.counts["pull_requests_skipped"] += len(page.issues) - len(rows)
        size = settings.import_batch_size
        for at in range(0, len(rows), size):
            writer.create_batch(engine, project, source, rows[at : at + size], outcome.counts)
        url = page.next_url
    return outcome
