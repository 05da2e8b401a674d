"""migrate-workspace: copy one workspace's whole subtree into another Plane database (the seed's
`silo_data_migration_task`; Plane CE has none). Manual Job:
`plane-workers job migrate-workspace --workspace SLUG --to DSN [--s3-bucket B]`, or in Kubernetes
`kubectl create job --from=cronjob/...-migrate-workspace` with MIGRATE_WORKSPACE_SLUG and
MIGRATE_TARGET_DATABASE_URL (a secret: never printed; its password is cut from every error).

Which rows (migrate_workspace_plan.py): the workspace, and every row that reaches it through
Plane's foreign keys (the live FK graph, shared/db/fk_graph.py), soft-deleted rows included, to a
fixed point; plus the `users` those rows point at (copied ON CONFLICT DO NOTHING: a user already
in the target is kept as it is; users' own FKs to other tables, the avatar and cover assets, are
left NULL in rows we add). The target must have Plane's schema: every column of every copied table,
by name (checked first; refused with one line otherwise).

How (no superuser needed: no session_replication_role):
1. Tables parent first (topological order over FKs); a column of an FK inside a cycle
   (issues.parent_id and the other self-references, projects <-> states/estimates) is inserted
   NULL and set in a second pass (3). Plane's FKs are DEFERRABLE INITIALLY DEFERRED, so inside a
   batch the order of rows does not matter, only what earlier batches committed.
2. Rows in keyset batches (by id, BATCH_SIZE), each read from the source as jsonb and written in
   ONE target transaction: `INSERT ... SELECT * FROM jsonb_populate_recordset(...) ON CONFLICT DO
   NOTHING`. The target is the checkpoint: a run killed at any point and run again inserts what is
   missing (rows already there are skipped), so a second full run copies nothing (`copied` 0).
   The price: a rerun reads the subtree again. Sequences of integer keys are moved past the max.
3. Links: deferred columns set from the source where they differ (idempotent too).
4. S3 (MIGRATE_S3_TARGET_BUCKET set): each file_assets object of the subtree copied from
   AWS_S3_BUCKET_NAME to the target bucket (server-side copy, same endpoint and credentials);
   skipped when the target already has an object of the same size; missing sources counted.
5. Verify: per table, batch by batch over the source's ids, the row count and md5 of the rows as
   jsonb (key order canonical, both sessions in UTC) on both sides; any table that differs is a
   failure line and the job fails (exit 1). Referenced users: only their presence is checked.
Counts (what changed, so a rerun of a finished migration reports none): `copied` rows, `linked`
rows (deferred columns set), `s3_copied` objects, `s3_missing`; rows and objects already in the
target and the verified tables are logged. Dry run: collects, checks the target, and counts as
`copied` the subtree rows the target lacks; writes nothing. run_job's advisory lock (on the
source) keeps two runs apart.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from cronjobs.migrate_workspace_plan import (
    ROWS,
    SHARED,
    MigrateError,
    Plan,
    check_target,
    collect,
    columns,
    plan,
    q,
)
from shared.cron.runtime import JobContext
from shared.db.engine import get_engine
from shared.db.fk_graph import Graph, load_graph
from shared.progress import Progress

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; " \
    "SET extra_float_digits = 1"  # fmt: skip


def redact(message: str, dsn: str) -> str:
    """`message` without the DSN's password (nor the DSN itself)."""
    try:
        password = make_url(dsn).password
    except Exception:  # an unparsable DSN: cut what looks like user:password@
        password = None
        message = re.sub(r"//[^/@\s]*@", "//[redacted]@", message)
    out = message.replace(dsn, "[MIGRATE_TARGET_DATABASE_URL]")
    return out.replace(str(password), "[redacted]") if password else out


def run(ctx: JobContext) -> None:
    s = ctx.settings
    if not s.migrate_workspace_slug:
        raise MigrateError("MIGRATE_WORKSPACE_SLUG (--workspace) is not set")
    if not s.migrate_target_database_url:
        raise MigrateError("MIGRATE_TARGET_DATABASE_URL (--to) is not set")
    dsn = s.migrate_target_database_url
    try:
        migrate(ctx, get_engine(dsn))
    except MigrateError:
        raise
    except Exception as exc:
        raise MigrateError(redact(f"{type(exc).__name__}: {exc}", dsn).splitlines()[0]) from None


