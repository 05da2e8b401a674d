"""shared.mail.config against a real PostgreSQL with Plane's schema: the rows of
`instance_configurations` over the EMAIL_* settings as Plane reads them (SKIP_ENV_VAR), encrypted
values, Plane's string parsing, the TTL cache and a database outage; and a mail sent over the wire
(aiosmtpd) with a configuration read from the table."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy import exc as sa_exc

from shared.db.engine import get_engine, normalise_url
from shared.embedded.ports import free_port
from shared.embedded.postgres import EmbeddedPostgres, with_database
from shared.embedded.smtp import EmbeddedSMTP
from shared.mail.config import SmtpConfigSource, encrypt_value, smtp_config
from shared.mail.message import compose
from shared.mail.smtp import SmtpSession
from shared.settings import Settings
from shared.testing.plane_rows import insert_one
from tests.helpers import set_database_up

pytestmark = pytest.mark.timeout(120)
SECRET_KEY = "plane-secret-key-for-tests-0123456789abcdefghijklmnop"
PASSWORD = "pässword-from-plane-admin"
# smtplib sends AUTH credentials as ASCII only (Plane's Django backend uses the same smtplib).
ASCII_PASSWORD = "password-from-plane-admin"
LOGGER = "shared.mail.config"


@pytest.fixture
def env_settings(database_url: str) -> Settings:
    """The EMAIL_* environment as a deployment would have it (no broker needed here)."""
    return replace(
        Settings.from_env({}),
        database_url=database_url,
        secret_key=SECRET_KEY,
        email_host="env-smtp.example",
        email_port=2525,
        email_host_user="env-user",
        email_host_password="env-password",
        email_use_tls=True,
        email_use_ssl=False,
        email_from="Env <env@example.org>",
        email_timeout_s=7.5,
        skip_env_var=True,
    )


@pytest.fixture
def engine(env_settings: Settings) -> Engine:
    return get_engine(env_settings.database_url)


def put(engine: Engine, key: str, value: str | None, *, encrypted: bool = False, **more: Any) -> None:
    """One row as Plane's admin stores it (category SMTP, the value encrypted when it says so)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM instance_configurations WHERE key = :k"), {"k": key})
        stored = encrypt_value(SECRET_KEY, value) if encrypted and value is not None else value
        insert_one(conn, "instance_configurations", key=key, value=stored, is_encrypted=encrypted,
                   category="SMTP", **more)  # fmt: skip


def read(settings: Settings, engine: Engine) -> Any:
    with engine.connect() as conn:
        return smtp_config(settings, conn)


def plane_rows(engine: Engine, port: int = 465) -> None:
    put(engine, "EMAIL_HOST", "smtp.plane-admin.example")
    put(engine, "EMAIL_HOST_USER", "admin-user")
    put(engine, "EMAIL_HOST_PASSWORD", PASSWORD, encrypted=True)
    put(engine, "EMAIL_PORT", str(port))
    put(engine, "EMAIL_USE_TLS", "0")
    put(engine, "EMAIL_USE_SSL", "1")
    put(engine, "EMAIL_FROM", "Plane Admin <admin@plane-admin.example>")


def test_rows_win_with_skip_env_var(env_settings: Settings, engine: Engine) -> None:
    plane_rows(engine)
    config = read(env_settings, engine)
    assert config.host == "smtp.plane-admin.example"
    assert config.user == "admin-user"
    assert config.password == PASSWORD  # decrypted with SECRET_KEY
    assert config.port == 465
    assert (config.use_tls, config.use_ssl) == (False, True)
    assert config.from_address == "Plane Admin <admin@plane-admin.example>"
    assert config.timeout_s == 7.5  # never from the table
    assert PASSWORD not in repr(config)


def test_only_the_environment_without_skip_env_var(env_settings: Settings, engine: Engine) -> None:
    plane_rows(engine)
    config = read(replace(env_settings, skip_env_var=False), engine)
    assert (config.host, config.port, config.user, config.password) == (
        "env-smtp.example", 2525, "env-user", "env-password"
    )  # fmt: skip
    assert (config.use_tls, config.use_ssl, config.from_address) == (True, False, "Env <env@example.org>")


def test_keys_without_a_live_row_fall_back_to_the_settings(env_settings: Settings, engine: Engine) -> None:
    put(engine, "EMAIL_HOST", "smtp.plane-admin.example")
    put(engine, "EMAIL_PORT", "1587")
    # Plane's manager hides soft-deleted rows: this one does not count.
    put(engine, "EMAIL_HOST_USER", "deleted-user", deleted_at="2024-01-01T00:00:00Z")
    put(engine, "ENABLE_SMTP", "1")  # not one of the seven keys
    config = read(env_settings, engine)
    assert (config.host, config.port) == ("smtp.plane-admin.example", 1587)
    assert (config.user, config.password) == ("env-user", "env-password")
    assert (config.use_tls, config.use_ssl, config.from_address) == (True, False, "Env <env@example.org>")


