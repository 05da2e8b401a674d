"""Plane's soft-delete cascade (deletion_task.soft_delete_related_objects) as bounded batches.

What Plane's task does, per object, recursively: every reverse relation of the row is looked at
with Django's on_delete (from `shared/db/plane_on_delete.py`, through `shared/db/fk_graph.py`):
- DO_NOTHING: left alone (issue_activities keep pointing at their issue);
- SET_NULL: live referencing rows get the column nulled;
- anything else (CASCADE, PROTECT, ...): each live child of a soft-deletable table gets
  `deleted_at` and is walked in turn; children of tables without `deleted_at` are skipped.
Here the whole subtree gets the root's own `deleted_at` (Plane stamps each row with its own
now()), `updated_at` is set as Plane's save() (auto_now) sets it, and `created_by_id` /
`updated_by_id` are kept (Plane's full save() in a worker nulls both: its bug 8).

How, instead of one unbounded task:
1. Collect: the live subtree, breadth first, into a temporary table: layer n+1 is every live row
   of a soft-deletable table that a CASCADE foreign key points from a layer-n row, and was not
   found before. Set-based INSERT ... SELECT statements that lock no row of Plane's.
2. Mark: layers deepest first, each table's rows in keyset batches, one short transaction each
   (lock waits bounded). Resuming needs no state of ours: a row is only marked once every row
   found deeper than it is, so every live row of the subtree keeps a live path from the root
   (its first-found parent is in a shallower layer, not marked yet). A killed cascade, replayed,
   collects exactly what is left and finishes it; marked rows are not live, so nothing is done
   twice, and nothing outside the subtree (no live path to the root) is ever reached.
3. Finish: the root's own SET_NULL references, in the transaction the caller finishes with
   (the handler claims its event there).
Every batch first re-checks the root (still soft-deleted with the same stamp, FOR SHARE): a
root restored or deleted again meanwhile stops the cascade.

SET_NULL: in the batch that marks a row, live rows *outside* the subtree that point at it are
nulled. Plane nulls whichever referencing rows are still live when its walk meets the row, so
whether rows of the subtree itself lose the pointer depends on its walk order; here they keep it
(they are soft-deleted with it and restore whole).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Engine, Row, text

from shared.db.fk_graph import ForeignKey, Graph

log = logging.getLogger(__name__)

SoftAction = Literal["CASCADE", "SET_NULL", "SKIP"]

FIRST_BATCH = 500  # rows per marking transaction to start with, per table
MIN_BATCH, MAX_BATCH = 50, 5000
TARGET_TX_S = 0.25  # batch sizes steer towards this
COLLECT_CHUNK = 5000  # parent rows per collecting statement
LOCK_TIMEOUT_MS = 2000
SUBTREE = "soft_delete_subtree"

OnMarked = Callable[[Connection, str, Sequence[Row]], None]
OnFinish = Callable[[Connection], None]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def soft_action(fk: ForeignKey, graph: Graph) -> SoftAction:
    """What soft-deleting the parent does to the rows of `fk.child`, as Plane's task decides it."""
    if fk.django == "DO_NOTHING":
        return "SKIP"
    if fk.django == "SET_NULL" or (fk.django == "unknown" and fk.nullable):
        return "SET_NULL"
    # Plane's else branch (CASCADE, PROTECT, ...): only rows with a deleted_at are followed.
    return "CASCADE" if fk.child in graph.soft_deletable else "SKIP"


class RootNotFound(LookupError):
    """The root row does not exist (retried: a replica may lag; then dead-lettered)."""


@dataclass(frozen=True)
class Root:
    table: str
    pk: object  # uuid.UUID, or int for the one integer-keyed model


@dataclass
class Outcome:
    # done: the subtree is marked; live: the root is not soft-deleted (nothing to do); stopped:
    # the root was restored or stamped anew meanwhile; paused: the time budget ran out first.
    status: Literal["done", "live", "stopped", "paused"] = "done"
    deleted_at: datetime | None = None
    marked: dict[str, int] = field(default_factory=dict)
    nulled: int = 0
    batches: int = 0
    longest_tx_s: float = 0.0  # the longest transaction that wrote to Plane's tables
    longest_read_s: float = 0.0  # the longest collecting statement (reads only, no row locks)

    @property
    def rows(self) -> int:
        return sum(self.marked.values())


