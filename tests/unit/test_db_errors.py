"""shared.db.errors on real errors: psycopg2's own connect failures, SQLSTATEs sent by the embedded
PostgreSQL, and SQLAlchemy's wrappers of both. Only 53300 in a session is constructed (see
`test_too_many_connections`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg2
import psycopg2.errors
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from shared.db import errors
from shared.db.engine import normalise_url
from shared.embedded.ports import free_port


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def connect_error(dsn: str) -> psycopg2.Error:
    exc = raised(lambda: psycopg2.connect(dsn, connect_timeout=2))
    assert isinstance(exc, psycopg2.OperationalError) and exc.pgcode is None, exc
    return exc


def libpq_url(database_url: str) -> str:
    return normalise_url(database_url).replace("postgresql+psycopg2://", "postgresql://", 1)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(libpq_url(database_url))
    yield connection
    connection.close()


@pytest.mark.parametrize(
    ("dsn", "libpq_says"),
    [
        (f"host=127.0.0.1 port={free_port()} dbname=x", "connection refused"),
        ("host=/nonexistent-socket-dir dbname=x", "no such file or directory"),
        ("host=nohost.invalid dbname=x", "nohost.invalid"),
        ("host=10.255.255.1 port=5432 dbname=x", ""),  # timeout, or unreachable where no route
    ],
    ids=["closed-port", "socket-gone", "dns", "tcp-timeout"],
)
def test_connect_failures_mean_unavailable(dsn: str, libpq_says: str) -> None:
    exc = connect_error(dsn)
    assert libpq_says in str(exc).lower()
    assert errors.unavailable(exc)
    assert not errors.bad_data(exc)


def test_sqlalchemy_connect_failure_means_unavailable() -> None:
    engine = create_engine("postgresql+psycopg2://u@/x?host=/nonexistent-socket-dir")
    exc = raised(engine.connect)
    assert isinstance(exc, sa_exc.OperationalError)
    assert errors.unavailable(exc)
    engine.dispose()


def test_startup_fatal_too_many_connections_for_role_means_unavailable(conn, database_url: str) -> None:
    """A FATAL the server sends while the connection starts (as "too many clients", "the database
    system is starting up / shutting down / in recovery mode" are) reaches psycopg2 without a
    SQLSTATE; a role limited to 0 connections produces one for real."""
    role = f"r_{uuid.uuid4().hex[:8]}"
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
    try:
        exc = connect_error(psycopg2.extensions.make_dsn(libpq_url(database_url), user=role))
        assert "too many connections" in str(exc)
        assert errors.unavailable(exc)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE {role}")


def test_terminated_backend_means_unavailable(conn, database_url: str) -> None:
    """The server sends FATAL 57P01 and hangs up; psycopg2 (2.9, on PostgreSQL 18) reports only
    libpq's "server closed the connection unexpectedly", without a SQLSTATE, whether the session
    terminates itself or is terminated by another mid-query."""
    with conn.cursor() as cur:
        exc = raised(lambda: cur.execute("SELECT pg_terminate_backend(pg_backend_pid())"))
    assert isinstance(exc, psycopg2.OperationalError) and "server closed the connection" in str(exc)
    assert errors.unavailable(exc)
    closed = raised(conn.cursor)  # and the connection it left closed
    assert isinstance(closed, psycopg2.InterfaceError) and errors.unavailable(closed)

    engine = create_engine(normalise_url(database_url))
    with engine.connect() as sa_conn:
        wrapped = raised(lambda: sa_conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())")))
    assert isinstance(wrapped, sa_exc.OperationalError) and errors.unavailable(wrapped)
    engine.dispose()


def test_statement_timeout_57014_is_transient(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SET LOCAL statement_timeout = 10")
        exc = raised(lambda: cur.execute("SELECT pg_sleep(1)"))
    assert isinstance(exc, psycopg2.Error) and exc.pgcode == "57014"
    assert not errors.unavailable(exc) and not errors.bad_data(exc)


@pytest.mark.parametrize(
    ("statements", "code"),
    [
        (["SELECT 1/0"], "22012"),
        (["CREATE TEMP TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1), (1)"], "23505"),
    ],
)
def test_data_errors_mean_a_bad_event(conn, database_url: str, statements: list[str], code: str) -> None:
    def run() -> None:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    exc = raised(run)
    assert isinstance(exc, psycopg2.Error) and exc.pgcode == code
    assert errors.bad_data(exc) and not errors.unavailable(exc)
    engine = create_engine(normalise_url(database_url))
    with engine.connect() as sa_conn:

        def run_sa() -> None:
            for statement in statements:
                sa_conn.execute(text(statement))

        wrapped = raised(run_sa)
    assert isinstance(wrapped, sa_exc.DBAPIError) and errors.bad_data(wrapped)
    assert not errors.unavailable(wrapped)
    engine.dispose()


def with_sqlstate(cls: type[psycopg2.Error], code: str) -> psycopg2.Error:
    exc = cls(f"FATAL: {code}")
    exc.__setstate__({"pgcode": code, "pgerror": f"FATAL: {code}"})  # as psycopg2 unpickles one
    return exc


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (psycopg2.errors.TooManyConnections, "53300"),
        (psycopg2.errors.AdminShutdown, "57P01"),
        (psycopg2.errors.CrashShutdown, "57P02"),
        (psycopg2.errors.CannotConnectNow, "57P03"),
        (psycopg2.errors.ConnectionFailure, "08006"),
    ],
)
def test_unavailable_sqlstates(cls: type[psycopg2.Error], code: str) -> None:
    """These SQLSTATEs reach psycopg2 here only without their code (a FATAL at connect, or at
    termination, reads as libpq's own message; covered above), so they are built: the real
    psycopg2 class with pgcode set as psycopg2 sets it when it unpickles an error. A driver or
    pooler that does pass them on must get the same answer."""
    exc = with_sqlstate(cls, code)
    assert errors.unavailable(exc) and not errors.bad_data(exc)
    wrapped = sa_exc.OperationalError("SELECT 1", {}, exc)
    assert errors.unavailable(wrapped)


def test_pool_verdicts_and_wrapped_causes(database_url: str) -> None:
    engine = create_engine(normalise_url(database_url), pool_size=1, max_overflow=0, pool_timeout=0.1)
    with engine.connect():
        timeout = raised(engine.connect)
    assert isinstance(timeout, sa_exc.TimeoutError) and errors.unavailable(timeout)
    engine.dispose()
    assert errors.unavailable(sa_exc.DisconnectionError("pre-ping failed"))
    cause = connect_error("host=/nonexistent-socket-dir dbname=x")
    try:
        raise RuntimeError("the handler's own wrapper") from cause
    except RuntimeError as wrapper:
        assert errors.unavailable(wrapper)
    assert not errors.unavailable(KeyError("issue_id")) and not errors.bad_data(KeyError("issue_id"))


def test_webhook_stages_retry_what_is_unavailable_or_transient_and_isolate_the_rest(conn) -> None:
    from services.webhooks.stage import transient

    raw = connect_error("host=/nonexistent-socket-dir dbname=x")
    assert transient(raw)  # a raw psycopg2 connect failure (was a fatal stage error)
    assert transient(sa_exc.TimeoutError("QueuePool limit reached"))  # (was fatal too)
    assert transient(
        sa_exc.OperationalError("SELECT 1", {}, with_sqlstate(psycopg2.errors.DeadlockDetected, "40P01"))
    )
    with conn.cursor() as cur:
        bad = raised(lambda: cur.execute("SELECT 1/0"))
    assert not transient(sa_exc.DataError("SELECT 1/0", {}, bad))  # bad data or a bug: set the item aside
    assert not transient(KeyError("webhook_id"))
