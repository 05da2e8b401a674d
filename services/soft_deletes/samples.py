"""Plane-shaped subtrees for `soft-deletes`: conformance samples, and the builder the tests and the
benchmark seed workspaces with.

A project here holds what Plane's UI makes: members, a state, a label, a cycle, a module, issues
(every fourth with a sub-issue), and under each issue an activity, a comment with a reaction, a
link, an attachment, a label, an assignee, a subscriber, a cycle and a module link; and pages with
their project link. Rows go in set-based (`INSERT ... SELECT`), so a benchmark seeds 100,000 in
seconds. Every row has created_by_id and updated_by_id set, so a nulled audit column shows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from services.soft_deletes.handler import EMBEDDINGS_TOPIC, EVENT_TYPE
from shared.conformance import ConsumerSamples, SampleWorld
from shared.events import Event, new_event
from shared.testing.plane_rows import insert_one, insert_select, insert_user
from shared.testing.topics import read_topic

# Rows under every issue: table -> extra column expressions (`i` is the issue, :u the owner).
PER_ISSUE: dict[str, dict[str, str]] = {
    "issue_activities": {"verb": "'created'", "actor_id": ":u"},
    "issue_comments": {"actor_id": ":u", "comment_html": "'<p>c</p>'"},
    "issue_links": {"url": "'https://example.com'"},
    "file_assets": {"asset": "'att/' || i.id", "entity_type": "'ISSUE_ATTACHMENT'"},
    "issue_labels": {"label_id": ":label"},
    "issue_assignees": {"assignee_id": ":u"},
    "issue_subscribers": {"subscriber_id": ":u"},
    "cycle_issues": {"cycle_id": ":cycle"},
    "module_issues": {"module_id": ":module"},
}
# Tables whose rows a project holds, for counting what a cascade reached.
PROJECT_TABLES = (
    "projects", "project_members", "states", "labels", "cycles", "modules", "issues",
    "comment_reactions", "pages", "project_pages", *PER_ISSUE,
)  # fmt: skip
AUDIT = ("created_by_id", "updated_by_id")


@dataclass
class Project:
    id: uuid.UUID
    workspace_id: uuid.UUID
    issues: list[uuid.UUID] = field(default_factory=list)  # top-level issues, by sequence id


def add_project(
    conn: Connection,
    ws: uuid.UUID,
    owner: uuid.UUID,
    identifier: str,
    issues: int,
    pages: int = 0,
    deleted_at: datetime | None = None,
) -> Project:
    audit = {"created_by_id": owner, "updated_by_id": owner, "deleted_at": deleted_at}
    scoped = {"workspace_id": ws, **audit}
    proj = insert_one(conn, "projects", name=identifier, identifier=identifier, network=2, **scoped)
    in_project = {"project_id": proj, **scoped}
    insert_one(conn, "project_members", member_id=owner, role=20, **in_project)
    state = insert_one(conn, "states", name="Todo", group="unstarted", **in_project)
    params = {
        "p": proj, "w": ws, "d": deleted_at, "u": owner, "s": state, "n": issues,
        "label": insert_one(conn, "labels", name="bug", **in_project),
        "cycle": insert_one(conn, "cycles", name="c", owned_by_id=owner, **in_project),
        "module": insert_one(conn, "modules", name="m", **in_project),
    }  # fmt: skip
    base = {
        "project_id": ":p", "workspace_id": ":w", "deleted_at": ":d",
        "created_by_id": ":u", "updated_by_id": ":u",
    }  # fmt: skip
    issue = {"name": "'issue ' || g", "sequence_id": "g", "state_id": ":s", "priority": "'none'"}
    insert_select(conn, "issues", {**base, **issue}, "generate_series(1, :n) AS g", params)
    # Every fourth issue gets a sub-issue (a CASCADE self-reference: one layer deeper).
    sub = {**issue, "name": "'sub ' || i.sequence_id", "sequence_id": "i.sequence_id + 1000000",
           "parent_id": "i.id"}  # fmt: skip
    insert_select(
        conn, "issues", {**base, **sub}, "issues i WHERE i.project_id = :p AND i.sequence_id % 4 = 0", params
    )
    for table, extra in PER_ISSUE.items():
        insert_select(
            conn, table, {**base, **extra, "issue_id": "i.id"}, "issues i WHERE i.project_id = :p", params
        )
    reaction = {**base, "reaction": "'+1'", "actor_id": ":u", "comment_id": "c.id"}
    insert_select(conn, "comment_reactions", reaction, "issue_comments c WHERE c.project_id = :p", params)
    if pages:
        page = {
            "workspace_id": ":w", "deleted_at": ":d", "created_by_id": ":u", "updated_by_id": ":u",
            "name": "'page ' || g", "owned_by_id": ":u", "description_html": "'<p>p</p>'",
            "color": "CAST(:p AS text) || '/' || g",  # a tag: this project's pages, found again below
        }  # fmt: skip
        insert_select(conn, "pages", page, "generate_series(1, :pages) AS g", {**params, "pages": pages})
        link = {**base, "page_id": "pg.id"}
        insert_select(
            conn, "project_pages", link, "pages pg WHERE pg.color LIKE CAST(:p AS text) || '/%'", {**params}
        )
    top = conn.scalars(
        text("SELECT id FROM issues WHERE project_id = :p AND parent_id IS NULL ORDER BY sequence_id"),
        {"p": proj},
    ).all()
    return Project(proj, ws, list(top))


def add_workspace(
    conn: Connection,
    owner: uuid.UUID,
    projects: int,
    issues: int,
    pages: int = 0,
    deleted_at: datetime | None = None,
) -> tuple[uuid.UUID, list[Project]]:
    audit = {"created_by_id": owner, "updated_by_id": owner, "deleted_at": deleted_at}
    ws = insert_one(
        conn, "workspaces", name="ws", slug=f"ws-{uuid.uuid4().hex[:10]}", owner_id=owner, **audit
    )
    insert_one(conn, "workspace_members", workspace_id=ws, member_id=owner, role=20, **audit)
    made = [add_project(conn, ws, owner, f"P{n}", issues, pages, deleted_at) for n in range(projects)]
    return ws, made


def rows_in_workspace(conn: Connection, ws: uuid.UUID) -> dict[str, tuple[int, int]]:
    """table -> (live rows, soft-deleted rows) of a workspace's content."""
    out = {}
    for table in PROJECT_TABLES:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(deleted_at) "
                f'FROM "{table}" WHERE workspace_id = :w'
            ),
            {"w": ws},
        ).one()
        out[table] = (row[0], row[1])
    return out


