"""migrate-workspace, the plan: which rows are the workspace's, in which order tables are copied,
which columns wait for a second pass, and the checks on the target (see migrate_workspace.py).

Membership (read-only on the source, a TEMP table of one session, so a rerun collects again):
the workspace row; then, until nothing new is found, every row whose foreign key (any column,
deleted rows included) points at a collected row. `users` (SHARED) is never entered: a user
belongs to the instance, not the workspace (through users.avatar_asset_id everything would be
reached). The users the collected rows point at are collected apart, as referenced rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter

from sqlalchemy import Connection, text

from shared.db.fk_graph import ForeignKey, Graph

SHARED = frozenset({"users"})
ROWS = "pg_temp.migrate_workspace_rows"


class MigrateError(RuntimeError):
    """A refusal with a one-line reason (bad slug, a target without the schema, ...)."""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Plan:
    tables: list[str]  # subtree tables, parents before children (deferred FKs aside)
    counts: dict[str, int]  # rows per table (users: referenced users)
    deferred: dict[str, tuple[str, ...]]  # columns inserted NULL, set in the link pass
    users_nulled: tuple[str, ...]  # users' FK columns to other tables, left NULL in the target


def collect(conn: Connection, graph: Graph, workspace_id: str) -> dict[str, int]:
    """Fill the session's TEMP table with (table, id::text) of the subtree; rows per table."""
    conn.execute(text(f"DROP TABLE IF EXISTS {ROWS}"))
    conn.execute(text(f"CREATE TEMP TABLE {ROWS.split('.')[1]} (tbl text, id text, PRIMARY KEY (tbl, id))"))
    conn.execute(text(f"INSERT INTO {ROWS} VALUES ('workspaces', :w)"), {"w": workspace_id})
    work, members = ["workspaces"], {"workspaces"}
    while work:
        parent = work.pop()
        for fk in graph.referencing.get(parent, ()):
            if fk.child in SHARED:
                continue
            added = conn.execute(
                text(
                    f"INSERT INTO {ROWS} SELECT CAST(:c AS text), c.{q(graph.pk(fk.child))}::text "
                    f"FROM {q(fk.child)} c WHERE {_points_at(graph, fk)} ON CONFLICT DO NOTHING"
                ),
                {"c": fk.child, "p": parent},
            ).rowcount
            if added:
                members.add(fk.child)
                if fk.child not in work:
                    work.append(fk.child)
    for table in sorted(members):  # the users the subtree points at
        for fk in _fks_from(graph, table):
            if fk.parent in SHARED and fk.parent_column == graph.pk(fk.parent):
                kind = graph.primary_key_type.get(table, "uuid")
                conn.execute(
                    text(
                        f"INSERT INTO {ROWS} SELECT CAST(:u AS text), c.{q(fk.column)}::text "
                        f"FROM {q(table)} c JOIN {ROWS} m ON m.tbl = :t "
                        f"AND c.{q(graph.pk(table))} = CAST(m.id AS {kind}) "
                        f"WHERE c.{q(fk.column)} IS NOT NULL ON CONFLICT DO NOTHING"
                    ),
                    {"u": fk.parent, "t": table},
                )
    conn.execute(text(f"ANALYZE {ROWS}"))
    return {r.tbl: r.n for r in conn.execute(text(f"SELECT tbl, count(*) AS n FROM {ROWS} GROUP BY tbl"))}


def _points_at(graph: Graph, fk: ForeignKey) -> str:
    kind, pk = graph.primary_key_type.get(fk.parent, "uuid"), graph.pk(fk.parent)
    if fk.parent_column == pk:
        return f"c.{q(fk.column)} IN (SELECT CAST(m.id AS {kind}) FROM {ROWS} m WHERE m.tbl = :p)"
    return (
        f"c.{q(fk.column)} IN (SELECT x.{q(fk.parent_column)} FROM {q(fk.parent)} x "
        f"JOIN {ROWS} m ON m.tbl = :p AND x.{q(pk)} = CAST(m.id AS {kind}))"
    )


def _fks_from(graph: Graph, table: str) -> list[ForeignKey]:
    return [fk for fks in graph.referencing.values() for fk in fks if fk.child == table]


