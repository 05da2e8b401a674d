"""Loading the dump, finding it, and the create_all fallback's own lifecycle."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect

from shared.db.base import PlaneBase
from shared.db.plane import PLANE_MODELS
from shared.db.plane_schema import (
    DEFAULT_SQL_PATH,
    ENV_VAR,
    PlaneSchemaError,
    find_plane_schema_sql,
    load_plane_schema,
    read_plane_schema_sql,
)


def test_dump_loads_all_of_plane(plane_engine: Engine, plane_schema_sql: Path) -> None:
    loaded = set(inspect(plane_engine).get_table_names())
    assert {model.__tablename__ for model in PLANE_MODELS} <= loaded
    listing = plane_schema_sql.parent / "tables.txt"  # shipped next to the dump
    if listing.is_file():
        assert loaded == set(listing.read_text().split())


def test_loading_twice_is_refused(plane_db: str, plane_schema_sql: Path) -> None:
    with pytest.raises(PlaneSchemaError, match=r"already has 110 of Plane's tables"):
        load_plane_schema(plane_db, plane_schema_sql)


def test_psql_meta_lines_are_stripped(plane_schema_sql: Path) -> None:
    assert "\\restrict" in plane_schema_sql.read_text()
    sql = read_plane_schema_sql(plane_schema_sql)
    assert not [line for line in sql.splitlines() if line.startswith("\\")]
    assert "CREATE TABLE public.workspaces (" in sql


def test_other_psql_meta_commands_are_rejected(tmp_path: Path) -> None:
    dump = tmp_path / "dump.sql"
    dump.write_text("\\restrict k\nCREATE TABLE public.t (id int);\n\\connect other\n")
    with pytest.raises(PlaneSchemaError, match="connect"):
        read_plane_schema_sql(dump)


def test_find_uses_env_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    custom = tmp_path / "plane.sql"
    custom.write_text("-- empty\n")
    monkeypatch.setenv(ENV_VAR, str(custom))
    assert find_plane_schema_sql() == custom

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.sql"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        find_plane_schema_sql()

    monkeypatch.delenv(ENV_VAR)
    assert DEFAULT_SQL_PATH.name == "plane_schema.sql"
    assert find_plane_schema_sql() == (DEFAULT_SQL_PATH if DEFAULT_SQL_PATH.is_file() else None)


def test_create_all_and_drop_all_are_clean(
    fresh_database: Callable[[str], AbstractContextManager[str]],
) -> None:
    """The FK cycles (users/workspaces/projects <-> file_assets, projects <-> states) are named
    use_alter keys, so both directions work without SQLAlchemy's cycle warnings."""
    with fresh_database("lifecycle") as url:
        engine = create_engine(url)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                PlaneBase.metadata.create_all(engine)
                tables = set(inspect(engine).get_table_names())
                assert {model.__tablename__ for model in PLANE_MODELS} <= tables
                PlaneBase.metadata.drop_all(engine)
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()