def soft_delete_event(table: str, row_id: uuid.UUID, model: str | None = None) -> Event:
    """What the celery bridge makes of `soft_delete_related_objects.delay("db", model, pk)`."""
    data = {"app_label": "db", "model_name": model, "instance_pk": str(row_id), "using": None}
    if model is None:
        data = {"table": table, "instance_pk": str(row_id)}
    return new_event(EVENT_TYPE, data)


# -- conformance ----------------------------------------------------------------------------------

STAMP = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def cases(world: SampleWorld) -> ConsumerSamples:
    """`world.scaled(4)` issue soft deletes, each a subtree over a dozen tables (each issue's row
    already stamped, as the API leaves it), every fifth by table name instead of model; plus one
    untouched issue whose rows stay live, and an intake row of another issue marking each deleted
    one as its duplicate (SET_NULL)."""
    n = world.scaled(4)
    with world.engine.begin() as conn:
        owner = insert_user(conn)
        ws, (project,) = add_workspace(conn, owner, 1, n + 1)
        roots, kept = project.issues[:n], project.issues[n]
        intake = insert_one(conn, "intakes", name="i", project_id=project.id, workspace_id=ws)
        for k, root in enumerate(roots):
            conn.execute(
                text("UPDATE issues SET deleted_at = :d WHERE id = :i"),
                {"d": STAMP + timedelta(seconds=k), "i": root},
            )
            insert_one(conn, "intake_issues", intake_id=intake, issue_id=kept, duplicate_to_id=root, status=2,
                       project_id=project.id, workspace_id=ws, extra="{}")  # fmt: skip
        subs = conn.scalar(text("SELECT count(*) FROM issues WHERE parent_id = ANY(:r)"), {"r": roots})
        kept_rows = 1 + conn.scalar(text("SELECT count(*) FROM issues WHERE parent_id = :k"), {"k": kept})
    events = [
        (str(root), soft_delete_event("issues", root, None if k % 5 == 4 else "issue"))
        for k, root in enumerate(roots)
    ]

    def effects() -> dict[str, object]:
        with world.engine.connect() as conn:
            per_table = {}
            for table in PER_ISSUE:
                # Rows under a deleted issue (or its sub-issue) that carry its stamp exactly.
                per_table[table] = conn.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE x.deleted_at = coalesce(p.deleted_at, i.deleted_at)), "
                        f'count(*) FILTER (WHERE x.deleted_at IS NULL) FROM "{table}" x '
                        "JOIN issues i ON i.id = x.issue_id LEFT JOIN issues p ON p.id = i.parent_id "
                        "WHERE i.project_id = :p"
                    ),
                    {"p": project.id},
                ).one()
            per_table = {t: tuple(v) for t, v in per_table.items()}
            subs_stamped = conn.scalar(
                text(
                    "SELECT count(*) FROM issues s JOIN issues p ON p.id = s.parent_id "
                    "WHERE s.project_id = :p AND s.deleted_at = p.deleted_at"
                ),
                {"p": project.id},
            )
            audit_nulled = conn.scalar(
                text(
                    "SELECT count(*) FROM issues WHERE project_id = :p "
                    "AND (created_by_id IS NULL OR updated_by_id IS NULL)"
                ),
                {"p": project.id},
            )
            duplicates_left = conn.scalar(
                text("SELECT count(duplicate_to_id) FROM intake_issues WHERE intake_id = :i"), {"i": intake}
            )
        embeds = {
            json.loads(m.value())["id"]
            for m in read_topic(world.settings, world.settings.topic(EMBEDDINGS_TOPIC))
        }
        return {
            "per_table": per_table,
            "subs_stamped": subs_stamped,
            "audit_nulled": audit_nulled,
            "duplicates_left": duplicates_left,
            "embed_deletes": len(embeds),
        }

    # Each deleted issue and each sub-issue has one row per PER_ISSUE table, stamped with its
    # root's deleted_at, except activities: IssueActivity.issue is DO_NOTHING, they stay live.
    deleted = n + subs
    expected_tables = {t: (deleted, kept_rows) for t in PER_ISSUE}
    expected_tables["issue_activities"] = (0, deleted + kept_rows)
    expected = {
        "per_table": expected_tables,
        "subs_stamped": subs,
        "audit_nulled": 0,
        "duplicates_left": 0,
        "embed_deletes": deleted,
    }
    return ConsumerSamples(events=events, effects=effects, expected=expected, produces=(EMBEDDINGS_TOPIC,))
