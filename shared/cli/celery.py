"""`plane-workers celery ...`: the Celery bridge and the checks of a migration from Celery.

Imports nothing heavy at module level (the CLI imports this to register the commands).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from shared.cli.errors import CliError, ConfigError, ErrorMappingGroup, Unreachable, require_database

celery_app = typer.Typer(
    cls=ErrorMappingGroup,
    help="Migrate from Plane's Celery: the bridge and the beat check.",
    no_args_is_help=True,
)


@celery_app.command("bridge")
def bridge() -> None:
    """Run the Celery bridge until SIGTERM: Plane's AMQP queue (CELERY_BRIDGE_QUEUE at AMQP_URL)
    to Kafka events; unmapped tasks to CELERY_BRIDGE_LEGACY_QUEUE."""
    from services.celery_bridge.bridge import run_bridge
    from shared.cli.errors import require
    from shared.cli.main import _settings

    settings = _settings()
    require(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    require(settings.amqp_url, "AMQP_URL")
    raise typer.Exit(run_bridge(settings))


@celery_app.command("tasks")
def tasks(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """The Plane tasks the bridge maps (task, topic, event type, message key); every other task
    name, and those in CELERY_BRIDGE_PASSTHROUGH, goes to the legacy queue."""
    from services.celery_bridge.tasks import ROUTES
    from shared.cli.main import _settings

    passthrough = set(_settings().celery_bridge_passthrough)
    rows = [
        {
            "task": r.plane_task,
            "topic": r.topic,
            "event_type": r.event_type,
            "params": [p if isinstance(p, str) else p[0] for p in r.params],
            "passed_through": r.plane_task in passthrough,
        }
        for r in ROUTES
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        where = "legacy queue (CELERY_BRIDGE_PASSTHROUGH)" if row["passed_through"] else row["topic"]
        typer.echo(f"{row['task']:<80} -> {where}")


@celery_app.command("dead-letters")
def dead_letters(limit: Annotated[int | None, typer.Option(help="At most this many.")] = None) -> None:
    """Print the bridge's dead letters (celery-bridge.dlq: the AMQP message's body and headers,
    with why it could not be bridged) as JSON lines; consumes nothing."""
    from shared.cli.dlq import print_dead_letters
    from shared.cli.errors import require_broker
    from shared.cli.main import _settings

    settings = _settings()
    require_broker(settings)
    print_dead_letters(settings, "celery-bridge", limit)


@celery_app.command("replay-dead-letters")
def replay_dead_letters(limit: Annotated[int | None, typer.Option(help="At most this many.")] = None) -> None:
    """Re-publish the bridge's dead letters to the AMQP queue they came from (after what failed
    them is fixed: a webhook committed since, a newer bridge); each once, committed after
    RabbitMQ confirmed it."""
    from services.celery_bridge.replay import replay_dead_letters as replay
    from shared.cli.errors import require, require_broker
    from shared.cli.main import _settings

    settings = _settings()
    require_broker(settings)
    require(settings.amqp_url, "AMQP_URL")
    done = replay(settings, limit)
    typer.echo(f"replayed {done.replayed} dead letter(s) of {settings.topic('celery-bridge.dlq')}"
               f"{f'; {done.skipped} cut to fit, left (see the log)' if done.skipped else ''}")  # fmt: skip


@celery_app.command("check-beat")
def check_beat(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    fail: Annotated[
        bool, typer.Option("--fail", help="Exit 1 when any is still enabled (for scripts and CI).")
    ] = False,
    disable: Annotated[
        bool, typer.Option("--disable", help="Disable them in the table (Plane's beat reloads it).")
    ] = False,
) -> None:
    """List every enabled entry of Plane's django_celery_beat_periodictask (DATABASE_URL) that one
    of our CronJobs also runs: disable those, or stop `celery beat`, so no job runs twice.
    Exit 0: listed (or disabled); 1: --fail and some are enabled; 2: configuration (no such
    table); 3: database unreachable."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from services.celery_bridge import beat
    from shared.cli.errors import database_setting
    from shared.cli.main import _settings
    from shared.db.engine import get_engine

    settings = _settings()
    require_database(settings)
    where = database_setting(settings.database_url)
    try:
        with get_engine(settings.database_url).begin() as conn:
            if not beat.has_table(conn):
                raise ConfigError(f"{where}: no {beat.TABLE} table (not Plane's database?)")
            entries = beat.enabled_overlaps(conn)
            disabled = beat.disable(conn, entries) if disable else 0
    except OperationalError as exc:
        raise Unreachable(f"{where}: database unreachable: {str(exc.orig).strip().splitlines()[0]}") from None
    except DBAPIError as exc:
        raise CliError(f"{where}: reading {beat.TABLE} failed: {str(exc.orig).splitlines()[0]}") from None
    if as_json:
        typer.echo(json.dumps({"enabled": [e.as_json() for e in entries], "disabled": disabled}))
    elif not entries:
        typer.echo(f"no enabled {beat.TABLE} entry runs what a plane-workers CronJob runs")
    else:
        width = max(len(e.name) for e in entries)
        for e in entries:
            typer.echo(f"{e.name:<{width}}  {e.task}  -> cronjob {e.job}")
        if disable:
            typer.echo(f"disabled {disabled} entries")
        else:
            typer.echo("disable them (`--disable`) or stop `celery beat` before enabling the CronJobs")
    if fail and entries and not disable:
        raise typer.Exit(1)
