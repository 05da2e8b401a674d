"""Plane's foreign-key graph, read from the live database and annotated with Django's on_delete.

Plane's FKs carry no ON DELETE in PostgreSQL: Django's collector cascades in Python. Reading the
graph from `pg_constraint` (not from our models) means a table added by a later Plane migration is
still seen; its on_delete comes from `plane_on_delete.ON_DELETE`, or, for an FK that table does not
know yet, from the column's nullability (logged, so the table can be extended).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, text

from shared.db.plane_on_delete import ON_DELETE

log = logging.getLogger(__name__)

Action = Literal["CASCADE", "SET_NULL"]

FOREIGN_KEYS = text(
    """
    SELECT child.relname AS child, ca.attname AS column, parent.relname AS parent,
           pa.attname AS parent_column, NOT ca.attnotnull AS nullable
    FROM pg_constraint c
    JOIN pg_class child ON child.oid = c.conrelid
    JOIN pg_class parent ON parent.oid = c.confrelid
    JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = c.conkey[1]
    JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
    WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
      AND cardinality(c.conkey) = 1
    ORDER BY child.relname, ca.attname
    """
)
SOFT_DELETABLE = text(
    """
    SELECT table_name FROM information_schema.columns
    WHERE table_schema = 'public' AND column_name = 'deleted_at'
    """
)
PRIMARY_KEYS = text(
    """
    SELECT cls.relname, a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_index i
    JOIN pg_class cls ON cls.oid = i.indrelid
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indisprimary AND cls.relnamespace = 'public'::regnamespace AND i.indnatts = 1
    """
)


@dataclass(frozen=True)
class ForeignKey:
    child: str
    column: str
    parent: str
    parent_column: str
    nullable: bool
    django: str  # Plane's on_delete, or "unknown"

    @property
    def action(self) -> Action:
        """What deleting the parent does to child rows, in SQL terms.

        DO_NOTHING (issue_activities.issue/issue_comment) would leave a dangling reference that
        fails at commit: that is Plane's own hard_delete crash. Nulling it keeps the activity row,
        which is what DO_NOTHING was chosen for; a NOT NULL one can only go with its parent.
        """
        if self.django in ("SET_NULL", "DO_NOTHING", "unknown") and self.nullable:
            return "SET_NULL"
        return "CASCADE"


@dataclass(frozen=True)
class Graph:
    referencing: dict[str, tuple[ForeignKey, ...]]  # parent table -> FKs pointing at it
    soft_deletable: frozenset[str]
    primary_key: dict[str, str]
    primary_key_type: dict[str, str]

    def pk(self, table: str) -> str:
        return self.primary_key.get(table, "id")

    def children_first(self) -> list[str]:
        """Soft-deletable tables, each after every table that cascades from it where possible.

        Purging leaves first keeps each batch's cascade small; cycles (self-references) are fine
        because the order only affects speed, never the set of rows deleted.
        """
        from graphlib import CycleError, TopologicalSorter

        sorter: TopologicalSorter[str] = TopologicalSorter()
        for table in sorted(self.soft_deletable):
            children = {
                fk.child
                for fk in self.referencing.get(table, ())
                if fk.action == "CASCADE" and fk.child in self.soft_deletable and fk.child != table
            }
            sorter.add(table, *sorted(children))  # children before parents
        try:
            return [t for t in sorter.static_order() if t in self.soft_deletable]
        except CycleError:
            log.warning("cascade cycle between soft-deletable tables; purging in name order")
            return sorted(self.soft_deletable)


def load_graph(conn: Connection) -> Graph:
    referencing: dict[str, list[ForeignKey]] = defaultdict(list)
    for row in conn.execute(FOREIGN_KEYS):
        django = ON_DELETE.get((row.child, row.column), "unknown")
        if django == "unknown":
            log.warning(
                "no on_delete known for %s.%s; nullable -> SET NULL, else CASCADE", row.child, row.column
            )
        fk = ForeignKey(row.child, row.column, row.parent, row.parent_column, row.nullable, django)
        referencing[fk.parent].append(fk)
    soft = frozenset(conn.scalars(SOFT_DELETABLE))
    keys = conn.execute(PRIMARY_KEYS).all()
    pks = {table: column for table, column, _ in keys}
    pk_types = {table: kind for table, _, kind in keys}
    return Graph({p: tuple(fks) for p, fks in referencing.items()}, soft, pks, pk_types)