def plan(graph: Graph, counts: dict[str, int]) -> Plan:
    """Copy order and deferred columns. A foreign key inside a cycle of subtree tables (a
    self-reference such as issues.parent_id, or projects.default_state_id <-> states.project_id)
    cannot be satisfied batch by batch in key order: its column is inserted NULL and set once
    every table is copied. Every other FK's parent table is copied before its child."""
    tables = sorted(t for t in counts if t not in SHARED)
    edges: dict[str, set[str]] = defaultdict(set)  # child -> parents
    fks = {t: _fks_from(graph, t) for t in tables}
    for t in tables:
        edges[t] = {fk.parent for fk in fks[t] if fk.parent in counts and fk.parent not in SHARED}
    component = _components(tables, edges)
    # Edges kept for ordering: every FK between components, and NOT NULL ones inside a cycle;
    # then each nullable FK inside a cycle, unless it would close one (self-references never).
    needs: dict[str, set[str]] = defaultdict(set)
    optional: list[ForeignKey] = []
    for t in tables:
        for fk in fks[t]:
            if fk.parent not in edges or fk.parent in SHARED:
                continue
            if component[fk.parent] != component[t] or (not fk.nullable and fk.parent != t):
                needs[t].add(fk.parent)
            elif fk.nullable:
                optional.append(fk)
            else:
                raise MigrateError(f"{t}.{fk.column}: a NOT NULL self-reference; cannot order")
    deferred_cols: dict[str, set[str]] = defaultdict(set)
    for fk in sorted(optional, key=lambda f: (f.child, f.column)):
        if fk.parent != fk.child and not _reaches(needs, fk.parent, fk.child):
            needs[fk.child].add(fk.parent)
        else:
            deferred_cols[fk.child].add(fk.column)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for t in tables:
        sorter.add(t, *sorted(needs[t]))
    try:
        order = list(sorter.static_order())
    except CycleError as exc:
        raise MigrateError(f"a cycle of NOT NULL foreign keys: {exc.args[1]}") from None
    deferred = {t: tuple(sorted(c)) for t, c in deferred_cols.items()}
    users_nulled = tuple(
        sorted({fk.column for u in SHARED for fk in _fks_from(graph, u) if fk.parent not in SHARED})
    )
    return Plan(order, counts, deferred, users_nulled)


def _reaches(needs: dict[str, set[str]], start: str, goal: str) -> bool:
    """Does `start` depend on `goal`, directly or through other tables?"""
    seen, todo = {start}, [start]
    while todo:
        for parent in needs.get(todo.pop(), ()):
            if parent == goal:
                return True
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return False


def _components(nodes: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    """Strongly connected components (Tarjan, iterative): node -> component number."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: dict[str, int] = {}
    counter = 0
    for root in nodes:
        if root in index:
            continue
        todo = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while todo:
            node, children = todo[-1]
            child = next(children, None)
            if child is None:
                todo.pop()
                if todo:
                    low[todo[-1][0]] = min(low[todo[-1][0]], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        out[member] = index[node]
                        if member == node:
                            break
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                todo.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


COLUMNS = text(
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
    "AND is_generated = 'NEVER' ORDER BY table_name, ordinal_position"
)


def columns(conn: Connection) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for row in conn.execute(COLUMNS):
        found[row.table_name].add(row.column_name)
    return found


def check_target(source: dict[str, set[str]], target: dict[str, set[str]], tables: list[str]) -> None:
    """Columns match by name: a table or column the target lacks (or has beyond the source's)
    is refused before anything is written."""
    for t in tables:
        if t not in target:
            raise MigrateError(
                f"MIGRATE_TARGET_DATABASE_URL: the target has no table {t} (not Plane's schema?)"
            )
        missing, extra = source[t] - target[t], target[t] - source[t]
        if missing:
            raise MigrateError(
                f"MIGRATE_TARGET_DATABASE_URL: target table {t} lacks column(s) {sorted(missing)}"
            )
        if extra:
            raise MigrateError(
                f"MIGRATE_TARGET_DATABASE_URL: target table {t} has extra column(s) {sorted(extra)}"
            )
