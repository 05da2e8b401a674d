"""The database circuit breaker: one per shared engine (shared/db/engine.py), so one per process and
database, shared by every consumer, job and command of that process.

It guards opening connections, which is where an outage is met: a pooled connection that fails
is invalidated, its failed ping (after idle) drops it, and the pool opens another. After FAIL_MAX
consecutive connection attempts the database refused as unavailable (shared.db.errors) it opens:
for RESET_S no connection is attempted, a checkout fails at once with DatabaseCircuitOpen. Then it
is half-open: the next attempt is the one probe (others wait for it), closing it on success or
opening it again. pybreaker holds the state; it runs each guarded connect under its lock, which
is what makes the half-open probe a single one (connects are rare: the pool keeps them).

DatabaseCircuitOpen is a psycopg2 OperationalError without SQLSTATE, exactly what a refused
connect raises, so every caller treats it as today's outage: a consumer holds its partitions (no
retry spent, nothing dead-lettered, nothing committed past), a command exits 3. What the breaker
adds is failing fast while open, and its state: the `plane_workers_database_circuit_state` metric
and the embedding consumer's /health (shared/ai_health.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pybreaker
from prometheus_client import Enum
from sqlalchemy import Engine, make_url

from shared.db import errors as db_errors
from shared.metrics import REGISTRY

log = logging.getLogger(__name__)

FAIL_MAX = 5  # consecutive failed connects that open it
RESET_S = 5.0  # open this long, then one probe; a hold retries every second (shared/kafka/strategy.py)
STATES = ("closed", "open", "half_open")

CIRCUIT_STATE = Enum(
    "plane_workers_database_circuit_state",
    "The database circuit breaker of this process (shared/db/breaker.py): closed, open (connections "
    "fail at once) or half_open (one probe).",
    ["database"],
    states=list(STATES),
    registry=REGISTRY,
)


class DatabaseCircuitOpen(psycopg2.OperationalError):
    """A connect refused by the open breaker: to its callers, the database is unreachable."""


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, database: str) -> None:
        self.database = database

    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        state = _state_name(new.name)
        CIRCUIT_STATE.labels(self.database).state(state)
        previous = _state_name(old.name) if old is not None else "closed"
        # Open <-> half-open every RESET_S through an outage: only its start and end are news.
        if state == "open" and previous == "closed":
            log.warning(
                "database circuit breaker open after %d failed connects: none tried for %.0f s",
                cb.fail_max,
                cb.reset_timeout,
            )
        elif state == "closed":
            log.warning("database circuit breaker closed: a probe connected")


def _not_an_outage(exc: BaseException) -> bool:
    return not db_errors.unavailable(exc) or db_errors.refused_by_configuration(exc)


def _state_name(name: str) -> str:
    return name.replace("-", "_")


_breakers: dict[str, pybreaker.CircuitBreaker] = {}
_lock = threading.Lock()


def breaker_for(url: str) -> pybreaker.CircuitBreaker:
    """The breaker of the engine whose `str(engine.url)` (password hidden) is `url`."""
    with _lock:
        breaker = _breakers.get(url)
        if breaker is None:
            database = make_url(url).database or ""
            breaker = pybreaker.CircuitBreaker(
                fail_max=FAIL_MAX,
                reset_timeout=RESET_S,
                # Only "the database is unavailable" counts; a refused password (a configuration
                # error, exit 2) or a bug does not, and counts as a success: the server answered.
                exclude=[_not_an_outage],
                listeners=[_Listener(database)],
                name=f"database {database}",
                # The failure that opens it is raised as it is; only refusals raise ours.
                throw_new_error_on_trip=False,
            )
            CIRCUIT_STATE.labels(database).state("closed")
            _breakers[url] = breaker
        return breaker


def guarded_connect(breaker: pybreaker.CircuitBreaker):  # type: ignore[no-untyped-def]
    """A `do_connect` listener (SQLAlchemy DialectEvents) connecting through `breaker`."""

    def do_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return breaker.call(dialect.connect, *cargs, **cparams)
        except pybreaker.CircuitBreakerError as exc:
            raise DatabaseCircuitOpen(
                f"database circuit breaker open (after {breaker.fail_max} failed connects; "
                f"next probe within {breaker.reset_timeout:.0f} s)"
            ) from exc

    return do_connect


def state(engine: Engine) -> dict[str, Any]:
    """What /health and `ai health` report of `engine`'s breaker: state, consecutive failures,
    when it opened."""
    breaker = breaker_for(str(engine.url))
    opened_at: datetime | None = None
    if breaker.current_state != "closed":
        opened_at = breaker._state_storage.opened_at  # pybreaker has no public reader of it
    return {
        "state": _state_name(breaker.current_state),
        "consecutive_failures": breaker.fail_counter,
        "opened_at": opened_at.astimezone(UTC).isoformat() if opened_at else None,
        "fail_max": breaker.fail_max,
        "reset_s": breaker.reset_timeout,
    }
