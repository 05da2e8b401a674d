"""Rows for any of Plane's tables, NOT NULL columns filled from the live catalog.

Plane's columns have no database defaults, so a test or benchmark touching many tables (hard-delete
walks all of them) would otherwise need a builder per model. Here the caller names the columns that
matter (keys, foreign keys, unique values, timestamps) and every other NOT NULL column gets a
neutral value of its type. Inserts go set-based (`INSERT ... SELECT ... generate_series`), so a
benchmark can seed a million rows in seconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text

COLUMNS = text(
    """
    SELECT column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name = :t AND is_nullable = 'NO' AND column_default IS NULL
    ORDER BY ordinal_position
    """
)

NEUTRAL = {
    "uuid": "gen_random_uuid()",
    "text": "''",
    "character varying": "''",
    "integer": "0",
    "smallint": "0",
    "bigint": "0",
    "double precision": "0",
    "real": "0",
    "numeric": "0",
    "boolean": "false",
    "jsonb": "'{}'::jsonb",
    "json": "'{}'::json",
    "timestamp with time zone": "now()",
    "date": "current_date",
    "time without time zone": "'00:00'",
    "ARRAY": "'{}'",
    "bytea": "''::bytea",
    "inet": "'127.0.0.1'",
    "interval": "'0'",
}


def required_columns(conn: Connection, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind in conn.execute(COLUMNS, {"t": table})]


def insert_statement(conn: Connection, table: str, exprs: dict[str, str], source: str) -> str:
    """The SQL of `INSERT INTO table SELECT exprs FROM source`, other NOT NULL columns neutral."""
    columns = {"id": "gen_random_uuid()", **exprs}
    for name, kind in required_columns(conn, table):
        if name not in columns:
            if kind not in NEUTRAL:
                raise ValueError(f"{table}.{name}: no neutral value for type {kind}")
            columns[name] = NEUTRAL[kind]
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) SELECT {", ".join(columns.values())} FROM {source}'


def insert_select(
    conn: Connection, table: str, exprs: dict[str, str], source: str, params: dict[str, Any]
) -> int:
    """`INSERT INTO table SELECT exprs FROM source`; other NOT NULL columns get neutral values."""
    return conn.execute(text(insert_statement(conn, table, exprs, source)), params).rowcount


def insert_many(conn: Connection, table: str, n: int, exprs: dict[str, str], params: dict[str, Any]) -> int:
    """Insert `n` rows: `exprs` are SQL expressions per column (may use `g`, 1..n, and :params)."""
    return insert_select(conn, table, exprs, "generate_series(1, :n) AS g", {**params, "n": n})


def insert_one(conn: Connection, table: str, **values: Any) -> Any:
    """Insert one row with `values` bound as parameters; returns its id."""
    exprs = {name: f"CAST(:{name} AS {_cast(conn, table, name)})" for name in values}
    exprs.setdefault("id", "gen_random_uuid()")
    columns = dict(exprs)
    for name, kind in required_columns(conn, table):
        columns.setdefault(name, NEUTRAL[kind])
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(columns.values())}) RETURNING id'
    return conn.execute(text(sql), values).scalar_one()


def insert_user(conn: Connection, **values: Any) -> Any:
    """A user with a unique username and e-mail (both are unique in Plane's schema)."""
    tag = uuid.uuid4().hex[:12]
    return insert_one(conn, "users", **{"username": f"u{tag}", "email": f"{tag}@example.com", **values})


def _cast(conn: Connection, table: str, column: str) -> str:
    kind = conn.scalar(
        text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attname = :c"
        ),
        {"t": f'public."{table}"', "c": column},
    )
    if kind is None:
        raise ValueError(f"{table} has no column {column}")
    return str(kind)
