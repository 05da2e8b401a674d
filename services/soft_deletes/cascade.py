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

How, instead of one unbounded task, over as many calls as it takes (each stops at `deadline`):
0. The root is read FOR SHARE: a soft delete not committed yet (Plane queues the task inside the
   delete's transaction, without on_commit) holds the row's lock, so the read waits for it
   (ROOT_WAIT_MS; longer is a lock timeout, retried) and sees what it committed.
1. Collect: the live subtree, breadth first, into `plane_workers.soft_delete_subtree_rows`
   under one `soft_delete_subtrees` row per (root table, root id, stamp): layer n+1 is every live
   row of a soft-deletable table that a CASCADE foreign key points from a layer-n row, and was
   not found before. One statement collects one FK's children of up to COLLECT_PARENTS parents,
   at most COLLECT_ROWS of them (keyset on the child's key); up to STEP_S of such statements
   (across FKs, tables and layers) commit together with the cursor that says where the next
   one starts: collecting resumes where a call stopped, locks no row of Plane's, and a real
   table needs no session across statements (a temporary table broke under transaction
   pooling, e.g. PgBouncer).
2. Mark: layers deepest first, each table's rows in batches, one short transaction each (lock
   waits bounded) that also removes the marked rows from the collection (issues and pages are
   kept at layer -1 with their embed columns, until `deliver` has been told after commit). A row
   is only marked once every row found deeper than it is, so every unmarked row of the subtree
   keeps a live path from the root (its first-found parent is in a shallower layer, not marked
   yet), and what the collection still holds is exactly what is left to mark. A killed call,
   replayed, goes on from the collection: committed batches are gone from it, a rolled-back one
   is still there; marking only touches live rows, so nothing is done twice.
3. Finish: the root's own SET_NULL references, the root's embed delete told, then the caller's
   transaction (the handler claims its event there) drops the collection.
Every batch first re-checks the root (still soft-deleted with the same stamp, FOR SHARE): a
root restored or deleted again meanwhile stops the cascade, and a later call finding the root
live, or with another stamp, discards the old collection (after telling its pending embed
deletes) and, for a new stamp, collects anew. A collection not advanced for STALE_AFTER is
collected anew too (prune-worker-state drops discarded and long-abandoned ones).

Rows added under the subtree after their parent was collected are not reached (Plane's task has
the same window, while it walks). Two calls on one root at once (a duplicate event) do the same
idempotent statements: collecting inserts ON CONFLICT DO NOTHING, marking skips rows not live.

SET_NULL: in the batch that marks a row, live rows *outside* the subtree that point at it are
nulled. Plane nulls whichever referencing rows are still live when its walk meets the row, so
whether rows of the subtree itself lose the pointer depends on its walk order; here they keep it
(they are soft-deleted with it and restore whole).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, text

from shared.db.fk_graph import ForeignKey, Graph

log = logging.getLogger(__name__)

SoftAction = Literal["CASCADE", "SET_NULL", "SKIP"]

FIRST_BATCH = 500  # rows per marking transaction to start with, per table
MIN_BATCH, MAX_BATCH = 50, 5000
TARGET_TX_S = 0.25  # batch sizes steer towards this
COLLECT_PARENTS = 5000  # parent rows per collecting statement
COLLECT_ROWS = 10000  # child rows per collecting statement
STEP_S = 0.5  # collecting steps per transaction: until this long
LOCK_TIMEOUT_MS = 2000
ROOT_WAIT_MS = 5000  # how long reading the root waits for an uncommitted soft delete of it
STALE_AFTER = timedelta(days=1)
FLUSH_BATCH = 2000
PENDING = -1  # the layer of marked rows whose embed delete is not told yet
SUBTREES = "plane_workers.soft_delete_subtrees"
ROWS = "plane_workers.soft_delete_subtree_rows"

OnMarked = Callable[[Connection, str, Sequence[Row]], None]
OnFinish = Callable[[Connection], None]
# (table, [{"id": ..., returning columns...}], stamp): after the marking transaction committed.
Deliver = Callable[[str, list[dict[str, Any]], datetime], None]


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


class SubtreeConflict(RuntimeError):
    """Another call started a collection for the same root with another stamp (retried)."""


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
    collected: int = 0
    collect_statements: int = 0
    delivered: int = 0
    longest_tx_s: float = 0.0  # the longest transaction that wrote to Plane's tables
    longest_read_s: float = 0.0  # the longest collecting statement (no row of Plane's locked)

    @property
    def rows(self) -> int:
        return sum(self.marked.values())


@dataclass
class Subtree:
    id: int
    stamp: datetime
    phase: str
    layer: int
    cursor: dict[str, Any] | None


@dataclass
class Cascade:
    engine: Engine
    graph: Graph
    root: Root
    # Extra columns of marked rows of these tables, handed to `deliver` after commit.
    returning: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deliver: Deliver | None = None
    on_marked: OnMarked | None = None  # inside each marking transaction
    deadline: float | None = None  # time.monotonic() after which no further statement is started
    pause_s: float = 0.0  # between marking batches, to spare a busy primary
    outcome: Outcome = field(default_factory=Outcome)
    _batch: dict[str, int] = field(default_factory=dict)
    _updated_at: frozenset[str] = frozenset()
    _steps: int = 0
    _tx_began: float = 0.0

    def run(self, stamp: datetime | None = None, on_finish: OnFinish | None = None) -> Outcome:
        """Cascade the root's soft delete. `stamp` soft-deletes a still-live root first (as the
        API's model.delete() does before it calls the task); without one a live root is left."""
        with self.engine.connect() as conn:
            self._updated_at = self._tables_with_updated_at(conn)
            deleted_at = self._start(conn, stamp)
            self.outcome.deleted_at = deleted_at
            subtree = self._subtree(conn, deleted_at)
            if subtree is None:
                self.outcome.status = "live"
                return self.outcome
            self._flush(conn, subtree)  # what a killed call marked and did not tell
            if subtree.phase == "collecting" and not self._collect(conn, subtree):
                self.outcome.status = "paused"
                return self.outcome
            if self._mark(conn, subtree):
                self._finish(conn, subtree, on_finish)
            if self.outcome.status == "stopped":
                self._flush(conn, subtree)
                self._discard(conn, subtree.id)
        return self.outcome

    # -- the root ----------------------------------------------------------------------------

    def _start(self, conn: Connection, stamp: datetime | None) -> datetime | None:
        pk = q(self.graph.pk(self.root.table))
        with self._write(conn, ROOT_WAIT_MS):
            # FOR SHARE waits for a soft delete of the row that has not committed yet.
            found = conn.execute(
                text(f"SELECT deleted_at FROM {q(self.root.table)} WHERE {pk} = :id FOR SHARE"),
                {"id": self.root.pk},
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

    def _finish(self, conn: Connection, subtree: Subtree, on_finish: OnFinish | None) -> None:
        with self._write(conn):
            if not self._root_holds(conn, subtree.stamp):
                return
            pk = self.graph.pk(self.root.table)
            self._null_references(conn, subtree.id, self.root.table, [str(self.root.pk)])
            extra = self.returning.get(self.root.table)
            if extra and self.deliver is not None:
                cols = ", ".join(q(c) for c in extra)
                row = conn.execute(
                    text(f"SELECT {cols} FROM {q(self.root.table)} WHERE {q(pk)} = :id"), {"id": self.root.pk}
                ).one()
                conn.execute(
                    text(
                        f"UPDATE {ROWS} SET layer = {PENDING}, extra = CAST(:e AS jsonb) "
                        "WHERE subtree_id = :s AND layer = 0"
                    ),
                    {"s": subtree.id, "e": json.dumps(_jsonable(row._mapping))},
                )
        self._flush(conn, subtree)
        with self._write(conn):
            if on_finish is not None:
                on_finish(conn)
            conn.execute(text(f"DELETE FROM {ROWS} WHERE subtree_id = :s"), {"s": subtree.id})
            conn.execute(text(f"DELETE FROM {SUBTREES} WHERE id = :s"), {"s": subtree.id})

    # -- the collection ----------------------------------------------------------------------

    def _subtree(self, conn: Connection, deleted_at: datetime | None) -> Subtree | None:
        """The root's collection for `deleted_at`: the one left by an earlier call, or a new one.
        One for another stamp (or none: the root is live), or not advanced for STALE_AFTER, is
        discarded, its pending embed deletes told first."""
        key = {"t": self.root.table, "i": str(self.root.pk)}
        select = text(
            f"SELECT id, stamp, phase, layer, cursor, updated_at < now() - :stale AS stale FROM {SUBTREES} "
            "WHERE root_table = :t AND root_id = :i AND phase <> 'discarded'"
        )
        found = conn.execute(select, {**key, "stale": STALE_AFTER}).first()
        conn.commit()
        if found is not None and (deleted_at is None or found.stamp != deleted_at or found.stale):
            old = Subtree(found.id, found.stamp, found.phase, found.layer, found.cursor)
            self._flush(conn, old)
            self._discard(conn, old.id)
            found = None
        if deleted_at is None:
            return None
        if found is None:
            conn.execute(
                text(
                    f"INSERT INTO {SUBTREES} (root_table, root_id, stamp, phase) "
                    "VALUES (:t, :i, :d, 'collecting') ON CONFLICT DO NOTHING"
                ),
                {**key, "d": deleted_at},
            )
            found = conn.execute(select, {**key, "stale": STALE_AFTER}).one()
            conn.execute(
                text(
                    f"INSERT INTO {ROWS} (subtree_id, tbl, id, layer) VALUES (:s, :t, :i, 0) "
                    "ON CONFLICT DO NOTHING"
                ),
                {**key, "s": found.id},
            )
            conn.commit()
            if found.stamp != deleted_at:
                raise SubtreeConflict(
                    f"{self.root.table} {self.root.pk}: collected for {found.stamp} meanwhile"
                )
        return Subtree(found.id, found.stamp, found.phase, found.layer, found.cursor)

    def _discard(self, conn: Connection, subtree_id: int) -> None:
        conn.execute(
            text(f"UPDATE {SUBTREES} SET phase = 'discarded', updated_at = now() WHERE id = :s"),
            {"s": subtree_id},
        )
        conn.commit()

    def _flush(self, conn: Connection, subtree: Subtree) -> None:
        """Tell `deliver` the marked rows still pending, then forget them (told at least once)."""
        while True:
            pending = conn.execute(
                text(
                    f"SELECT tbl, id, extra FROM {ROWS} WHERE subtree_id = :s AND layer = {PENDING} "
                    "ORDER BY tbl, id LIMIT :n"
                ),
                {"s": subtree.id, "n": FLUSH_BATCH},
            ).all()
            conn.commit()
            if not pending:
                return
            by_table: dict[str, list[dict[str, Any]]] = {}
            for row in pending:
                by_table.setdefault(row.tbl, []).append({**(row.extra or {}), "id": row.id})
            for table, rows in by_table.items():
                if self.deliver is not None:
                    self.deliver(table, rows, subtree.stamp)
                    self.outcome.delivered += len(rows)
                conn.execute(
                    text(
                        f"DELETE FROM {ROWS} WHERE subtree_id = :s AND layer = {PENDING} "
                        "AND tbl = :t AND id = ANY(CAST(:ids AS text[]))"
                    ),
                    {"s": subtree.id, "t": table, "ids": _array(r["id"] for r in rows)},
                )
            conn.commit()
            if len(pending) < FLUSH_BATCH:
                return

    # -- 1. collect --------------------------------------------------------------------------

    def _collect(self, conn: Connection, subtree: Subtree) -> bool:
        """Advance the collection statement by statement; True once it is complete."""
        self._tx_began = time.monotonic()
        while subtree.phase == "collecting":
            if self._out_of_time():
                conn.commit()
                return False
            self._collect_step(conn, subtree)
            self._steps += 1
            if time.monotonic() - self._tx_began > STEP_S:
                conn.commit()  # the steps' rows with the cursor after them
                self._tx_began = time.monotonic()
        conn.commit()
        if self.outcome.collected > 1000:
            conn.execute(text(f"ANALYZE {ROWS}"))  # the planner sees its real size
            conn.commit()
        return True

    def _cascading(self, table: str) -> list[ForeignKey]:
        fks = [fk for fk in self.graph.referencing.get(table, ()) if soft_action(fk, self.graph) == "CASCADE"]
        return sorted(fks, key=lambda fk: (fk.child, fk.column))

    def _collect_step(self, conn: Connection, subtree: Subtree) -> None:
        """One unit of collecting, committed with the cursor that follows it. The cursor: parent
        table `tbl`, its chunk (the COLLECT_PARENTS ids after `lo`), the FK `fk` (child, column)
        and, within a large fan-out, the last child key collected (`after`)."""
        layer, cursor = subtree.layer, dict(subtree.cursor or {})
        if not cursor:
            first = self._next_table(conn, subtree.id, layer, "")
            cursor = {"tbl": first, "lo": "", "fk": None, "after": None}
        parents = self._parents(conn, subtree.id, layer, cursor["tbl"], cursor["lo"])
        fks = self._cascading(cursor["tbl"])
        keys = [[fk.child, fk.column] for fk in fks]
        position = keys.index(cursor["fk"]) if cursor["fk"] in keys else 0
        if parents and fks:
            # The chunk's FKs one after another in one transaction, for up to STEP_S (a small
            # subtree is collected in few commits); one that finds COLLECT_ROWS ends it there.
            after = cursor["after"]
            while True:
                found, last = self._collect_children(conn, subtree.id, fks[position], layer, parents, after)
                if found >= COLLECT_ROWS:
                    cursor.update(fk=keys[position], after=last)  # more children of this FK
                    return self._advance(conn, subtree, layer, cursor)
                position, after = position + 1, None
                if position == len(fks):
                    break
                if time.monotonic() - self._tx_began > STEP_S or self._past_deadline():
                    cursor.update(fk=keys[position], after=None)
                    return self._advance(conn, subtree, layer, cursor)
        # This chunk is done: the next one, the next table, or the next layer.
        if len(parents) == COLLECT_PARENTS:
            cursor = {"tbl": cursor["tbl"], "lo": parents[-1], "fk": None, "after": None}
            return self._advance(conn, subtree, layer, cursor)
        following = self._next_table(conn, subtree.id, layer, cursor["tbl"])
        if following is not None:
            return self._advance(
                conn, subtree, layer, {"tbl": following, "lo": "", "fk": None, "after": None}
            )
        deeper = conn.scalar(
            text(f"SELECT 1 FROM {ROWS} WHERE subtree_id = :s AND layer = :l LIMIT 1"),
            {"s": subtree.id, "l": layer + 1},
        )
        if deeper:
            return self._advance(conn, subtree, layer + 1, None)
        return self._advance(conn, subtree, layer, None, phase="marking")

    def _advance(
        self,
        conn: Connection,
        subtree: Subtree,
        layer: int,
        cursor: dict[str, Any] | None,
        phase: str = "collecting",
    ) -> None:
        conn.execute(
            text(
                f"UPDATE {SUBTREES} SET layer = :l, cursor = CAST(:c AS jsonb), phase = :p, "
                "updated_at = now() "
                "WHERE id = :s AND phase = 'collecting'"
            ),
            {"s": subtree.id, "l": layer, "c": None if cursor is None else json.dumps(cursor), "p": phase},
        )
        subtree.layer, subtree.cursor, subtree.phase = layer, cursor, phase  # committed by _collect

    def _next_table(self, conn: Connection, subtree_id: int, layer: int, after: str) -> str | None:
        return conn.scalar(
            text(f"SELECT min(tbl) FROM {ROWS} WHERE subtree_id = :s AND layer = :l AND tbl > :a"),
            {"s": subtree_id, "l": layer, "a": after},
        )

    def _parents(
        self, conn: Connection, subtree_id: int, layer: int, table: str | None, lo: str
    ) -> list[str]:
        if table is None:
            return []
        return list(
            conn.scalars(
                text(
                    f"SELECT id FROM {ROWS} WHERE subtree_id = :s AND layer = :l AND tbl = :t AND id > :lo "
                    "ORDER BY id LIMIT :n"
                ),
                {"s": subtree_id, "l": layer, "t": table, "lo": lo, "n": COLLECT_PARENTS},
            )
        )

    def _collect_children(
        self,
        conn: Connection,
        subtree_id: int,
        fk: ForeignKey,
        layer: int,
        parents: list[str],
        after: str | None,
    ) -> tuple[int, str | None]:
        """Up to COLLECT_ROWS live children by `fk` of `parents`, in the child's key order after
        `after`; returns how many were found and the last key."""
        child_pk = q(self.graph.pk(fk.child))
        parent_pk, parent_kind = self.graph.pk(fk.parent), self.graph.primary_key_type.get(fk.parent, "uuid")
        child_kind = self.graph.primary_key_type.get(fk.child, "uuid")
        ids = f"CAST(:parents AS {parent_kind}[])"
        if fk.parent_column == parent_pk:
            match = f"c.{q(fk.column)} = ANY({ids})"
        else:  # a foreign key to another unique column of the parent
            match = (
                f"c.{q(fk.column)} IN (SELECT {q(fk.parent_column)} FROM {q(fk.parent)} "
                f"WHERE {q(parent_pk)} = ANY({ids}))"
            )
        keyset = "" if after is None else f"AND c.{child_pk} > CAST(:after AS {child_kind})"
        sql = (
            f"WITH found AS (SELECT c.{child_pk} AS k FROM {q(fk.child)} c "
            f"WHERE {match} AND c.deleted_at IS NULL {keyset} ORDER BY c.{child_pk} LIMIT :n), "
            f"added AS (INSERT INTO {ROWS} (subtree_id, tbl, id, layer) "
            "SELECT :s, CAST(:child AS text), k::text, CAST(:next AS int) FROM found "
            "ON CONFLICT DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM found) AS found, (SELECT count(*) FROM added) AS added, "
            "(SELECT k::text FROM found ORDER BY k DESC LIMIT 1) AS last"
        )
        started = time.monotonic()
        row = conn.execute(
            text(sql),
            {"s": subtree_id, "child": fk.child, "next": layer + 1, "parents": _array(parents),
             "after": after, "n": COLLECT_ROWS},
        ).one()  # fmt: skip
        self.outcome.longest_read_s = max(self.outcome.longest_read_s, time.monotonic() - started)
        self.outcome.collected += row.added
        self.outcome.collect_statements += 1
        return row.found, row.last

    # -- 2. mark -----------------------------------------------------------------------------

    def _mark(self, conn: Connection, subtree: Subtree) -> bool:
        """Mark layers deepest first; False when stopped or paused before the end."""
        layer = subtree.layer
        while layer >= 1:
            table = self._next_table(conn, subtree.id, layer, "")
            if table is None:
                conn.commit()
                layer -= 1
                continue
            ids = conn.scalars(
                text(
                    f"SELECT id FROM {ROWS} WHERE subtree_id = :s AND layer = :l AND tbl = :t "
                    "ORDER BY id LIMIT :n"
                ),
                {"s": subtree.id, "l": layer, "t": table, "n": self._batch.get(table, FIRST_BATCH)},
            ).all()
            conn.commit()
            if self._out_of_time():
                self.outcome.status = "paused"
                return False
            if not self._mark_batch(conn, subtree, table, ids):
                return False
            self._steps += 1
            if table in self.returning:
                self._flush(conn, subtree)
            if self.pause_s:
                time.sleep(self.pause_s)
        return True

    def _mark_batch(self, conn: Connection, subtree: Subtree, table: str, ids: Sequence[str]) -> bool:
        pk, kind = self.graph.pk(table), self.graph.primary_key_type.get(table, "uuid")
        extra = self.returning.get(table, ()) if self.deliver is not None else ()
        cols = ", ".join([f"{q(pk)}::text AS id", *(q(c) for c in extra)])
        started = time.monotonic()
        with self._write(conn):
            if not self._root_holds(conn, subtree.stamp):
                return False
            rows = conn.execute(
                text(
                    f"UPDATE {q(table)} SET deleted_at = :d{self._touch(table)} "
                    f"WHERE {q(pk)} = ANY(CAST(:ids AS {kind}[])) AND deleted_at IS NULL RETURNING {cols}"
                ),
                {"d": subtree.stamp, "ids": _array(ids)},
            ).all()
            if rows:
                self._null_references(conn, subtree.id, table, [r.id for r in rows])
            if rows and extra:  # kept until told (layer -1), in the transaction that marked them
                pending = {r.id: _jsonable({c: r._mapping[c] for c in extra}) for r in rows}
                conn.execute(
                    text(
                        f"UPDATE {ROWS} r SET layer = {PENDING}, extra = e.value "
                        "FROM jsonb_each(CAST(:m AS jsonb)) e "
                        "WHERE r.subtree_id = :s AND r.tbl = :t AND r.id = e.key"
                    ),
                    {"s": subtree.id, "t": table, "m": json.dumps(pending)},
                )
            conn.execute(
                text(
                    f"DELETE FROM {ROWS} WHERE subtree_id = :s AND tbl = :t AND layer <> {PENDING} "
                    "AND id = ANY(CAST(:ids AS text[]))"
                ),
                {"s": subtree.id, "t": table, "ids": _array(ids)},
            )
            if not self.outcome.batches:  # advanced this call (prune drops the abandoned ones)
                conn.execute(
                    text(f"UPDATE {SUBTREES} SET updated_at = now() WHERE id = :s"), {"s": subtree.id}
                )
            if self.on_marked is not None:
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

    def _null_references(self, conn: Connection, subtree_id: int, table: str, ids: list[str]) -> None:
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
                    f"(SELECT 1 FROM {ROWS} s WHERE s.subtree_id = :s AND s.tbl = :c "
                    f"AND s.id = x.{child_pk}::text)"
                ),
                {"ids": _array(ids), "c": fk.child, "s": subtree_id},
            ).rowcount

    # -- helpers -----------------------------------------------------------------------------

    def _out_of_time(self) -> bool:
        """Past the deadline, once this call has done something (every call makes progress)."""
        return self._past_deadline() and self._steps > 0

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    @contextlib.contextmanager
    def _write(self, conn: Connection, lock_timeout_ms: int = LOCK_TIMEOUT_MS) -> Iterator[None]:
        """One transaction that writes Plane's rows: bounded lock waits, timed."""
        started = time.monotonic()
        conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
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


def _array(ids: Iterable[object]) -> str:
    """One array literal, not a bound list: psycopg2 would quote every element separately."""
    return "{" + ",".join(str(i) for i in ids) + "}"


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: None if v is None else str(v) for k, v in values.items()}
