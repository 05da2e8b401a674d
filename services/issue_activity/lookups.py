"""The names and ids the translators read from Plane's tables, fetched in batches.

A translator never queries: it asks a `Lookups` for a key. While `Lookups.recording` is on, a key
not yet loaded is noted and answered as absent; `prefetch` runs the translators that way, loads
every noted key with one query per kind, and repeats until nothing is missing (dependent lookups,
such as the parent's project, take a second round). After that a translation is pure. A key
asked for outside recording that was never loaded is a bug in the caller: `LookupNotLoaded`.

Each query reproduces the Django manager Plane's task uses: `objects` skips soft-deleted rows,
`State.objects` also skips triage states, related objects (`issue.project`, `point.estimate`)
come through the base manager and are found even when soft-deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, text

from services.issue_activity.result import ActivityResult


class Kind(StrEnum):
    PROJECT = "project"  # project_id -> ProjectRef (live)
    ISSUE = "issue"  # issue_id -> IssueRef (any row, `deleted` says whether soft-deleted)
    STATE = "state"  # (state_id, project_id) -> NamedRef (live, not triage)
    LABEL = "label"  # label_id -> NamedRef (live)
    USER = "user"  # user_id -> NamedRef (display_name)
    CYCLE = "cycle"  # cycle_id -> NamedRef (live)
    MODULE = "module"  # module_id -> NamedRef (live)
    ESTIMATE_POINT = "estimate_point"  # point_id -> EstimatePointRef (live point)
    LATEST_ACTIVITY = "latest_activity"  # issue_id -> LatestActivity (live)
    ISSUE_REACTION = "issue_reaction"  # (issue_id, project_id, actor_id, reaction) -> reaction id
    COMMENT_REACTION = "comment_reaction"  # (project_id, actor_id, reaction) -> CommentReactionRef
    COMMENT = "comment"  # comment_id -> CommentRef (any row)


@dataclass(frozen=True, slots=True)
class ProjectRef:
    id: uuid.UUID
    workspace_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class IssueRef:
    id: uuid.UUID
    project_id: uuid.UUID
    project_identifier: str
    sequence_id: int
    created_at: datetime
    created_by_id: uuid.UUID | None
    deleted: bool

    @property
    def key(self) -> str:
        """How Plane names an issue in activity values: `{project identifier}-{sequence id}`."""
        return f"{self.project_identifier}-{self.sequence_id}"


@dataclass(frozen=True, slots=True)
class NamedRef:
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class EstimatePointRef:
    id: uuid.UUID
    value: str
    estimate_type: str


@dataclass(frozen=True, slots=True)
class LatestActivity:
    id: uuid.UUID
    field: str | None
    actor_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CommentReactionRef:
    id: uuid.UUID
    comment_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CommentRef:
    id: uuid.UUID
    issue_id: uuid.UUID
    project_id: uuid.UUID
    deleted: bool


class LookupNotLoaded(LookupError):
    """A translation asked for a key nobody loaded: run `prefetch` (or record first)."""


@dataclass
class Lookups:
    """Loaded answers per kind; `None` means "looked up, not there"."""

    found: dict[Kind, dict[Hashable, Any]] = field(default_factory=lambda: {k: {} for k in Kind})
    recording: bool = False
    missing: dict[Kind, set[Hashable]] = field(default_factory=lambda: {k: set() for k in Kind})

    def get(self, kind: Kind, key: Hashable) -> Any:
        answers = self.found[kind]
        if key in answers:
            return answers[key]
        if not self.recording:
            raise LookupNotLoaded(f"{kind}: {key!r} was not prefetched")
        self.missing[kind].add(key)
        return None

    def put(self, kind: Kind, key: Hashable, value: Any) -> None:
        self.found[kind][key] = value

    def take_missing(self) -> dict[Kind, set[Hashable]]:
        taken = {k: v for k, v in self.missing.items() if v}
        self.missing = {k: set() for k in Kind}
        return taken

    def note(self, result: ActivityResult) -> None:
        """Advance the latest activity per issue past what `result` writes.

        Within a batch, the next event for the same issue must see this event's rows the way
        Plane's next task would see them in the table (description coalescing depends on it).
        """
        latest = self.found[Kind.LATEST_ACTIVITY]
        for row in result.rows:
            if row.issue_id is None:
                continue
            before = latest.get(row.issue_id)
            if before is None or row.created_at >= before.created_at:
                latest[row.issue_id] = LatestActivity(row.id, row.field, row.actor_id, row.created_at)
        for bump in result.description_bumps:
            before = latest.get(bump.issue_id)
            if before is not None and before.id == bump.activity_id:
                latest[bump.issue_id] = LatestActivity(
                    before.id, before.field, before.actor_id, bump.created_at
                )


# One statement per kind; keys arrive as parallel arrays and come back with the answer.
_QUERIES: dict[Kind, str] = {
    Kind.PROJECT: """
        SELECT k.id, p.id, p.workspace_id FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN projects p ON p.id = k.id AND p.deleted_at IS NULL""",
    Kind.ISSUE: """
        SELECT k.id, i.id, i.project_id, p.identifier, i.sequence_id, i.created_at, i.created_by_id,
               i.deleted_at IS NOT NULL
        FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN issues i ON i.id = k.id JOIN projects p ON p.id = i.project_id""",
    Kind.STATE: """
        SELECT k.id, k.project_id, s.id, s.name
        FROM unnest(CAST(:a AS uuid[]), CAST(:b AS uuid[])) AS k(id, project_id)
        JOIN states s ON s.id = k.id AND s.project_id = k.project_id
         AND s.deleted_at IS NULL AND s."group" <> 'triage'""",
    Kind.LABEL: """
        SELECT k.id, l.id, l.name FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN labels l ON l.id = k.id AND l.deleted_at IS NULL""",
    Kind.USER: """
        SELECT k.id, u.id, u.display_name FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN users u ON u.id = k.id""",
    Kind.CYCLE: """
        SELECT k.id, c.id, c.name FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN cycles c ON c.id = k.id AND c.deleted_at IS NULL""",
    Kind.MODULE: """
        SELECT k.id, m.id, m.name FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN modules m ON m.id = k.id AND m.deleted_at IS NULL""",
    Kind.ESTIMATE_POINT: """
        SELECT k.id, ep.id, ep.value, e.type FROM unnest(CAST(:a AS uuid[])) AS k(id)
        JOIN estimate_points ep ON ep.id = k.id AND ep.deleted_at IS NULL
        JOIN estimates e ON e.id = ep.estimate_id""",
    Kind.LATEST_ACTIVITY: """
        SELECT k.id, a.id, a.field, a.actor_id, a.created_at FROM unnest(CAST(:a AS uuid[])) AS k(id)
        CROSS JOIN LATERAL (
            SELECT id, field, actor_id, created_at FROM issue_activities
            WHERE issue_id = k.id AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1
        ) a""",
    Kind.ISSUE_REACTION: """
        SELECT k.issue_id, k.project_id, k.actor_id, k.reaction, r.id
        FROM unnest(CAST(:a AS uuid[]), CAST(:b AS uuid[]), CAST(:c AS uuid[]), CAST(:d AS text[]))
             AS k(issue_id, project_id, actor_id, reaction)
        CROSS JOIN LATERAL (
            SELECT id FROM issue_reactions
            WHERE issue_id = k.issue_id AND project_id = k.project_id AND actor_id = k.actor_id
              AND reaction = k.reaction AND deleted_at IS NULL
            ORDER BY created_at DESC LIMIT 1
        ) r""",
    Kind.COMMENT_REACTION: """
        SELECT k.project_id, k.actor_id, k.reaction, r.id, r.comment_id
        FROM unnest(CAST(:a AS uuid[]), CAST(:b AS uuid[]), CAST(:c AS text[]))
             AS k(project_id, actor_id, reaction)
        CROSS JOIN LATERAL (
            SELECT id, comment_id FROM comment_reactions
            WHERE project_id = k.project_id AND actor_id = k.actor_id AND reaction = k.reaction
              AND deleted_at IS NULL
            ORDER BY created_at DESC LIMIT 1
        ) r""",
    Kind.COMMENT: """
        SELECT k.id, c.id, c.issue_id, c.project_id, c.deleted_at IS NOT NULL
        FROM unnest(CAST(:a AS uuid[])) AS k(id) JOIN issue_comments c ON c.id = k.id""",
}

# Column kinds per lookup: the key's, then the answer's ("u" uuid, "-" as the driver returns it).
# psycopg2 neither sends nor returns uuid.UUID by itself, so uuids travel as text.
_SHAPES: dict[Kind, tuple[str, str]] = {
    Kind.PROJECT: ("u", "uu"),
    Kind.ISSUE: ("u", "uu---u-"),
    Kind.STATE: ("uu", "u-"),
    Kind.LABEL: ("u", "u-"),
    Kind.USER: ("u", "u-"),
    Kind.CYCLE: ("u", "u-"),
    Kind.MODULE: ("u", "u-"),
    Kind.ESTIMATE_POINT: ("u", "u--"),
    Kind.LATEST_ACTIVITY: ("u", "u-u-"),
    Kind.ISSUE_REACTION: ("uuu-", "u"),
    Kind.COMMENT_REACTION: ("uu-", "uu"),
    Kind.COMMENT: ("u", "uuu-"),
}


def _convert(shape: str, values: Any) -> tuple[Any, ...]:
    return tuple(
        uuid.UUID(str(v)) if s == "u" and v is not None else v for s, v in zip(shape, values, strict=True)
    )


def _build(kind: Kind, values: tuple[Any, ...]) -> Any:
    match kind:
        case Kind.PROJECT:
            return ProjectRef(*values)
        case Kind.ISSUE:
            return IssueRef(*values)
        case Kind.ESTIMATE_POINT:
            return EstimatePointRef(*values)
        case Kind.LATEST_ACTIVITY:
            return LatestActivity(*values)
        case Kind.ISSUE_REACTION:
            return values[0]
        case Kind.COMMENT_REACTION:
            return CommentReactionRef(*values)
        case Kind.COMMENT:
            return CommentRef(*values)
        case _:
            return NamedRef(*values)


def load(conn: Connection, lookups: Lookups, wanted: dict[Kind, set[Hashable]]) -> None:
    """Answer every key in `wanted` (absent ones as None), one query per kind."""
    for kind, keys in wanted.items():
        if not keys:
            continue
        key_shape, answer_shape = _SHAPES[kind]
        width = len(key_shape)
        ordered = sorted(keys, key=str)
        rows = [(k,) if width == 1 else k for k in ordered]
        params = {
            name: [None if r[i] is None else str(r[i]) for r in rows]  # type: ignore[index]
            for i, name in enumerate("abcd"[:width])
        }
        for key in ordered:
            lookups.put(kind, key, None)
        for record in conn.execute(text(_QUERIES[kind]), params):
            key_values = _convert(key_shape, record[:width])
            key = key_values[0] if width == 1 else key_values
            lookups.put(kind, key, _build(kind, _convert(answer_shape, record[width:])))


MAX_ROUNDS = 6


def prefetch(
    conn: Connection, translate_all: Callable[[Lookups], object], lookups: Lookups | None = None
) -> Lookups:
    """Load everything `translate_all(lookups)` asks for, in as few queries as rounds need."""
    lookups = lookups or Lookups()
    for _ in range(MAX_ROUNDS):
        lookups.recording = True
        try:
            translate_all(lookups)
        finally:
            lookups.recording = False
        wanted = lookups.take_missing()
        if not wanted:
            return lookups
        load(conn, lookups, wanted)
    raise RuntimeError(f"lookups still missing after {MAX_ROUNDS} rounds")


def preload(lookups: Lookups, kind: Kind, answers: Iterable[tuple[Hashable, Any]]) -> None:
    """Seed answers without a database (unit tests, or a caller that knows them already)."""
    for key, value in answers:
        lookups.put(kind, key, value)
