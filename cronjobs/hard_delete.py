"""hard-delete: Plane's `hard_delete` (deletion_task.py) without its crash and without long locks.

Purges rows soft-deleted before now - HARD_DELETE_AFTER_DAYS from every soft-deletable table, and
with them what Django's collector would cascade (Plane's FKs have no ON DELETE; see
`shared/db/fk_graph.py`): CASCADE children are deleted, SET_NULL references nulled, and the two
DO_NOTHING references (issue_activities.issue/issue_comment, on which Plane's job dies with an
IntegrityError) are nulled so the activity row survives its issue.

Each transaction handles a batch of expired rows plus their cascade, at most MAX_ROWS_PER_TX rows:
- the batch's rows are locked `FOR UPDATE SKIP LOCKED` and re-checked (`deleted_at < cutoff`), so a
  row restored before its batch survives and a row a writer holds is left for the next run;
- a batch whose cascade is too large is halved; a single row with a huge subtree (a workspace) has
  its subtree purged first, in bounded transactions that each re-check that the row is still
  expired, so restoring it stops the purge;
- lock waits are bounded (LOCK_TIMEOUT_MS); a batch that hits one is skipped, not retried in a loop.
Tables are purged leaves first, so most rows go as their own small batches. A killed run leaves
whole batches done; the next run finds the rest. `--dry-run` computes the same set read-only.

Leaves first also means a batch usually has nothing left referencing it, and then collecting its
cascade costs as much as PostgreSQL's own foreign-key checks, for nothing. So a table's batches are
first deleted outright, with the checks made immediate: if a reference remains the DELETE fails
(23503), the batch is rolled back and purged with its collected cascade, and so is the rest of the
table. A DELETE that passes the checks is exactly what the collector would have done: it found
nothing to cascade or null, because the graph is PostgreSQL's own foreign keys.

A table's batches go to HARD_DELETE_WORKERS connections at once (disjoint rows, so they never wait
on each other): deleting an issue is PostgreSQL checking 25 foreign keys, CPU work one backend does
on one core. Tables still go one after another, children first. Collecting purges run one at a
time, since two cascades may reach the same child rows and would then wait on (or deadlock) each
other.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.cron.runtime import JobContext
from shared.db.fk_graph import ForeignKey, Graph, load_graph

log = logging.getLogger(__name__)

ROOT_BATCH = 4000  # rows per batch at most; shrunk per table to stay near TARGET_TX_S
MIN_BATCH = 50
FIRST_BATCH = 500  # each table starts small: its per-row cost is unknown until measured
TARGET_TX_S = 0.4
MAX_ROWS_PER_TX = 5000
LOCK_TIMEOUT_MS = 1000
# PostgreSQL SQLSTATEs of a bounded wait that gave up: lock_not_available, deadlock_detected.
GAVE_UP = {"55P03", "40P01"}
FOREIGN_KEY_VIOLATION = "23503"


def _gave_up(exc: OperationalError) -> bool:
    return getattr(exc.orig, "pgcode", None) in GAVE_UP


def _by_table(rows: list[tuple[str, object, bool]]) -> dict[str, list[tuple[object, bool]]]:
    grouped: dict[str, list[tuple[object, bool]]] = {}
    for table, row_id, live in rows:
        grouped.setdefault(table, []).append((row_id, live))
    return grouped


class TooBig(Exception):
    """The batch's cascade exceeds MAX_ROWS_PER_TX."""


@dataclass
class Plan:
    doomed: dict[str, dict[object, bool]] = field(default_factory=dict)  # table -> {id: was live}
    nulls: list[tuple[ForeignKey, list[object]]] = field(default_factory=list)
    rows: int = 0


@dataclass(frozen=True)
class Guard:
    """A top-level row whose subtree is being purged in several transactions: still expired?"""

    table: str
    pk: str
    id: object


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run(ctx: JobContext) -> None:
    cutoff = ctx.now - timedelta(days=ctx.settings.hard_delete_after_days)
    if ctx.settings.hard_delete_workers < 1:
        raise ValueError(f"HARD_DELETE_WORKERS must be at least 1, not {ctx.settings.hard_delete_workers}")
    with ctx.engine.connect() as conn:
        graph = load_graph(conn)
    order = graph.children_first()
    if ctx.dry_run:
        count_deletions(ctx, graph, order, cutoff)
        return
    purger = Purger(ctx, graph, cutoff)
    with Workers(ctx.settings.hard_delete_workers) as workers:
        for table in order:
            purger.purge_table(table, workers)
    ctx.counts["longest_tx_ms"] = round(purger.longest_tx_s * 1000)


