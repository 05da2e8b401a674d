"""Load Plane's schema-only dump (`plane_schema.sql`) into an empty PostgreSQL database.

The dump is the one in `../shared/plane-schema` (pg_dump 15 of a database built by Plane's own
migrations). It is meant for psql; this module sends it over psycopg2 instead, after removing the
`\\restrict` / `\\unrestrict` psql meta-command lines that a server rejects. The dump sets
`search_path` to '' for its session and qualifies every name with `public.`, so it is loaded on a
connection of its own that is closed afterwards.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from shared.db.engine import normalise_url

ENV_VAR = "PLANE_SCHEMA_SQL"
_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQL_PATH = _REPO_ROOT.parent / "shared" / "plane-schema" / "plane_schema.sql"

_RESTRICT_LINE = re.compile(r"^\\(?:un)?restrict\b.*\n?", re.MULTILINE)
_META_LINE = re.compile(r"^\\.*$", re.MULTILINE)
_CREATE_TABLE = re.compile(r"^CREATE TABLE (?:public\.)?\"?(\w+)\"? \(", re.MULTILINE)


class PlaneSchemaError(RuntimeError):
    """The dump cannot be loaded: the target is not empty, or the file is not a plain SQL dump."""


def find_plane_schema_sql() -> Path | None:
    """Where Plane's dump is: `$PLANE_SCHEMA_SQL`, else `<repo>/../shared/plane-schema/`.

    Returns None when the variable is unset and the default file is absent (callers may then fall
    back to `PlaneBase.metadata.create_all`). A variable that names a missing file is an error.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={configured!r} is not a file")
        return path
    return DEFAULT_SQL_PATH if DEFAULT_SQL_PATH.is_file() else None


def read_plane_schema_sql(sql_path: Path) -> str:
    """The dump's SQL, ready for a driver: psql's `\\restrict`/`\\unrestrict` lines removed."""
    sql = _RESTRICT_LINE.sub("", sql_path.read_text(encoding="utf-8"))
    leftover = _META_LINE.search(sql)
    if leftover:
        raise PlaneSchemaError(
            f"{sql_path}: psql meta-command {leftover.group(0)[:40]!r} cannot be sent to a server"
        )
    return sql


def load_plane_schema(url: str, sql_path: Path) -> None:
    """Create Plane's tables in the empty database at `url`, in one transaction.

    Raises PlaneSchemaError, before changing anything, if any of the dump's tables already exists
    in `public` (loading twice would fail halfway through otherwise).
    """
    sql = read_plane_schema_sql(sql_path)
    dump_tables = set(_CREATE_TABLE.findall(sql))
    if not dump_tables:
        raise PlaneSchemaError(f"{sql_path}: no CREATE TABLE statements; not a Plane schema dump")

    # NullPool: the dump changes session settings (search_path), so the connection is not reused.
    engine = create_engine(normalise_url(url), poolclass=NullPool)
    try:
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public'")
            existing = sorted(dump_tables & {row[0] for row in cursor.fetchall()})
            if existing:
                shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
                raise PlaneSchemaError(
                    f"database already has {len(existing)} of Plane's tables ({shown}); "
                    "load_plane_schema needs an empty database"
                )
            cursor.execute(sql)
            cursor.close()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    finally:
        engine.dispose()
