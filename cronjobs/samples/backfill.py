"""Samples of the version back-fills: every live issue without a live version gets one, once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from cronjobs import backfill_versions
from cronjobs.samples._seed import PAUSE_ENV, ids, rows_to_act_on, scope
from shared.conformance import JobSamples, SampleWorld
from shared.testing.plane_rows import insert_many, insert_one, insert_select

OTHERS = 20  # of each kind the job must leave without a new version
SEEDED_AT = datetime(2024, 1, 1, tzinfo=UTC)
ISSUE = {"name": "'i' || g", "priority": "'none'", "sequence_id": "g", "project_id": ":p",
         "workspace_id": ":w", "description_html": "'<p>' || g || '</p>'"}  # fmt: skip
VERSION = {"issue_id": "i.id", "project_id": "i.project_id", "workspace_id": "i.workspace_id",
           "owned_by_id": ":u", "created_at": ":t0", "updated_at": ":t0", "last_saved_at": ":t0"}  # fmt: skip


def backfill_issue_versions(world: SampleWorld) -> JobSamples:
    return _samples(world, "issue_versions", "name")


def backfill_description_versions(world: SampleWorld) -> JobSamples:
    return _samples(world, "issue_description_versions", "description_html")


def _samples(world: SampleWorld, table: str, column: str) -> JobSamples:
    """Issues to version (a creator, an updater, or only a project admin to own them); left alone:
    issues with a live version already, soft-deleted issues, issues in a project without an admin
    and with no creator. An issue with only a soft-deleted version gets a new one. Effects: every
    version row as (issue, owner, the copied column, live), duplicates visible."""
    with world.engine.begin() as conn:
        s = scope(conn)
        params = {**s.params, "t0": SEEDED_AT}
        n = rows_to_act_on(world, backfill_versions.BATCH_SIZE)
        insert_many(conn, "issues", n, {**ISSUE, "created_by_id": ":u"}, params)
        admin = _admin(conn, s)
        insert_many(conn, "issues", OTHERS, ISSUE, params)  # owned by the admin
        orphan = insert_one(conn, "projects", workspace_id=s.workspace, name="q", identifier="Q", network=2)
        insert_many(conn, "issues", OTHERS, {**ISSUE, "project_id": ":q"}, {**params, "q": orphan})
        insert_many(conn, "issues", OTHERS, {**ISSUE, "created_by_id": ":u", "deleted_at": ":t0"}, params)
        versioned = _some(conn, OTHERS)
        _versions(conn, table, versioned, None, params)
        revived = _some(conn, OTHERS, besides=versioned)
        _versions(conn, table, revived, ":t0", params)
        before = _rows(conn, table, column)
        wanted = conn.execute(
            text(
                f"""SELECT i.id::text, COALESCE(i.updated_by_id, i.created_by_id, :admin)::text, i.{column}
                FROM issues i WHERE i.deleted_at IS NULL AND i.project_id = :p
                AND i.id <> ALL(CAST(:skip AS uuid[]))"""
            ),
            {**params, "admin": admin, "skip": versioned},
        ).all()
    expected = sorted(before + [(row[0], row[1], row[2], True) for row in wanted])

    def effects() -> list[tuple[Any, ...]]:
        with world.engine.connect() as conn:
            return _rows(conn, table, column)

    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV)


def _admin(conn: Connection, s: Any) -> Any:
    admin = insert_one(conn, "users", username="admin", email="admin@example.com")
    insert_one(
        conn, "project_members", project_id=s.project, workspace_id=s.workspace, member_id=admin, role=20
    )
    return admin


def _some(conn: Connection, n: int, besides: list[Any] | None = None) -> list[Any]:
    """n live issues of the creator's batch, not in `besides`."""
    rows = ids(conn, "SELECT id FROM issues WHERE deleted_at IS NULL AND created_by_id IS NOT NULL")
    return [i for i in rows if i not in set(map(str, besides or []))][:n]


def _versions(
    conn: Connection, table: str, issues: list[Any], deleted_at: str | None, params: dict[str, Any]
) -> None:
    column = "name" if table == "issue_versions" else "description_html"
    exprs = {**VERSION, "deleted_at": deleted_at or "NULL", column: "'seeded'"}
    insert_select(
        conn, table, exprs, "issues i WHERE i.id = ANY(CAST(:issues AS uuid[]))", {**params, "issues": issues}
    )


def _rows(conn: Connection, table: str, column: str) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(row)
        for row in conn.execute(
            text(f"SELECT issue_id::text, owned_by_id::text, {column}, deleted_at IS NULL FROM {table}")
        ).all()
    )
