"""ImportRows into one Plane project: issues numbered as Issue.save() numbers them, idempotent by
(project, external_source, external_id), an activity row per created issue.

Each batch is one transaction under Plane's per-project advisory lock (shared/db/issue_numbers.py),
which is also what makes the idempotency check safe: the check for existing external ids and the
inserts run under the lock, so two imports of the same file into the same project (a redelivery
racing the original) cannot both create an issue. An issue with the external id counts as existing
even when soft-deleted: a re-run does not bring back what a user deleted. Batches are short
(IMPORT_BATCH_SIZE issues) because the lock also holds up Plane's API creating issues there.

Mapping in the project (names compared without case and surrounding space):
- state by name; else the first state of `state_group` (GitHub's closed); else the project's
  default state, as Issue.save() picks it (non-triage, `default`, else the first).
- labels, cycles and modules by name; missing ones are created in the project (labels grey or in
  GitHub's colour; cycles as drafts without dates; modules in backlog).
- assignees, subscribers, the creator and comment authors among the project's active members by
  e-mail, display name, full name or user name; one that matches nobody, or more than one
  member, is dropped and counted (the creator and authors fall back to the actor).
- estimate by the value of a point of the project's estimate; else dropped and counted.
- created_at / updated_at kept from the source (a migration keeps its history); completed_at
  kept for a completed state (Plane's rule otherwise: now), none for the others.
- parent and relations in a second pass over the rows (relate()), once every issue exists,
  between issues of this import only.

The activity row is Plane's create_issue_activity's: verb "created", no field, comment "created
the issue", actor and created_at those of the issue.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from services.imports.mapping import ImportRow, text_html
from services.workspace_seed.rows import insert
from shared.db.issue_numbers import Numbering, lock_project, numbering

LABEL_COLOR = "#858e96"
DEFAULT_SORT = 65535.0
STEP = 10000


class ProjectNotFound(LookupError):
    """The project (or the actor) does not exist, is deleted or archived (permanent)."""


def _key(value: str | None) -> str:
    return (value or "").strip().lower()


@dataclass
class Project:
    id: uuid.UUID
    workspace_id: uuid.UUID
    identifier: str
    actor_id: uuid.UUID
    states: dict[str, tuple[uuid.UUID, str]] = field(default_factory=dict)  # name -> (id, group)
    groups: dict[str, uuid.UUID] = field(default_factory=dict)  # group -> first state
    default_state: uuid.UUID | None = None
    labels: dict[str, uuid.UUID] = field(default_factory=dict)
    cycles: dict[str, uuid.UUID] = field(default_factory=dict)
    modules: dict[str, uuid.UUID] = field(default_factory=dict)
    points: dict[str, uuid.UUID] = field(default_factory=dict)
    people: dict[str, set[uuid.UUID]] = field(default_factory=dict)  # any name -> member ids

    def member(self, name: str | None) -> uuid.UUID | None:
        found = self.people.get(_key(name)) or set()
        return next(iter(found)) if len(found) == 1 else None

    def state(self, row: ImportRow) -> tuple[uuid.UUID | None, str | None]:
        named = self.states.get(_key(row.state_name))
        if named is not None:
            return named
        if row.state_group and row.state_group in self.groups:
            return self.groups[row.state_group], row.state_group
        if self.default_state is None:
            return None, None
        return self.default_state, next(g for s, g in self.states.values() if s == self.default_state)


def load_project(engine: Engine, project_id: uuid.UUID, actor_id: uuid.UUID) -> Project:
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT workspace_id, identifier, estimate_id FROM projects"
                " WHERE id = :p AND deleted_at IS NULL AND archived_at IS NULL"
            ),
            {"p": project_id},
        ).one_or_none()
        if found is None:
            raise ProjectNotFound(f"project {project_id} does not exist, is deleted or archived")
        if conn.scalar(text("SELECT 1 FROM users WHERE id = :u"), {"u": actor_id}) is None:
            raise ProjectNotFound(f"actor {actor_id} is not a user")
        project = Project(project_id, found.workspace_id, found.identifier, actor_id)
        live = "project_id = :p AND deleted_at IS NULL"
        rows = conn.execute(
            text(
                f'SELECT id, name, "group", "default" FROM states WHERE {live} AND NOT is_triage'
                " ORDER BY sequence, created_at, id"
            ),
            {"p": project_id},
        ).all()
        for state in rows:
            project.states.setdefault(_key(state.name), (state.id, state.group))
            project.groups.setdefault(state.group, state.id)
        defaults = [s.id for s in rows if s.default]
        project.default_state = defaults[0] if defaults else (rows[0].id if rows else None)
        for table, into in (
            ("labels", project.labels),
            ("cycles", project.cycles),
            ("modules", project.modules),
        ):
            for row in conn.execute(
                text(f"SELECT id, name FROM {table} WHERE {live} ORDER BY created_at"), {"p": project_id}
            ):
                into.setdefault(_key(row.name), row.id)
        if found.estimate_id is not None:
            points = conn.execute(
                text("SELECT id, value FROM estimate_points WHERE estimate_id = :e AND deleted_at IS NULL"),
                {"e": found.estimate_id},
            )
            for point in points:
                project.points.setdefault(_key(point.value), point.id)
        members = conn.execute(
            text(
                "SELECT u.id, u.email, u.display_name, u.first_name, u.last_name, u.username"
                " FROM project_members m JOIN users u ON u.id = m.member_id"
                " WHERE m.project_id = :p AND m.is_active AND m.deleted_at IS NULL AND u.is_active"
            ),
            {"p": project_id},
        )
        for m in members:
            full = f"{m.first_name or ''} {m.last_name or ''}".strip()
            for name in {_key(m.email), _key(m.display_name), _key(full), _key(m.username)} - {""}:
                project.people.setdefault(name, set()).add(m.id)
    return project


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def strip_tags(html: str) -> str | None:
    """Issue.save()'s description_stripped: None for an empty description."""
    if not html:
        return None
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def existing(
    session: Session, project: Project, source: str, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    """external id -> issue id of the issues this import (or an earlier one) created."""
    rows = session.execute(
        text(
            "SELECT external_id, id FROM issues WHERE project_id = :p AND external_source = :s"
            " AND external_id = ANY(:ids) ORDER BY created_at"
        ),
        {"p": project.id, "s": source, "ids": list(external_ids)},
    )
    found: dict[str, uuid.UUID] = {}
    for external_id, issue_id in rows:
        found.setdefault(external_id, issue_id)
    return found


def create_batch(
    engine: Engine, project: Project, source: str, rows: Sequence[ImportRow], counts: Counter
) -> None:
    """Create the rows' issues that do not exist yet, in one transaction under the project's lock."""
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        numbers = numbering(session, project.id)
        done = existing(session, project, source, [r.external_id for r in rows])
        for row in rows:
            if row.external_id in done:
                counts["existing"] += 1
                continue
            done[row.external_id] = _issue(session, project, source, row, numbers, now, counts)
            counts["created"] += 1


def _named(
    session: Session, project: Project, table: str, name: str, now: datetime, counts: Counter, **extra
) -> uuid.UUID:  # type: ignore[no-untyped-def]
    cache = {"labels": project.labels, "cycles": project.cycles, "modules": project.modules}[table]
    found = cache.get(_key(name))
    if found is not None:
        return found
    order = session.scalar(
        text(f"SELECT max(sort_order) FROM {table} WHERE project_id = :p"), {"p": project.id}
    )
    # Label.save() puts a new label last (+10000); Cycle.save() and Module.save() put it first.
    step = STEP if table == "labels" else -STEP
    sort = DEFAULT_SORT if order is None else order + step
    by = {"workspace_id": project.workspace_id, "project_id": project.id, "created_by_id": project.actor_id}
    new = insert(session, table, now, **by, name=name.strip()[:255], sort_order=sort, **extra)
    cache[_key(name)] = new
    counts[f"{table}_created"] += 1
    return new


def _issue(  # type: ignore[no-untyped-def]
    session: Session, project: Project, source: str, row: ImportRow, numbers: Numbering, now: datetime, counts
) -> uuid.UUID:
    state, group = project.state(row)
    creator = project.member(row.created_by) if row.created_by else None
    creator = creator or project.actor_id
    created = row.created_at or now
    sequence, sort_order = numbers.take(session, project.id, state, DEFAULT_SORT)
    estimate = project.points.get(_key(row.estimate)) if row.estimate else None
    if row.estimate and estimate is None:
        counts["estimates_dropped"] += 1
    by = {"workspace_id": project.workspace_id, "project_id": project.id, "created_by_id": creator}
    stamps = {"created_at": created, "updated_at": row.updated_at or created}
    issue = insert(
        session,
        "issues",
        now,
        **by,
        **stamps,
        updated_by_id=creator,
        state_id=state,
        name=row.name,
        priority=row.priority,
        description_html=row.description_html,
        description_json={},
        description_stripped=strip_tags(row.description_html),
        sequence_id=sequence,
        sort_order=sort_order,
        start_date=row.start_date,
        target_date=row.target_date,
        completed_at=(row.completed_at or now) if group == "completed" else None,
        archived_at=row.archived_at,
        is_draft=row.is_draft,
        estimate_point_id=estimate,
        external_source=source,
        external_id=row.external_id,
    )
    link = {**by, "issue_id": issue}
    insert(session, "issue_sequences", now, **link, sequence=sequence, deleted=False)
    insert(
        session,
        "issue_activities",
        now,
        created_at=created,
        updated_at=created,
        issue_id=issue,
        project_id=project.id,
        workspace_id=project.workspace_id,
        actor_id=creator,
        verb="created",
        field=None,
        comment="created the issue",
        epoch=time.time(),
    )
    for table, column, names, kind in (
        ("issue_assignees", "assignee_id", row.assignees, "assignees"),
        ("issue_subscribers", "subscriber_id", row.subscribers, "subscribers"),
    ):
        for user in dict.fromkeys(project.member(n) for n in names):
            if user is not None:
                insert(session, table, now, **link, **{column: user})
        counts[f"{kind}_dropped"] += sum(1 for n in names if project.member(n) is None)
    for name, color in dict.fromkeys(row.labels):
        label = _named(session, project, "labels", name, now, counts, color=color or LABEL_COLOR)
        insert(session, "issue_labels", now, **link, label_id=label)
    for name in dict.fromkeys(row.cycles):
        cycle = _named(
            session,
            project,
            "cycles",
            name,
            now,
            counts,
            owned_by_id=project.actor_id,
            timezone="UTC",
            version=1,
        )
        insert(session, "cycle_issues", now, **link, cycle_id=cycle)
    for name in dict.fromkeys(row.modules):
        module = _named(session, project, "modules", name, now, counts, status="backlog")
        insert(session, "module_issues", now, **link, module_id=module)
    for url, title in row.links:
        insert(session, "issue_links", now, **link, **stamps, url=url, title=title[:255], metadata={})
    for comment, author, at in row.comments:
        actor = project.member(author) or project.actor_id
        html = text_html(comment)
        when = {"created_at": at or created, "updated_at": at or created}
        description = insert(
            session,
            "descriptions",
            now,
            **when,
            workspace_id=project.workspace_id,
            project_id=project.id,
            created_by_id=actor,
            description_json={},
            description_html=html,
            description_stripped=comment,
        )
        insert(
            session,
            "issue_comments",
            now,
            **{**by, "created_by_id": actor},
            **when,
            issue_id=issue,
            actor_id=actor,
            comment_html=html,
            comment_stripped=comment,
            comment_json={},
            access="INTERNAL",
            description_id=description,
        )
        counts["comments"] += 1
    return issue


def relate(engine: Engine, project: Project, source: str, rows: Sequence[ImportRow], counts: Counter) -> None:
    """Parents and relations of the rows, between issues of this import (idempotent)."""
    wanted = [r for r in rows if r.parent or r.relations]
    if not wanted:
        return
    now = datetime.now(UTC)
    ids = {r.external_id for r in wanted} | {r.parent for r in wanted if r.parent}
    ids |= {other for r in wanted for _, other in r.relations}
    with Session(engine) as session, session.begin():
        lock_project(session, project.id)  # against a concurrent run of the same pass
        issues = existing(session, project, source, sorted(ids))
        by = {
            "workspace_id": project.workspace_id,
            "project_id": project.id,
            "created_by_id": project.actor_id,
        }
        for row in wanted:
            issue = issues.get(row.external_id)
            if issue is None:
                continue
            if row.parent:
                parent = issues.get(row.parent)
                if parent is None:
                    counts["parents_dropped"] += 1
                else:
                    set_parent = text(
                        "UPDATE issues SET parent_id = :parent WHERE id = :i AND parent_id IS NULL"
                    )
                    counts["parents"] += session.execute(set_parent, {"parent": parent, "i": issue}).rowcount
            for kind, other in row.relations:
                related = issues.get(other)
                if related is None:
                    counts["relations_dropped"] += 1
                    continue
                known = session.scalar(
                    text(
                        "SELECT 1 FROM issue_relations WHERE issue_id = :i AND related_issue_id = :r"
                        " AND relation_type = :t AND deleted_at IS NULL"
                    ),
                    {"i": issue, "r": related, "t": kind},
                )
                if known is None:
                    insert(
                        session,
                        "issue_relations",
                        now,
                        **by,
                        issue_id=issue,
                        related_issue_id=related,
                        relation_type=kind[:20],
                    )
                    counts["relations"] += 1
