"""INSERT one row into any of Plane's tables, the NOT NULL columns we do not name filled neutrally.

Plane's columns carry no database defaults (Django sets them in Python), and the seed touches
eighteen tables. The caller names every value Plane's model would set that matters (names,
flags whose Django default is not false/0/''/{}); the rest get the neutral value of their type,
read once per table from the catalog, which is what Django's defaults are for those columns.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_CATALOG = text(
    """
    SELECT column_name, data_type, is_nullable = 'NO' AND column_default IS NULL
    FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name = :t
    """
)

_NEUTRAL: dict[str, Any] = {
    "uuid": None,  # no neutral id: a NOT NULL uuid the caller did not name is a bug
    "text": "",
    "character varying": "",
    "integer": 0,
    "smallint": 0,
    "bigint": 0,
    "double precision": 0.0,
    "boolean": False,
    "jsonb": {},
    "ARRAY": [],
}

_columns: dict[str, dict[str, tuple[str, bool]]] = {}


def _table(session: Session, table: str) -> dict[str, tuple[str, bool]]:
    if table not in _columns:
        rows = session.execute(_CATALOG, {"t": table}).all()
        if not rows:
            raise LookupError(f"table {table} is not in Plane's schema")
        _columns[table] = {name: (kind, required) for name, kind, required in rows}
    return _columns[table]


def insert(session: Session, table: str, now: datetime, **values: Any) -> uuid.UUID:
    """Insert one row (a fresh UUID v4 id, created_at = updated_at = now); returns its id."""
    columns = _table(session, table)
    row: dict[str, Any] = {"id": uuid.uuid4(), "created_at": now, "updated_at": now, **values}
    for name, (kind, required) in columns.items():
        if required and name not in row:
            if _NEUTRAL.get(kind) is None:
                raise ValueError(f"{table}.{name} ({kind}) needs a value")
            row[name] = _NEUTRAL[kind]
    unknown = set(row) - set(columns)
    if unknown:
        raise ValueError(f"{table} has no columns {sorted(unknown)}")
    names, params = [], []
    bound: dict[str, Any] = {}
    for i, (name, value) in enumerate(row.items()):
        kind = columns[name][0]
        names.append(f'"{name}"')
        if kind in ("jsonb", "json"):
            params.append(f"CAST(:p{i} AS jsonb)")
            value = None if value is None else json.dumps(value)
        elif kind == "ARRAY":
            params.append(f"CAST(:p{i} AS varchar[])")
        else:
            params.append(f":p{i}")
        bound[f"p{i}"] = value
    session.execute(text(f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join(params)})'), bound)
    return row["id"]