def migrate(ctx: JobContext, target: Engine) -> None:
    with ctx.engine.connect() as src:
        src.execute(text(SESSION))
        ws = src.scalar(
            text("SELECT id::text FROM workspaces WHERE slug = :s"),
            {"s": ctx.settings.migrate_workspace_slug},
        )
        if ws is None:
            raise MigrateError(
                f"MIGRATE_WORKSPACE_SLUG: no workspace {ctx.settings.migrate_workspace_slug!r}"
            )
        graph = load_graph(src)
        the_plan = plan(graph, collect(src, graph, ws))
        src.commit()
        tables = [*sorted(SHARED & the_plan.counts.keys()), *the_plan.tables]
        with target.connect() as dst:
            dst.execute(text(SESSION))
            check_target(columns(src), columns(dst), tables)
            other = dst.scalar(
                text("SELECT id::text FROM workspaces WHERE slug = :s AND id <> CAST(:w AS uuid)"),
                {"s": ctx.settings.migrate_workspace_slug, "w": ws},
            )
            dst.commit()
            if other is not None:
                raise MigrateError(
                    "MIGRATE_TARGET_DATABASE_URL: the target has another workspace with this slug"
                )
            if ctx.dry_run:
                for t in tables:
                    ctx.count("copied", the_plan.counts[t] - _present(src, dst, graph.pk(t), t))
                return
            progress = Progress(ctx.name, sum(the_plan.counts.values()), unit="rows")
            done = 0
            for t in tables:
                done = _copy_table(ctx, src, dst, graph.pk(t), t, the_plan, progress, done)
            seen = done - ctx.counts["copied"]
            progress.update(done, final=True)
            for t, cols in the_plan.deferred.items():
                _link(ctx, src, dst, graph.pk(t), t, cols)
            _sequences(dst, graph, the_plan.tables)
            if ctx.settings.migrate_s3_target_bucket and "file_assets" in the_plan.counts:
                from cronjobs.migrate_workspace_s3 import copy_objects

                copy_objects(ctx, src)
            bad = verify(src, dst, graph, tables)
    if bad:
        for line in bad:
            log.error("verification failed: %s", line)
        raise MigrateError(f"verification failed for {len(bad)} table(s): " + "; ".join(bad))
    log.info(
        "workspace migrated and verified",
        extra={
            "fields": {"tables": len(tables), "rows": sum(the_plan.counts.values()), "already_there": seen}
        },
    )


def _batches(src: Connection, table: str, kind: str, pk: str, select: str) -> Iterator[tuple[str, int, str]]:
    """(last id, rows, jsonb array text) per keyset batch of the table's collected rows."""
    after = ""
    while True:
        row = src.execute(
            text(
                f"SELECT max(b.id) AS last, count(*) AS n, jsonb_agg(b.r)::text AS rows FROM ("
                f"SELECT m.id, {select} AS r FROM {ROWS} m JOIN {q(table)} t "
                f"ON t.{q(pk)} = CAST(m.id AS {kind}) "
                "WHERE m.tbl = :t AND m.id > :a ORDER BY m.id LIMIT :n) b"
            ),
            {"t": table, "a": after, "n": BATCH_SIZE},
        ).one()
        src.commit()
        if not row.n:
            return
        yield row.last, row.n, row.rows
        if row.n < BATCH_SIZE:
            return
        after = row.last


def _present(src: Connection, dst: Connection, pk: str, table: str) -> int:
    """How many of the table's collected rows the target already holds (by key)."""
    kind, found = _kind(table, src), 0
    for _last, _n, ids in _batches(src, table, kind, pk, f"t.{q(pk)}"):
        found += dst.scalar(
            text(f"SELECT count(*) FROM {q(table)} t WHERE {_in_ids(pk, kind)}"), {"ids": ids}
        )
        dst.commit()
    return found


