"""What a database error means for the event at hand, judged by what the error is, not its text.

- `unavailable`: the database cannot be reached or is not accepting work (down, restarting, in
  recovery, out of connections, unreachable). Every event would fail the same way: hold the
  partition and try again, without spending the event's retries.
- `bad_data`: PostgreSQL refused this event's data (SQLSTATE class 22 data exception, 23
  integrity constraint violation): retrying it changes nothing, dead-letter it.
- Anything else (deadlock, serialization failure, statement timeout, a bug) is transient: the
  caller's retry tiers decide.

Works on SQLAlchemy's wrappers (`DBAPIError.orig`) and on raw psycopg2 errors, and follows an
explicit `raise ... from` chain, so a handler that wraps a database error is judged by its cause.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
from sqlalchemy import exc as sa_exc

# 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now (starting up, in
# recovery), database dropped, idle session timeout; 53300: too many connections.
UNAVAILABLE_CLASSES = ("08",)
UNAVAILABLE_PREFIXES = ("57P0",)
UNAVAILABLE_CODES = ("53300",)
BAD_DATA_CLASSES = ("22", "23")


def unavailable(exc: BaseException) -> bool:
    """True if `exc` (or what it wraps) means the database is unavailable right now."""
    for error in _chain(exc):
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True  # SQLAlchemy saw the connection drop and invalidated it
        # Not DBAPI errors: the pool's own verdicts (a failed pre-ping, no connection free in time).
        if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True
        if isinstance(error, sa_exc.InterfaceError | psycopg2.InterfaceError):
            return True  # psycopg2: "connection already closed" and the like
        if isinstance(error, psycopg2.Error):
            code = error.pgcode
            # libpq gives no SQLSTATE for what happens on its side of the wire: a failed connect
            # (refused, socket gone, DNS, timeout, and even the server's FATAL at startup such as
            # "too many clients" or "the database system is starting up") or a lost connection.
            # Every error the server sends in a session has one.
            if code is None and isinstance(error, psycopg2.OperationalError):
                return True
            if code and (
                code[:2] in UNAVAILABLE_CLASSES
                or code.startswith(UNAVAILABLE_PREFIXES)
                or code in UNAVAILABLE_CODES
            ):
                return True
    return False


# A connection that reached PostgreSQL (or libpq's own checks) but was refused for a reason that a
# retry does not fix: the configuration is wrong. libpq gives these no SQLSTATE either, so only
# their text tells them from an outage.
CONFIG_MARKERS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "invalid dsn",
    "invalid connection option",
    "invalid sslmode",
    "invalid integer value",
    "invalid port",
)


def refused_by_configuration(exc: BaseException) -> bool:
    """True if connecting failed on the configuration (credentials, database name, options)."""
    orig = getattr(exc, "orig", None)
    reason = str(orig if orig is not None else exc)
    return any(marker in reason for marker in CONFIG_MARKERS)


def bad_data(exc: BaseException) -> bool:
    """True if PostgreSQL refused the data itself (SQLSTATE class 22 or 23)."""
    code = sqlstate(exc)
    return code is not None and code[:2] in BAD_DATA_CLASSES


def sqlstate(exc: BaseException) -> str | None:
    for error in _chain(exc):
        if isinstance(error, psycopg2.Error) and error.pgcode:
            return str(error.pgcode)
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, the DBAPI error a SQLAlchemy error wraps, then its explicit causes."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None) if isinstance(error, sa_exc.DBAPIError) else None
        if isinstance(orig, BaseException) and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
        error = error.__cause__