def test_an_empty_table_means_the_settings(env_settings: Settings, engine: Engine) -> None:
    assert read(env_settings, engine) == read(replace(env_settings, skip_env_var=False), engine)


@pytest.mark.parametrize(
    ("tls", "ssl", "expected"),
    [("1", "0", (True, False)), ("0", "1", (False, True)), ("true", "yes", (False, False)),
     (None, None, (False, False)), (" 1", "1 ", (False, False))],
)  # fmt: skip
def test_booleans_are_on_only_for_exactly_1(
    env_settings: Settings, engine: Engine, tls: str | None, ssl: str | None, expected: tuple[bool, bool]
) -> None:
    put(engine, "EMAIL_USE_TLS", tls)
    put(engine, "EMAIL_USE_SSL", ssl)
    config = read(env_settings, engine)
    assert (config.use_tls, config.use_ssl) == expected


def test_port_parsed_as_int_does(env_settings: Settings, engine: Engine) -> None:
    put(engine, "EMAIL_PORT", " 465 ")
    assert read(env_settings, engine).port == 465


@pytest.mark.parametrize("port", ["", "smtp", None, "25.0"])
def test_a_port_int_refuses_keeps_the_setting(
    env_settings: Settings, engine: Engine, port: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Plane's task would fail on int(); we keep EMAIL_PORT and say why, once."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    put(engine, "EMAIL_PORT", port)
    assert read(env_settings, engine).port == 2525
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "EMAIL_PORT" in errors[0].getMessage()


def test_null_and_empty_strings_as_django_takes_them(env_settings: Settings, engine: Engine) -> None:
    """Plane's seeding stores "" for keys its environment lacked: "" is used as is (not the
    setting); an empty EMAIL_FROM makes Django send from its DEFAULT_FROM_EMAIL."""
    put(engine, "EMAIL_HOST_USER", None)
    put(engine, "EMAIL_HOST_PASSWORD", "", encrypted=True)
    put(engine, "EMAIL_FROM", "")
    config = read(env_settings, engine)
    assert (config.user, config.password) == ("", "")
    assert config.from_address == "webmaster@localhost"


def test_password_from_another_secret_key(
    env_settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    plane_rows(engine)
    config = read(replace(env_settings, secret_key="not-planes-secret-key"), engine)
    assert config.password == ""  # as Plane's decrypt_data returns
    assert config.host == "smtp.plane-admin.example"  # the rest still applies
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert errors[0].startswith(
        "EMAIL_HOST_PASSWORD in instance_configurations cannot be decrypted with this SECRET_KEY"
    )
    with engine.connect() as conn:
        token = conn.scalar(
            text("SELECT value FROM instance_configurations WHERE key = 'EMAIL_HOST_PASSWORD'")
        )
    logged = " ".join(r.getMessage() + repr(r.args) for r in caplog.records)
    assert PASSWORD not in logged and token not in logged and SECRET_KEY not in logged


def test_empty_secret_key_with_an_encrypted_row(
    env_settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    put(engine, "EMAIL_HOST_PASSWORD", PASSWORD, encrypted=True)
    assert read(replace(env_settings, secret_key=""), engine).password == ""
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "SECRET_KEY is empty" in errors[0]


def test_a_database_that_is_not_planes(
    env_settings: Settings, admin: Engine, embedded_postgres: EmbeddedPostgres,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """No instance_configurations table (our embedded demo, say): the settings, and the caller's
    transaction is not aborted by the lookup."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    name = f"bare_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    bare = create_engine(normalise_url(with_database(embedded_postgres.url, name)))
    try:
        with bare.begin() as conn:
            config = smtp_config(env_settings, conn)
            assert conn.scalar(text("SELECT 1")) == 1  # still usable
        assert config == read(replace(env_settings, skip_env_var=False), bare)
        source = SmtpConfigSource(env_settings, bare)
        assert source.get().host == "env-smtp.example"
    finally:
        bare.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert any("no instance_configurations table" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_source_caches_for_its_ttl(env_settings: Settings, engine: Engine) -> None:
    clock = Clock()
    source = SmtpConfigSource(env_settings, engine, ttl_s=60.0, clock=clock)
    put(engine, "EMAIL_HOST", "first.example")
    assert source.get().host == "first.example"
    put(engine, "EMAIL_HOST", "changed-in-admin.example")
    clock.now += 59.0
    assert source.get().host == "first.example"  # within the TTL: no read
    clock.now += 1.5
    assert source.get().host == "changed-in-admin.example"


def test_source_reads_in_a_read_only_transaction(env_settings: Settings, engine: Engine) -> None:
    """What `_read` runs is checked on a live connection: the session's transaction is read-only and
    the pool gets the connection back with no transaction open."""
    source = SmtpConfigSource(env_settings, engine, ttl_s=0.0)
    seen: list[str] = []

    def after(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "instance_configurations" in statement and "to_regclass" not in statement:
            cursor.execute("SHOW transaction_read_only")
            seen.append(cursor.fetchone()[0])

    from sqlalchemy import event

    event.listen(engine, "after_cursor_execute", after)
    try:
        source.get()
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert seen == ["on"]
    with engine.connect() as conn:
        assert conn.scalar(text("SHOW transaction_read_only")) == "off"  # not left on the session


def test_database_down_keeps_the_cached_value(
    env_settings: Settings, engine: Engine, admin: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    plane_rows(engine)
    clock = Clock()
    source = SmtpConfigSource(env_settings, engine, ttl_s=60.0, clock=clock)
    before = source.get()
    assert before.host == "smtp.plane-admin.example"
    set_database_up(admin, env_settings.database_url, False)
    try:
        clock.now += 61.0
        assert source.get() == before  # kept through the outage
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "database unavailable" in warnings[0]
        assert "keeping the SMTP configuration read 61 s ago" in warnings[0]
        clock.now += 1.0
        assert source.get() == before  # no new attempt within a TTL of the failed one
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        fresh = SmtpConfigSource(env_settings, engine, clock=clock)
        with pytest.raises(sa_exc.OperationalError):
            fresh.get()  # nothing cached: the caller sees the outage
    finally:
        set_database_up(admin, env_settings.database_url, True)
    put(engine, "EMAIL_HOST", "after-the-outage.example")
    clock.now += 60.0
    assert source.get().host == "after-the-outage.example"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logged and SECRET_KEY not in logged


def test_a_mail_sent_with_the_configuration_from_the_table(
    env_settings: Settings, engine: Engine, smtp: EmbeddedSMTP
) -> None:
    """The environment points nowhere; only the rows name the real (aiosmtpd) server."""
    settings = replace(env_settings, email_host="nowhere.invalid", email_host_user="")
    put(engine, "EMAIL_HOST", "127.0.0.1")
    put(engine, "EMAIL_PORT", str(smtp.port))
    put(engine, "EMAIL_USE_TLS", "0")
    put(engine, "EMAIL_FROM", "Plane Admin <admin@plane-admin.example>")
    config = SmtpConfigSource(settings, engine).get()
    with SmtpSession(config) as session:
        session.send(compose(config.from_address, "member@example.org", "From the table", "<p>hello</p>"))
    [mail] = smtp.messages
    assert mail.sender == "admin@plane-admin.example"
    assert mail.recipients == ("member@example.org",)
    assert mail.message["Subject"] == "From the table"


class AuthSMTP:
    """aiosmtpd with AUTH (PLAIN/LOGIN, no TLS): records the credentials each login presents."""

    def __init__(self) -> None:
        self.port = free_port()
        self.logins: list[tuple[str, str]] = []
        self.received = 0
        self.lock = threading.Lock()
        self.controller: Any = None

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> Any:  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        with self.lock:
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = (auth_data.login.decode(), auth_data.password.decode()) == ("admin-user", ASCII_PASSWORD)
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self.lock:
            self.received += 1
        return "250 OK"

    def __enter__(self) -> AuthSMTP:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=self.authenticate, auth_require_tls=False)  # fmt: skip
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def test_the_decrypted_password_logs_in(env_settings: Settings, engine: Engine) -> None:
    with AuthSMTP() as server:
        plane_rows(engine, port=server.port)
        put(engine, "EMAIL_HOST_PASSWORD", ASCII_PASSWORD, encrypted=True)
        put(engine, "EMAIL_HOST", "127.0.0.1")
        put(engine, "EMAIL_USE_SSL", "0")
        config = SmtpConfigSource(env_settings, engine).get()
        with SmtpSession(config) as session:
            session.send(compose(config.from_address, "member@example.org", "Logged in", "<p>hi</p>"))
        assert server.logins == [("admin-user", ASCII_PASSWORD)]
        assert server.received == 1