class Workers:
    """A thread pool that holds at most one task per thread, so the scan feeding it never runs
    ahead of the deletes, and that re-raises a task's exception at the next submit or join."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hard-delete")
        self._free = threading.Semaphore(threads)
        self._pending: list[Future[None]] = []

    def submit(self, task: Callable[..., None], *args: object) -> None:
        self._free.acquire()
        self._reap()
        future = self._pool.submit(task, *args)
        future.add_done_callback(lambda _: self._free.release())
        self._pending.append(future)

    def join(self) -> None:
        """Wait for every task submitted so far."""
        for future in self._pending:
            future.result()
        self._pending.clear()

    def _reap(self) -> None:
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            future.result()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Purger:
    def __init__(self, ctx: JobContext, graph: Graph, cutoff: datetime) -> None:
        self.ctx, self.graph, self.cutoff = ctx, graph, cutoff
        self.longest_tx_s = 0.0
        self.collecting: set[str] = set()  # tables whose batches turned out to be referenced
        self._batch_size: dict[str, int] = {}
        self._lock = threading.Lock()  # longest_tx_s and _batch_size, written by every worker
        self._collect_lock = threading.Lock()

    def purge_table(self, table: str, workers: Workers) -> None:
        pk = self.graph.pk(table)
        expired = text(f"SELECT {q(pk)} FROM {q(table)} WHERE deleted_at < :cutoff")
        started, before = time.monotonic(), self.ctx.counts["deleted"]
        self._batch_size[table] = min(FIRST_BATCH, ROOT_BATCH)
        batch: list[object] = []
        # One streaming scan (deleted_at is not indexed); ids already gone when their batch comes
        # (cascaded from an earlier one) simply do not lock.
        with self.ctx.engine.connect().execution_options(stream_results=True, yield_per=ROOT_BATCH) as scan:
            for row_id in scan.execute(expired, {"cutoff": self.cutoff}).scalars():
                batch.append(row_id)
                if len(batch) >= self._batch_size[table]:
                    workers.submit(self._purge_timed, table, batch)
                    batch = []
        if batch:
            workers.submit(self._purge_timed, table, batch)
        workers.join()  # children first: the next table's rows may be what referenced these
        if deleted := self.ctx.counts["deleted"] - before:
            log.info("%s: %d rows deleted in %.1f s", table, deleted, time.monotonic() - started)

    def _purge_timed(self, table: str, batch: list[object]) -> None:
        """Purge a batch and steer the table's batch size towards TARGET_TX_S per transaction.

        A row's cost depends on its table: deleting an issue makes PostgreSQL check 25 referencing
        foreign keys, an activity almost none, so a fixed size is either slow or long.
        """
        started = time.monotonic()
        if table in self.collecting or not self._delete_unreferenced(table, batch):
            with self._collect_lock:
                self.collecting.add(table)
                self.purge(table, batch, guard=None)
        took = time.monotonic() - started
        with self._lock:
            if took > TARGET_TX_S:
                self._batch_size[table] = max(MIN_BATCH, int(len(batch) * TARGET_TX_S / took))
            elif took < TARGET_TX_S / 3:  # (a table's last batch may be short: never shrink here)
                self._batch_size[table] = min(ROOT_BATCH, max(self._batch_size[table], len(batch) * 2))

    def _delete_unreferenced(self, table: str, ids: list[object]) -> bool:
        """Delete the batch's still-expired, unlocked rows if nothing references them; False (and
        nothing done) if something does."""
        pk, kind = q(self.graph.pk(table)), self.graph.primary_key_type.get(table, "uuid")
        delete = text(
            f"DELETE FROM {q(table)} WHERE {pk} IN (SELECT {pk} FROM {q(table)} "
            f"WHERE {pk} = ANY(CAST(:ids AS {kind}[])) AND deleted_at < :cutoff FOR UPDATE SKIP LOCKED)"
        )
        # One array literal, not a bound list: psycopg2 would quote every element separately.
        ids_literal = "{" + ",".join(str(i) for i in ids) + "}"
        try:
            with self._transaction() as conn:
                conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
                deleted = conn.execute(delete, {"ids": ids_literal, "cutoff": self.cutoff}).rowcount
        except IntegrityError as exc:
            if getattr(exc.orig, "pgcode", None) != FOREIGN_KEY_VIOLATION:
                raise
            log.info("%s: referenced rows remain; collecting cascades from here on", table)
            self.ctx.count("tables_collecting")
            return False
        except OperationalError as exc:
            self._skip_locked_batch(table, exc)
            return True
        if deleted:
            self.ctx.count("deleted_outright", deleted)
            self.ctx.count("deleted", deleted)
            self.ctx.count(f"deleted.{table}", deleted)
        self.ctx.batch_done()
        return True

    def _skip_locked_batch(self, table: str, exc: OperationalError) -> None:
        """A bounded lock wait gave up: leave the batch to the next run. Anything else is raised."""
        if not _gave_up(exc):
            raise exc
        log.warning("batch of %s skipped: a lock was not granted in time (%s)", table, exc.orig)
        self.ctx.count("batches_skipped_locked")

    def purge(self, table: str, ids: list[object], guard: Guard | None) -> bool:
        """Delete `ids` of `table` with their cascade; False when the guard no longer holds."""
        try:
            return self._one_transaction(table, ids, guard, top=guard is None)
        except TooBig:
            pass
        except OperationalError as exc:
            self._skip_locked_batch(table, exc)
            return True
        if len(ids) > 1:
            half = len(ids) // 2
            return self.purge(table, ids[:half], guard) and self.purge(table, ids[half:], guard)
        return self._purge_big_row(table, ids[0], guard)

    def _purge_big_row(self, table: str, row_id: object, guard: Guard | None) -> bool:
        guard = guard or Guard(table, self.graph.pk(table), row_id)
        try:
            if not self._guard_holds(guard):
                return False
            for fk in self.graph.referencing.get(table, ()):
                if not self._purge_references(fk, row_id, guard):
                    return False
            return self._one_transaction(table, [row_id], guard, top=guard.id == row_id)
        except TooBig:  # rows were added under it meanwhile, or some stayed locked
            log.warning("%s %s left for the next run: its cascade is still too large", table, row_id)
        except OperationalError as exc:
            if not _gave_up(exc):
                raise
            log.warning("%s %s left for the next run: a lock was not granted in time", table, row_id)
        self.ctx.count("rows_skipped")
        return True

    def _purge_references(self, fk: ForeignKey, row_id: object, guard: Guard) -> bool:
        """Delete (CASCADE) or null (SET_NULL) the rows of one FK pointing at a row, in chunks."""
        value = self._referenced_value(fk, row_id)
        chunk = text(
            f"SELECT {q(self.graph.pk(fk.child))} FROM {q(fk.child)} WHERE {q(fk.column)} = :v LIMIT :n"
        )
        previous: list[object] = []
        while True:
            with self.ctx.engine.connect() as conn:
                child_ids = list(conn.scalars(chunk, {"v": value, "n": MAX_ROWS_PER_TX}))
            if not child_ids:
                return True
            if child_ids == previous:  # nothing moved: rows held by writers; the final step skips
                return True
            previous = child_ids
            if fk.action == "CASCADE":
                if not self.purge(fk.child, child_ids, guard):
                    return False
            elif not self._null_chunk(fk, value, child_ids, guard):
                return False

    def _referenced_value(self, fk: ForeignKey, row_id: object) -> object:
        if fk.parent_column == self.graph.pk(fk.parent):
            return row_id
        with self.ctx.engine.connect() as conn:
            return conn.scalar(
                text(
                    f"SELECT {q(fk.parent_column)} FROM {q(fk.parent)} "
                    f"WHERE {q(self.graph.pk(fk.parent))} = :id"
                ),
                {"id": row_id},
            )

    def _null_chunk(self, fk: ForeignKey, value: object, child_ids: list[object], guard: Guard) -> bool:
        with self._transaction() as conn:
            if not self._guard_holds(guard, conn):
                return False
            nulled = conn.execute(
                text(
                    f"UPDATE {q(fk.child)} SET {q(fk.column)} = NULL "
                    f"WHERE {q(self.graph.pk(fk.child))} = ANY(:ids) AND {q(fk.column)} = :v"
                ),
                {"ids": child_ids, "v": value},
            ).rowcount
        self.ctx.count("nulled", nulled)
        return True

    def _guard_holds(self, guard: Guard, conn: Connection | None = None) -> bool:
        check = text(
            f"SELECT 1 FROM {q(guard.table)} WHERE {q(guard.pk)} = :id AND deleted_at < :cutoff FOR SHARE"
        )
        if conn is not None:
            return conn.scalar(check, {"id": guard.id, "cutoff": self.cutoff}) is not None
        with self.ctx.engine.connect() as c:
            return c.scalar(check, {"id": guard.id, "cutoff": self.cutoff}) is not None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction with a bounded lock wait, timed so the job can report its longest one."""
        started = time.monotonic()
        try:
            with self.ctx.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
                yield conn
        finally:
            took = time.monotonic() - started
            with self._lock:
                self.longest_tx_s = max(self.longest_tx_s, took)

    def _one_transaction(self, table: str, ids: list[object], guard: Guard | None, top: bool) -> bool:
        pk = self.graph.pk(table)
        with self._transaction() as conn:
            if guard is not None and not self._guard_holds(guard, conn):
                return False
            # Re-check expiry on the rows themselves unless they are a guarded row's descendants
            # (those go with their ancestor whatever their own state, as in Django).
            recheck = "AND deleted_at < :cutoff" if top else ""
            confirmed = list(
                conn.scalars(
                    text(
                        f"SELECT {q(pk)} FROM {q(table)} WHERE {q(pk)} = ANY(:ids) {recheck} "
                        "FOR UPDATE SKIP LOCKED"
                    ),
                    {"ids": ids, "cutoff": self.cutoff},
                )
            )
            if not confirmed:
                return True
            plan = self._collect(conn, table, confirmed)
            self._apply(conn, plan)
        for name, rows in plan.doomed.items():
            self.ctx.count("deleted", len(rows))
            self.ctx.count(f"deleted.{name}", len(rows))
        live = sum(is_live for rows in plan.doomed.values() for is_live in rows.values())
        if live:
            self.ctx.count("live_rows_cascaded", live)
        self.ctx.batch_done()
        return True

    def _collect(self, conn: Connection, table: str, ids: list[object]) -> Plan:
        """Django's collector: every row the cascade reaches, and every reference to null."""
        plan = Plan()
        plan.doomed[table] = dict.fromkeys(ids, False)
        plan.rows = len(ids)
        queue: list[tuple[str, list[object]]] = [(table, ids)]
        while queue:
            parent, parent_ids = queue.pop()
            found: list[tuple[str, object, bool]] = []
            for fk in self.graph.referencing.get(parent, ()):
                if fk.action == "SET_NULL":
                    plan.nulls.append((fk, self._values(conn, fk, parent_ids)))
                elif not self._in_union(fk):
                    values = self._values(conn, fk, parent_ids)
                    found += [
                        (fk.child, row_id, live)
                        for row_id, live in conn.execute(self._children(fk), {"v": values})
                    ]
            union = self._union_of_children(parent)
            if union is not None:
                found += [
                    (child, row_id, live) for child, row_id, live in conn.execute(union, {"v": parent_ids})
                ]
            for child, group in _by_table(found).items():
                seen = plan.doomed.setdefault(child, {})
                new = {row_id: live for row_id, live in group if row_id not in seen}
                if not new:
                    continue
                plan.rows += len(new)
                if plan.rows > MAX_ROWS_PER_TX:
                    raise TooBig
                seen.update(new)
                queue.append((child, list(new)))
        plan.doomed = {t: rows for t, rows in plan.doomed.items() if rows}
        return plan

    def _in_union(self, fk: ForeignKey) -> bool:
        """Children with a uuid key referencing the parent's key: fetched in one UNION ALL query."""
        return (
            fk.parent_column == self.graph.pk(fk.parent)
            and self.graph.primary_key_type.get(fk.child) == "uuid"
        )

    def _live(self, table: str) -> str:
        """SQL telling whether a cascaded row was live (only soft-deletable tables can say)."""
        return "deleted_at IS NULL" if table in self.graph.soft_deletable else "false"

    def _children(self, fk: ForeignKey) -> TextClause:
        return text(
            f"SELECT {q(self.graph.pk(fk.child))}, {self._live(fk.child)} FROM {q(fk.child)} "
            f"WHERE {q(fk.column)} = ANY(:v)"
        )

    @functools.cache  # noqa: B019 (one Purger per run; the graph does not change during it)
    def _union_of_children(self, parent: str) -> TextClause | None:
        """One round trip for all CASCADE children of a batch instead of one per foreign key."""
        parts = [
            f"SELECT '{fk.child}' AS child, {q(self.graph.pk(fk.child))} AS id, "
            f"{self._live(fk.child)} AS live FROM {q(fk.child)} WHERE {q(fk.column)} = ANY(:v)"
            for fk in self.graph.referencing.get(parent, ())
            if fk.action == "CASCADE" and self._in_union(fk)
        ]
        return text(" UNION ALL ".join(parts)) if parts else None

    def _values(self, conn: Connection, fk: ForeignKey, parent_ids: list[object]) -> list[object]:
        parent_pk = self.graph.pk(fk.parent)
        if fk.parent_column == parent_pk:
            return parent_ids
        return list(
            conn.scalars(
                text(f"SELECT {q(fk.parent_column)} FROM {q(fk.parent)} WHERE {q(parent_pk)} = ANY(:ids)"),
                {"ids": parent_ids},
            )
        )

    def _apply(self, conn: Connection, plan: Plan) -> None:
        nulled = 0
        for fk, values in plan.nulls:
            doomed = list(plan.doomed.get(fk.child, {}))
            nulled += conn.execute(
                text(
                    f"UPDATE {q(fk.child)} SET {q(fk.column)} = NULL WHERE {q(fk.column)} = ANY(:v) "
                    f"AND NOT ({q(self.graph.pk(fk.child))} = ANY(:doomed))"
                ),
                {"v": values, "doomed": doomed},
            ).rowcount
        for name, rows in plan.doomed.items():
            conn.execute(
                text(f"DELETE FROM {q(name)} WHERE {q(self.graph.pk(name))} = ANY(:ids)"),
                {"ids": list(rows)},
            )
        if nulled:
            self.ctx.count("nulled", nulled)


