"""One place that turns a failing command into one line on stderr and a documented exit code.

Every command of `plane-workers` runs inside `ErrorMappingGroup.invoke`: an exception that escapes
a command becomes one line naming the setting and what failed (secrets and URL passwords
redacted), never a traceback (LOG_LEVEL=DEBUG adds it). The exit codes (README "Exit codes"):

  0  done (for a job: also "another run holds the lock and is doing it")
  1  failed: the work itself failed (a job's run, a refused message, an unexpected error)
  2  usage or configuration error: a bad argument or setting; retrying changes nothing
  3  a dependency is unreachable: the database or the broker did not answer; retry later
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from shared.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CliError(Exception):
    """A failure the CLI explains in one line: `message` goes to stderr, `code` is the exit code."""

    code = EXIT_FAILED

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(CliError):
    code = EXIT_USAGE


class Unreachable(CliError):
    code = EXIT_UNREACHABLE


# librdkafka property -> our variable, for a client configuration librdkafka refuses.
_KAFKA_PROPERTIES = {
    "bootstrap.servers": "KAFKA_BOOTSTRAP_SERVERS",
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "session.timeout.ms": "KAFKA_SESSION_TIMEOUT_MS",
    "max.poll.interval.ms": "KAFKA_MAX_POLL_INTERVAL_MS",
    "fetch.wait.max.ms": "KAFKA_FETCH_WAIT_MAX_MS",
}


def _one_line(text: object) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _settings_or_none():  # type: ignore[no-untyped-def]
    from shared.settings import get_settings

    try:
        return get_settings()
    except ValueError:
        return None


def database_setting(url: str | None = None) -> str:
    """`DATABASE_URL=<url, password redacted>` for messages."""
    from shared.logs import redact_url

    if url is None:
        settings = _settings_or_none()
        url = settings.database_url if settings else "?"
    return f"DATABASE_URL={redact_url(url)}"


def broker_setting(servers: str | None = None) -> str:
    if servers is None:
        settings = _settings_or_none()
        servers = settings.kafka_bootstrap_servers if settings else "?"
    return f"KAFKA_BOOTSTRAP_SERVERS={servers}"


def require(value: str, variable: str) -> None:
    if not value:
        raise ConfigError(f"{variable} is not set (or run `plane-workers dev` for the embedded stack)")


def require_database(settings: Settings) -> None:
    """DATABASE_URL is set and reads as a PostgreSQL URL (connecting is left to the command)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from shared.db.engine import normalise_url

    require(settings.database_url, "DATABASE_URL")
    where = database_setting(settings.database_url)
    try:
        url = make_url(normalise_url(settings.database_url))
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"{where}: not a usable database URL: {_one_line(exc)}") from None
    if url.get_backend_name() != "postgresql":
        raise ConfigError(f"{where}: not a PostgreSQL URL (postgresql://user:password@host:port/db)")


BROKER_PROBE_S = 5.0


def require_broker(settings: Settings, timeout_s: float = BROKER_PROBE_S) -> None:
    """KAFKA_BOOTSTRAP_SERVERS is set and a broker answers a metadata request within `timeout_s`:
    one line instead of librdkafka's reconnect chatter and a 10-30 s wait per request."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from shared.kafka.config import LibrdkafkaLog, client_config

    require(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    quiet = LibrdkafkaLog("plane_workers.broker_probe")
    client = AdminClient(client_config(settings) | {"logger": quiet.logger})
    try:
        client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        client.poll(0)
        last = quiet.last_reason()
        code, line = _kafka_error(exc, settings.kafka_bootstrap_servers)
        if last:
            refused = any(m in last.lower() for m in ("authentication", "ssl", "sasl", "certificate"))
            code = EXIT_USAGE if refused else code
            where = broker_setting(settings.kafka_bootstrap_servers)
            line = f"{where}: no broker answered in {timeout_s:.0f} s: {last}"
        raise CliError(line, code) from None


def _database_error(exc: Exception) -> tuple[int, str]:
    from shared.db.errors import refused_by_configuration

    orig = getattr(exc, "orig", None)
    reason = _one_line(orig if orig is not None else exc)
    if refused_by_configuration(exc):
        return EXIT_USAGE, f"{database_setting()}: refused: {reason}"
    return EXIT_UNREACHABLE, f"{database_setting()}: database unreachable: {reason}"


def _kafka_error(exc: Exception, servers: str | None = None) -> tuple[int, str]:
    from confluent_kafka import KafkaError

    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    text = _one_line(err.str() if err is not None else exc)
    code = err.code() if err is not None else None
    for prop, variable in _KAFKA_PROPERTIES.items():
        if prop in text and ("configuration" in text or "property" in text):
            return EXIT_USAGE, f"{variable}: refused by the Kafka client: {text}"
    unreachable = {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._MSG_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.REQUEST_TIMED_OUT,
    }
    refused = {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._SSL,
    }
    where = broker_setting(servers)
    if code in unreachable:
        return EXIT_UNREACHABLE, f"{where}: broker unreachable: {text}"
    if code in refused:
        return EXIT_USAGE, f"{where}: refused by the broker: {text}"
    return EXIT_FAILED, f"{where}: Kafka error: {text}"


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line for an exception that escaped a command."""
    from confluent_kafka import KafkaException
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from shared.events.producer import DeliveryFailed

    if isinstance(exc, CliError):
        return exc.code, _one_line(exc)
    if isinstance(exc, ArgumentError):
        return EXIT_USAGE, f"{database_setting()}: not a usable database URL: {_one_line(exc)}"
    if isinstance(exc, DBAPIError):
        return _database_error(exc)
    if isinstance(exc, KafkaException):
        return _kafka_error(exc)
    if isinstance(exc, DeliveryFailed):
        text = _one_line(exc)
        if "not confirmed in time" in text:
            return EXIT_UNREACHABLE, f"{broker_setting()}: broker unreachable: {text}"
        return EXIT_FAILED, f"{broker_setting()}: {text}"
    if isinstance(exc, RuntimeError) and str(exc).startswith("KAFKA_BOOTSTRAP_SERVERS is not set"):
        return EXIT_USAGE, _one_line(exc)
    detail = f"{type(exc).__name__}: {_one_line(exc)}"
    return EXIT_FAILED, f"failed: {detail} (LOG_LEVEL=DEBUG shows the traceback)"


def redacted(line: str) -> str:
    """`line` without the configured secrets, nor the password of any URL in it."""
    from shared.logs import redact, redact_url_passwords
    from shared.settings import secret_values

    settings = _settings_or_none()
    return redact_url_passwords(redact(line, secret_values(settings)) if settings else line)


def _debug() -> bool:
    return os.environ.get("LOG_LEVEL", "").upper() == "DEBUG" or logging.getLogger().isEnabledFor(
        logging.DEBUG
    )


# What the command line itself raises (help, usage errors, Exit): left to typer. Found through
# typer.BadParameter, as typer has carried click inside itself since 0.2x and used click before.
_PASS_THROUGH: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
)


class ErrorMappingGroup(TyperGroup):
    """The root command group: runs the chosen command and maps what escapes it (see above)."""

    def invoke(self, ctx: typer.Context):  # type: ignore[no-untyped-def,override]
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except BrokenPipeError:
            # stdout went away (`| head`): nothing to say, and nothing more to flush at exit.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_FAILED) from None
        except Exception as exc:
            code, line = explain(exc)
            if _debug():
                typer.echo(redacted("".join(traceback.format_exception(exc))), err=True, nl=False)
            command = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
            typer.echo(redacted(f"{command}: {line}"), err=True)
            raise typer.Exit(code) from None
