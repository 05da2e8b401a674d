"""`plane-workers check`: can this deployment work? What the chart's `helm test` pod runs.

Each check prints one line, `ok` or `FAIL`, naming the setting involved and what it found; the
command exits 0 when every check passed and 1 otherwise. Checks:

- database: DATABASE_URL connects (within the timeout), Plane's tables are there, and our
  `plane_workers` schema is at the newest migration (`plane-workers migrate`, the chart's
  pre-install/pre-upgrade hook);
- broker: a broker at KAFKA_BOOTSTRAP_SERVERS answers a metadata request;
- topics: every topic the registry needs exists under KAFKA_TOPIC_PREFIX (`plane-workers topics
  create`, the chart's other hook, or Strimzi KafkaTopics).

Nothing is written anywhere. Secrets and URL passwords never appear in the output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.settings import Settings, secret_values

# Plane's own table that every installation has; its absence means DATABASE_URL names another db.
PLANE_MARKER_TABLE = "public.workspaces"


@dataclass(frozen=True)
class Result:
    check: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.check}: {self.detail}"


REDACTED = "[redacted]"


def _dsn_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    from shared.db.engine import normalise_url

    try:
        return make_url(normalise_url(url)).password
    except Exception:
        return None


def _shown_url(url: str) -> str:
    """The DSN with its password replaced (also when SQLAlchemy cannot parse it)."""
    password = _dsn_password(url)
    return url.replace(f":{password}@", f":{REDACTED}@") if password else url


def _secrets(settings: Settings) -> list[str]:
    found = [value for value in secret_values(settings) if value]
    password = _dsn_password(settings.database_url) if settings.database_url else None
    if password:
        found.append(password)
    return sorted(set(found), key=len, reverse=True)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def check_database(settings: Settings, timeout_s: float) -> list[Result]:
    if not settings.database_url:
        return [Result("database", False, "DATABASE_URL is not set")]
    # Alembic logs its plugin set-up at INFO on import: not what this command reports.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from shared.db.base import STATE_SCHEMA
    from shared.db.engine import normalise_url
    from shared.db.migrate import alembic_config

    where = f"DATABASE_URL={_shown_url(settings.database_url)}"
    try:
        engine = create_engine(
            normalise_url(settings.database_url),
            poolclass=NullPool,
            connect_args={
                "connect_timeout": max(1, round(timeout_s)),
                "application_name": "plane-workers-check",
            },
        )
    except Exception as exc:  # a malformed URL, an unknown driver
        return [Result("database", False, f"{where}: not a usable database URL: {_one_line(exc)}")]
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
            plane = conn.execute(
                text("SELECT to_regclass(:t) IS NOT NULL"), {"t": PLANE_MARKER_TABLE}
            ).scalar()
            current = set(
                MigrationContext.configure(
                    conn, opts={"version_table_schema": STATE_SCHEMA}
                ).get_current_heads()
            )
    except Exception as exc:
        return [Result("database", False, f"{where}: cannot connect or query: {_one_line(exc)}")]
    finally:
        engine.dispose()
    results = [Result("database", True, f"{where}: connected, PostgreSQL {version}")]
    if plane:
        results.append(Result("plane schema", True, f"Plane's tables found ({PLANE_MARKER_TABLE})"))
    else:
        results.append(
            Result(
                "plane schema",
                False,
                f"{PLANE_MARKER_TABLE} does not exist: DATABASE_URL must name Plane's own database",
            )
        )
    heads = set(ScriptDirectory.from_config(alembic_config(settings.database_url)).get_heads())
    if current == heads:
        results.append(Result("migrations", True, f"{STATE_SCHEMA} schema at {', '.join(sorted(heads))}"))
    else:
        found = ", ".join(sorted(current)) or "no revision"
        results.append(
            Result(
                "migrations",
                False,
                f"{STATE_SCHEMA} schema at {found}, newest is {', '.join(sorted(heads))}: "
                "run `plane-workers migrate` (the chart's migrate hook)",
            )
        )
    return results


def check_broker(settings: Settings, timeout_s: float) -> list[Result]:
    if not settings.kafka_bootstrap_servers:
        return [Result("broker", False, "KAFKA_BOOTSTRAP_SERVERS is not set")]
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from shared.kafka.config import LibrdkafkaLog, client_config
    from shared.kafka.topics import desired_topics

    where = f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}"
    quiet = LibrdkafkaLog("plane_workers.check.librdkafka")
    admin = None
    try:
        admin = AdminClient(client_config(settings) | {"logger": quiet.logger})
        metadata = admin.list_topics(timeout=timeout_s)
    except (KafkaException, ValueError, RuntimeError) as exc:
        reason = _one_line(exc.args[0].str() if isinstance(exc, KafkaException) and exc.args else exc)
        if admin is not None:
            admin.poll(0)  # hands librdkafka's queued log lines to `quiet`
        if last := quiet.last_reason():
            reason = f"{reason} ({last})"
        return [
            Result("broker", False, f"{where}: no broker answered within {timeout_s:.0f}s: {reason}"),
            Result("topics", False, "not checked: no broker"),
        ]
    results = [Result("broker", True, f"{where}: {len(metadata.brokers)} broker(s) answered")]
    present = {name for name, topic in metadata.topics.items() if topic.error is None}
    wanted = [topic.name for topic in desired_topics(settings)]
    missing = [name for name in wanted if name not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        results.append(
            Result(
                "topics",
                False,
                f"{len(missing)} of {len(wanted)} missing: {shown}: run `plane-workers topics create` "
                "(the chart's topics hook) or create their KafkaTopics",
            )
        )
    else:
        prefix = settings.kafka_topic_prefix
        results.append(Result("topics", True, f"all {len(wanted)} exist (KAFKA_TOPIC_PREFIX={prefix!r})"))
    return results


def run(settings: Settings, timeout_s: float = 10.0, echo: Callable[[str], None] = print) -> int:
    """Run every check, echo one line each; 0 when all passed, else 1."""
    secrets = _secrets(settings)
    results = [*check_database(settings, timeout_s), *check_broker(settings, timeout_s)]
    for result in results:
        line = result.line()
        for secret in secrets:
            line = line.replace(secret, REDACTED)
        echo(line)
    return 0 if all(result.ok for result in results) else 1