def count_deletions(ctx: JobContext, graph: Graph, order: list[str], cutoff: datetime) -> None:
    """The exact set a real run deletes, computed read-only: expired rows, then the cascade fixpoint."""
    cascades = [fk for fks in graph.referencing.values() for fk in fks if fk.action == "CASCADE"]
    with ctx.engine.begin() as conn:
        conn.execute(
            text("CREATE TEMP TABLE doomed (tbl text, id text, PRIMARY KEY (tbl, id)) ON COMMIT DROP")
        )
        for table in order:
            conn.execute(
                text(
                    f"INSERT INTO doomed SELECT :t, {q(graph.pk(table))}::text FROM {q(table)} "
                    "WHERE deleted_at < :cutoff"
                ),
                {"t": table, "cutoff": cutoff},
            )
        while True:
            added = 0
            for fk in cascades:
                parent_pk = graph.pk(fk.parent)
                if fk.parent_column == parent_pk:
                    source = f"JOIN doomed d ON d.tbl = :p AND d.id = c.{q(fk.column)}::text"
                else:
                    source = (
                        f"JOIN {q(fk.parent)} p ON p.{q(fk.parent_column)} = c.{q(fk.column)} "
                        f"JOIN doomed d ON d.tbl = :p AND d.id = p.{q(parent_pk)}::text"
                    )
                added += conn.execute(
                    text(
                        f"INSERT INTO doomed SELECT :c, c.{q(graph.pk(fk.child))}::text "
                        f"FROM {q(fk.child)} c {source} ON CONFLICT DO NOTHING"
                    ),
                    {"c": fk.child, "p": fk.parent},
                ).rowcount
            if not added:
                break
        for table, n in conn.execute(text("SELECT tbl, count(*) FROM doomed GROUP BY tbl ORDER BY tbl")):
            ctx.count("deleted", n)
            ctx.count(f"deleted.{table}", n)
