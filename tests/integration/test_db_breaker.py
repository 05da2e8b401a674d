"""The shared engine's circuit breaker against a real PostgreSQL that refuses connections: closed
while connects succeed, open after FAIL_MAX refused ones (checkouts fail at once, as an outage the
callers already handle), half-open after RESET_S with one probe, closed again once it connects."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, event, exc, make_url, text

from shared.db import breaker, errors
from shared.db.engine import normalise_url
from shared.embedded.postgres import EmbeddedPostgres
from shared.metrics import REGISTRY
from shared.settings import Settings
from tests.helpers import set_database_up


def connect_error(engine: Engine) -> exc.DBAPIError:
    with pytest.raises(exc.DBAPIError) as raised, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return raised.value


def metric(engine: Engine, state: str) -> float | None:
    database = make_url(str(engine.url)).database
    labels = {"database": database, "plane_workers_database_circuit_state": state}
    return REGISTRY.get_sample_value("plane_workers_database_circuit_state", labels)


def test_opens_after_repeated_refusals_fails_fast_and_closes_after_a_probe(
    engine: Engine, admin: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cb = breaker.breaker_for(str(engine.url))
    monkeypatch.setattr(cb, "reset_timeout", 1.0)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT 1")) == 1
    assert breaker.state(engine)["state"] == "closed"
    assert metric(engine, "closed") == 1.0
    engine.dispose()  # no pooled connection left: every checkout below connects
    set_database_up(admin, settings.database_url, up=False)
    try:
        for _ in range(breaker.FAIL_MAX):
            error = connect_error(engine)
            assert not isinstance(error.orig, breaker.DatabaseCircuitOpen)  # the server said no
        report = breaker.state(engine)
        assert report["state"] == "open" and report["opened_at"] is not None
        assert metric(engine, "open") == 1.0 and metric(engine, "closed") == 0.0
        # Open: refused without a connection attempt, and read as the outage it is.
        started = time.monotonic()
        error = connect_error(engine)
        assert isinstance(error.orig, breaker.DatabaseCircuitOpen)
        assert time.monotonic() - started < 0.05
        assert errors.unavailable(error)
        # Half-open after reset_timeout: one probe; refused again, it is open again.
        time.sleep(1.1)
        error = connect_error(engine)
        assert not isinstance(error.orig, breaker.DatabaseCircuitOpen)
        assert breaker.state(engine)["state"] == "open"
    finally:
        set_database_up(admin, settings.database_url, up=True)
    time.sleep(1.1)
    with engine.connect() as conn:  # the probe connects: closed, counters reset
        assert conn.scalar(text("SELECT 1")) == 1
    assert breaker.state(engine)["opened_at"] is None
    assert breaker.state(engine)["state"] == "closed"
    assert breaker.state(engine)["consecutive_failures"] == 0
    assert metric(engine, "closed") == 1.0


def test_a_refused_password_does_not_open_it(embedded_postgres: EmbeddedPostgres) -> None:
    """Bad credentials are a configuration error (exit 2), not an outage: never counted."""
    url = make_url(normalise_url(embedded_postgres.url)).set(username="nobody-here", password="wrong")
    engine = create_engine(url)
    cb = breaker.breaker_for(str(engine.url))
    event.listen(engine, "do_connect", breaker.guarded_connect(cb))
    try:
        for _ in range(breaker.FAIL_MAX + 2):
            error = connect_error(engine)
            assert not isinstance(error.orig, breaker.DatabaseCircuitOpen)
            assert errors.refused_by_configuration(error)
        assert cb.current_state == "closed"
    finally:
        engine.dispose()