@dataclass
class Cascade:
    engine: Engine
    graph: Graph
    root: Root
    # Extra columns RETURNING-ed for marked rows of these tables, handed to on_marked.
    returning: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    on_marked: OnMarked | None = None
    deadline: float | None = None  # time.monotonic() after which no further batch is started
    pause_s: float = 0.0  # between marking batches, to spare a busy primary
    outcome: Outcome = field(default_factory=Outcome)
    _batch: dict[str, int] = field(default_factory=dict)
    _updated_at: frozenset[str] = frozenset()

    def run(self, stamp: datetime | None = None, on_finish: OnFinish | None = None) -> Outcome:
        """Cascade the root's soft delete. `stamp` soft-deletes a still-live root first (as the
        API's model.delete() does before it calls the task); without one a live root is left."""
        with self.engine.connect() as conn:
            self._updated_at = self._tables_with_updated_at(conn)
            deleted_at = self._start(conn, stamp)
            self.outcome.deleted_at = deleted_at
            if deleted_at is None:
                self.outcome.status = "live"
                return self.outcome
            conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{SUBTREE}"))
            conn.execute(
                text(
                    f"CREATE TEMP TABLE {SUBTREE} (tbl text NOT NULL, id text NOT NULL, "
                    "layer int NOT NULL, PRIMARY KEY (tbl, id))"
                )
            )
            conn.execute(text(f"CREATE INDEX ON {SUBTREE} (layer, tbl, id)"))
            conn.commit()
            try:
                layers = self._collect(conn)
                if self._mark(conn, deleted_at, layers):
                    self._finish(conn, deleted_at, on_finish)
            finally:
                with contextlib.suppress(Exception):
                    conn.rollback()
                    conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{SUBTREE}"))
                    conn.commit()
        return self.outcome

    # -- the root ----------------------------------------------------------------------------

    def _start(self, conn: Connection, stamp: datetime | None) -> datetime | None:
        pk = q(self.graph.pk(self.root.table))
        with self._write(conn):
            found = conn.execute(
                text(f"SELECT deleted_at FROM {q(self.root.table)} WHERE {pk} = :id"), {"id": self.root.pk}
            ).first()
            if found is None:
                raise RootNotFound(f"{self.root.table} has no row {self.root.pk}")
            if found.deleted_at is not None or stamp is None:
                return found.deleted_at
            conn.execute(
                text(
                    f"UPDATE {q(self.root.table)} SET deleted_at = :d{self._touch(self.root.table)} "
                    f"WHERE {pk} = :id AND deleted_at IS NULL"
                ),
                {"id": self.root.pk, "d": stamp},
            )
            self._count(self.root.table, 1)
            return stamp

    def _root_holds(self, conn: Connection, deleted_at: datetime) -> bool:
        """Still soft-deleted with the cascade's stamp; held (FOR SHARE) until the batch commits."""
        pk = q(self.graph.pk(self.root.table))
        found = conn.scalar(
            text(f"SELECT 1 FROM {q(self.root.table)} WHERE {pk} = :id AND deleted_at = :d FOR SHARE"),
            {"id": self.root.pk, "d": deleted_at},
        )
        if found is None:
            log.warning("%s %s restored or deleted again: cascade stopped", self.root.table, self.root.pk)
            self.outcome.status = "stopped"
        return found is not None

    def _finish(self, conn: Connection, deleted_at: datetime, on_finish: OnFinish | None) -> None:
        with self._write(conn):
            if not self._root_holds(conn, deleted_at):
                return
            pk = self.graph.pk(self.root.table)
            root_id = str(self.root.pk)
            self._null_references(conn, self.root.table, [root_id])
            extra = self.returning.get(self.root.table)
            if extra and self.on_marked is not None:
                cols = ", ".join([f"{q(pk)}::text AS id", *(q(c) for c in extra)])
                rows = conn.execute(
                    text(f"SELECT {cols} FROM {q(self.root.table)} WHERE {q(pk)} = :id"), {"id": self.root.pk}
                ).all()
                self.on_marked(conn, self.root.table, rows)
            if on_finish is not None:
                on_finish(conn)

    # -- 1. collect --------------------------------------------------------------------------

    def _collect(self, conn: Connection) -> int:
        """Fill the subtree table layer by layer; returns the deepest layer."""
        root = {"t": self.root.table, "id": str(self.root.pk)}
        conn.execute(text(f"INSERT INTO {SUBTREE} VALUES (:t, :id, 0)"), root)
        conn.commit()
        layer = 0
        while True:
            tables = conn.execute(
                text(f"SELECT tbl, count(*) FROM {SUBTREE} WHERE layer = :l GROUP BY tbl ORDER BY tbl"),
                {"l": layer},
            ).all()
            conn.commit()
            found = 0
            for parent, count in tables:
                for lo, hi in self._chunks(conn, parent, layer, count):
                    for fk in self.graph.referencing.get(parent, ()):
                        if soft_action(fk, self.graph) == "CASCADE":
                            found += self._collect_children(conn, fk, layer, lo, hi)
            if not found:
                return layer
            layer += 1
            if found > 1000:
                conn.execute(text(f"ANALYZE {SUBTREE}"))  # the planner sees its real size
                conn.commit()

    def _chunks(self, conn: Connection, table: str, layer: int, count: int) -> list[tuple[str, str | None]]:
        """Key ranges (lo, hi] of at most COLLECT_CHUNK parent rows each."""
        if count <= COLLECT_CHUNK:
            return [("", None)]
        bounds = list(
            conn.scalars(
                text(
                    f"SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM {SUBTREE} "
                    "WHERE tbl = :t AND layer = :l) s WHERE n % :k = 0 ORDER BY id"
                ),
                {"t": table, "l": layer, "k": COLLECT_CHUNK},
            )
        )
        conn.commit()
        edges = ["", *bounds]
        return [(lo, hi) for lo, hi in zip(edges, [*bounds, None], strict=True)]

    def _collect_children(self, conn: Connection, fk: ForeignKey, layer: int, lo: str, hi: str | None) -> int:
        child_pk, parent_pk = q(self.graph.pk(fk.child)), self.graph.pk(fk.parent)
        if fk.parent_column == parent_pk:
            kind = self.graph.primary_key_type.get(fk.parent, "uuid")
            join = f"c.{q(fk.column)} = CAST(s.id AS {kind})"
            parents = ""
        else:  # a foreign key to another unique column of the parent
            kind = self.graph.primary_key_type.get(fk.parent, "uuid")
            parents = f"JOIN {q(fk.parent)} p ON p.{q(parent_pk)} = CAST(s.id AS {kind}) "
            join = f"c.{q(fk.column)} = p.{q(fk.parent_column)}"
        upper = "" if hi is None else "AND s.id <= :hi"
        sql = (
            f"INSERT INTO {SUBTREE} (tbl, id, layer) "
            f"SELECT DISTINCT CAST(:child AS text), c.{child_pk}::text, CAST(:next AS int) "
            f"FROM {SUBTREE} s {parents}"
            f"JOIN {q(fk.child)} c ON {join} "
            f"WHERE s.tbl = :parent AND s.layer = :l AND s.id > :lo {upper} AND c.deleted_at IS NULL "
            "ON CONFLICT DO NOTHING"
        )
        started = time.monotonic()
        added = conn.execute(
            text(sql),
            {"child": fk.child, "parent": fk.parent, "l": layer, "next": layer + 1, "lo": lo, "hi": hi},
        ).rowcount
        conn.commit()
        self.outcome.longest_read_s = max(self.outcome.longest_read_s, time.monotonic() - started)
        return added

    # -- 2. mark -----------------------------------------------------------------------------

    def _mark(self, conn: Connection, deleted_at: datetime, deepest: int) -> bool:
        """Mark layers deepest first; False when stopped or paused before the end."""
        started_batches = self.outcome.batches
        for layer in range(deepest, 0, -1):
            tables = conn.scalars(
                text(f"SELECT DISTINCT tbl FROM {SUBTREE} WHERE layer = :l ORDER BY tbl"), {"l": layer}
            ).all()
            conn.commit()
            for table in tables:
                after = ""
                while True:
                    if (
                        self.deadline is not None
                        and time.monotonic() > self.deadline
                        and self.outcome.batches > started_batches  # always some progress per call
                    ):
                        self.outcome.status = "paused"
                        return False
                    ids = conn.scalars(
                        text(
                            f"SELECT id FROM {SUBTREE} WHERE layer = :l AND tbl = :t AND id > :after "
                            "ORDER BY id LIMIT :n"
                        ),
                        {"l": layer, "t": table, "after": after, "n": self._batch.get(table, FIRST_BATCH)},
                    ).all()
                    conn.commit()
                    if not ids:
                        break
                    if not self._mark_batch(conn, table, ids, deleted_at):
                        return False
                    after = ids[-1]
                    if self.pause_s:
                        time.sleep(self.pause_s)
        return True

    def _mark_batch(self, conn: Connection, table: str, ids: Sequence[str], deleted_at: datetime) -> bool:
        pk, kind = self.graph.pk(table), self.graph.primary_key_type.get(table, "uuid")
        cols = ", ".join([f"{q(pk)}::text AS id", *(q(c) for c in self.returning.get(table, ()))])
        started = time.monotonic()
        with self._write(conn):
            if not self._root_holds(conn, deleted_at):
                return False
            rows = conn.execute(
                text(
                    f"UPDATE {q(table)} SET deleted_at = :d{self._touch(table)} "
                    f"WHERE {q(pk)} = ANY(CAST(:ids AS {kind}[])) AND deleted_at IS NULL RETURNING {cols}"
                ),
                {"d": deleted_at, "ids": _array(ids)},
            ).all()
            if rows:
                self._null_references(conn, table, [r.id for r in rows])
                if self.on_marked is not None and table in self.returning:
                    self.on_marked(conn, table, rows)
        self._count(table, len(rows))
        self.outcome.batches += 1
        self._steer(table, len(ids), time.monotonic() - started)
        return True

    def _steer(self, table: str, size: int, took: float) -> None:
        """Each table's batch size towards TARGET_TX_S: an issue row costs many index updates,
        an assignee link few, so one fixed size is either slow or long."""
        current = self._batch.get(table, FIRST_BATCH)
        if took > TARGET_TX_S:
            self._batch[table] = max(MIN_BATCH, int(size * TARGET_TX_S / took))
        elif took < TARGET_TX_S / 3 and size >= current:
            self._batch[table] = min(MAX_BATCH, current * 2)

    def _null_references(self, conn: Connection, table: str, ids: list[str]) -> None:
        """SET_NULL: live rows outside the subtree that point at the rows just marked."""
        pk, kind = self.graph.pk(table), self.graph.primary_key_type.get(table, "uuid")
        for fk in self.graph.referencing.get(table, ()):
            if soft_action(fk, self.graph) != "SET_NULL":
                continue
            if fk.parent_column == pk:
                match = f"x.{q(fk.column)} = ANY(CAST(:ids AS {kind}[]))"
            else:
                match = (
                    f"x.{q(fk.column)} IN (SELECT {q(fk.parent_column)} FROM {q(table)} "
                    f"WHERE {q(pk)} = ANY(CAST(:ids AS {kind}[])))"
                )
            live = "AND x.deleted_at IS NULL" if fk.child in self.graph.soft_deletable else ""
            child_pk = q(self.graph.pk(fk.child))
            self.outcome.nulled += conn.execute(
                text(
                    f"UPDATE {q(fk.child)} x SET {q(fk.column)} = NULL WHERE {match} {live} AND NOT EXISTS "
                    f"(SELECT 1 FROM {SUBTREE} s WHERE s.tbl = :c AND s.id = x.{child_pk}::text)"
                ),
                {"ids": _array(ids), "c": fk.child},
            ).rowcount

    # -- helpers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, conn: Connection) -> Iterator[None]:
        """One transaction that writes Plane's rows: bounded lock waits, timed."""
        started = time.monotonic()
        conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
        try:
            yield
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            self.outcome.longest_tx_s = max(self.outcome.longest_tx_s, time.monotonic() - started)

    def _touch(self, table: str) -> str:
        return ", updated_at = now()" if table in self._updated_at else ""

    def _tables_with_updated_at(self, conn: Connection) -> frozenset[str]:
        found = conn.scalars(
            text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'updated_at'"
            )
        ).all()
        conn.commit()
        return frozenset(found)

    def _count(self, table: str, n: int) -> None:
        if n:
            self.outcome.marked[table] = self.outcome.marked.get(table, 0) + n


def _array(ids: Sequence[object]) -> str:
    """One array literal, not a bound list: psycopg2 would quote every element separately."""
    return "{" + ",".join(str(i) for i in ids) + "}"
