"""Samples of migrate-workspace: a workspace (projects, issues with sub-issues, comments, labels,
cycles, modules, pages, activities...) and a second one, copied into a target database of the
sample's own on the same server. Effects: per table, the target's rows as md5 of their jsonb, and
whether the other workspace reached the target (it must not)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, create_engine, text

from cronjobs.migrate_workspace import BATCH_SIZE
from cronjobs.samples._seed import PAUSE_ENV, rows_to_act_on
from services.soft_deletes.samples import PROJECT_TABLES, add_workspace
from shared.conformance import JobSamples, SampleWorld
from shared.db.engine import normalise_url
from shared.embedded.bootstrap import ensure_plane_tables
from shared.embedded.postgres import with_database
from shared.testing.plane_rows import insert_user

TABLES = ("workspaces", "workspace_members", *PROJECT_TABLES)


def target_database(url: str) -> str:
    """A new, empty Plane database on the sample's server (left for the server's cleanup)."""
    name = f"mw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    target = with_database(url, name)
    ensure_plane_tables(target)
    return target


def fingerprint(engine: Engine, ws: Any) -> dict[str, tuple[int, str | None]]:
    out = {}
    with engine.connect() as conn:
        conn.execute(text("SET TimeZone = 'UTC'"))
        for table in TABLES:
            column = "id" if table == "workspaces" else "workspace_id"
            row = conn.execute(
                text(
                    f"SELECT count(*), md5(string_agg(md5(to_jsonb(t)::text), '' ORDER BY id)) "
                    f'FROM "{table}" t WHERE {column} = :w'
                ),
                {"w": ws},
            ).one()
            out[table] = (row[0], row[1])
    return out


def migrate_workspace(world: SampleWorld) -> JobSamples:
    issues = max(20, rows_to_act_on(world, BATCH_SIZE) // 12)
    with world.engine.begin() as conn:
        owner = insert_user(conn)
        ws, _ = add_workspace(conn, owner, 2, issues, pages=5)
        other, _ = add_workspace(conn, owner, 1, 5)
        slug = conn.scalar(text("SELECT slug FROM workspaces WHERE id = :w"), {"w": ws})
    expected = {"copied": fingerprint(world.engine, ws), "other_workspace_rows": 0}
    target_url = target_database(world.settings.database_url)
    target = create_engine(normalise_url(target_url))

    def effects() -> dict[str, object]:
        rows = fingerprint(target, other)
        return {"copied": fingerprint(target, ws), "other_workspace_rows": sum(n for n, _ in rows.values())}

    env = {**PAUSE_ENV, "MIGRATE_WORKSPACE_SLUG": slug, "MIGRATE_TARGET_DATABASE_URL": target_url}
    return JobSamples(effects=effects, expected=expected, env=env)
