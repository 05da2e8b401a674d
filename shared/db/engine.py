"""SQLAlchemy engine and session factory, one per process and URL."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from shared.db import breaker

# A connection back in the pool for less than this is handed out again without a ping: a busy
# consumer checks connections out thousands of times a second, and a `SELECT 1` round trip before
# each (pool_pre_ping) was 6% of webhook-deliveries' CPU. A server that died within this window
# fails the first statement instead, which every caller already survives: an outage can as well
# begin right after a ping.
PING_AFTER_IDLE_S = 1.0


def normalise_url(url: str) -> str:
    """Accept Plane's `postgres://` / `postgresql://` URLs and pin the psycopg2 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


@cache
def get_engine(url: str) -> Engine:
    engine = create_engine(
        normalise_url(url),
        pool_size=5,
        max_overflow=5,
        # A worker must never hang on a lock forever; jobs raise this per statement where needed.
        connect_args={"application_name": "plane-workers"},
    )
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", _ping_if_idle)
    # Every new connection of the process's engine goes through its circuit breaker.
    event.listen(engine, "do_connect", breaker.guarded_connect(breaker.breaker_for(str(engine.url))))
    return engine


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect handling, skipped for connections just used: raising
    DisconnectionError makes the pool drop this connection and check out (or open) another."""
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_S:
        return  # opened just now, or back from a caller a moment ago
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as e:  # any DBAPI failure means this connection is unusable
        raise exc.DisconnectionError(f"pooled connection failed its ping: {e}") from e


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)