def _in_ids(pk: str, kind: str) -> str:
    return f"t.{q(pk)} IN (SELECT CAST(x AS {kind}) FROM jsonb_array_elements_text(CAST(:ids AS jsonb)) x)"


def _kind(table: str, src: Connection) -> str:
    return (
        src.scalar(
            text(
                "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indisprimary "
                "AND i.indrelid = CAST(:t AS regclass)"
            ),
            {"t": q(table)},
        )
        or "uuid"
    )


def _copy_table(
    ctx: JobContext,
    src: Connection,
    dst: Connection,
    pk: str,
    table: str,
    p: Plan,
    progress: Progress,
    done: int,
) -> int:
    nulled = p.users_nulled if table in SHARED else p.deferred.get(table, ())
    select = "to_jsonb(t)" + "".join(f" || jsonb_build_object('{c}', NULL)" for c in nulled)
    insert = text(
        f"INSERT INTO {q(table)} SELECT * "
        f"FROM jsonb_populate_recordset(NULL::{q(table)}, CAST(:rows AS jsonb)) "
        "ON CONFLICT DO NOTHING"
    )
    for _last, n, rows in _batches(src, table, _kind(table, src), pk, select):
        with _tx(dst):
            copied = dst.execute(insert, {"rows": rows}).rowcount
        ctx.count("copied", copied)
        done += n
        progress.update(done)
        ctx.batch_done()
    return done


def _link(
    ctx: JobContext, src: Connection, dst: Connection, pk: str, table: str, cols: tuple[str, ...]
) -> None:
    pairs = ", ".join(f"'{c}', t.{q(c)}" for c in (pk, *cols))
    sets = ", ".join(f"{q(c)} = v.{q(c)}" for c in cols)
    differs = " OR ".join(f"t.{q(c)} IS DISTINCT FROM v.{q(c)}" for c in cols)
    update = text(
        f"UPDATE {q(table)} t SET {sets} "
        f"FROM jsonb_populate_recordset(NULL::{q(table)}, CAST(:rows AS jsonb)) v "
        f"WHERE t.{q(pk)} = v.{q(pk)} AND ({differs})"
    )
    for _last, _n, rows in _batches(src, table, _kind(table, src), pk, f"jsonb_build_object({pairs})"):
        with _tx(dst):
            ctx.count("linked", dst.execute(update, {"rows": rows}).rowcount)
        ctx.batch_done()


def _sequences(dst: Connection, graph: Graph, tables: list[str]) -> None:
    """Integer keys copied as they are: the target's sequence must not hand them out again."""
    with _tx(dst):
        for t in tables:
            pk = graph.pk(t)
            seq = dst.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": q(t), "c": pk})
            if seq:
                dst.execute(
                    text(
                        f"SELECT setval(:s, m) FROM (SELECT max({q(pk)}) AS m FROM {q(t)}) x "
                        "WHERE m IS NOT NULL"
                    ),
                    {"s": seq},
                )


def verify(src: Connection, dst: Connection, graph: Graph, tables: list[str]) -> list[str]:
    """One line per table whose rows differ between source and target (count or checksum)."""
    bad = []
    for t in tables:
        pk, kind = graph.pk(t), _kind(t, src)
        shown = "NULL" if t in SHARED else f"md5(string_agg(md5(to_jsonb(t)::text), '' ORDER BY t.{q(pk)}))"
        check = text(f"SELECT count(*) AS n, {shown} AS h FROM {q(t)} t WHERE {_in_ids(pk, kind)}")
        ids_seen = mismatched = 0
        for _last, _n, ids in _batches(src, t, kind, pk, f"t.{q(pk)}"):
            mine = src.execute(check, {"ids": ids}).one()
            theirs = dst.execute(check, {"ids": ids}).one()
            src.commit()
            dst.commit()
            ids_seen += mine.n
            if tuple(mine) != tuple(theirs):
                mismatched += max(1, abs(mine.n - theirs.n))
        if mismatched:
            bad.append(f"{t}: {ids_seen} source rows, batches differ (about {mismatched} rows)")
    return bad


@contextmanager
def _tx(conn: Connection) -> Iterator[None]:
    try:
        yield
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
