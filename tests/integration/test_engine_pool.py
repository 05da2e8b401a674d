"""The shared engine's pool against a real PostgreSQL: a pooled connection that the server
dropped while it sat idle is replaced on checkout, and one just used is handed out unpinged."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, exc, text

from shared.db import engine as db_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT pg_backend_pid()"))


def _terminate(engine: Engine, pid: int) -> None:
    # From a second connection of the same pool (the first is back in it, idle).
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_a_connection_the_server_dropped_while_idle_is_replaced_on_checkout(engine: Engine) -> None:
    pid = _backend_pid(engine)
    with engine.connect() as a, engine.connect() as b:  # two pooled connections
        pids = {a.scalar(text("SELECT pg_backend_pid()")), b.scalar(text("SELECT pg_backend_pid()"))}
    victim = pid if pid in pids else next(iter(pids))
    _terminate(engine, victim)
    time.sleep(db_engine.PING_AFTER_IDLE_S + 0.2)
    for _ in range(3):  # whichever pooled connection comes out, each statement succeeds
        assert _backend_pid(engine) != victim


def test_only_a_connection_idle_past_the_threshold_is_pinged(engine: Engine) -> None:
    """The checkout check on a real connection whose server process was terminated: just back
    in the pool, it is handed out as is (no round trip); idle past the threshold, its ping fails
    and the pool is told to drop it."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.close()
        _terminate(engine, pid)
        record = SimpleNamespace(info={"checked_in_at": time.monotonic()})
        db_engine._ping_if_idle(raw.dbapi_connection, record, None)  # not pinged: no error
        record.info["checked_in_at"] -= db_engine.PING_AFTER_IDLE_S + 0.1
        with pytest.raises(exc.DisconnectionError, match="failed its ping"):
            db_engine._ping_if_idle(raw.dbapi_connection, record, None)
    finally:
        raw.invalidate()
