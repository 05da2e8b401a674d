"""`plane-workers ai plan set` and `ai feed-docs`: the operator's side of Plane AI's schedule.

Registered on the `ai` group by shared/cli/ai.py. No model is loaded: both run in the base image.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from shared.cli.errors import ConfigError, ErrorMappingGroup, require_broker, require_database

plan_app = typer.Typer(
    cls=ErrorMappingGroup, help="A workspace's Plane AI plan (free, pro, business).", no_args_is_help=True
)


@plan_app.command("set")
def plan_set(
    workspace: Annotated[str, typer.Argument(help="The workspace id.")],
    plan: Annotated[str, typer.Argument(help="free, pro or business.")],
) -> None:
    """Record the plan now. Pro/Business: live sync on and, unless the workspace is vectorised
    already, a queued job (ai-feed-jobs starts it). Free: live sync off, queued jobs cancelled,
    and the workspace's vectors removed by the embeddings consumer (a purge request)."""
    from shared.cli.main import _settings
    from shared.db.engine import get_engine
    from shared.embeddings import live_sync, plans
    from shared.embeddings.names import model_name
    from shared.events.producer import EventProducer

    try:
        ws, chosen = str(uuid.UUID(workspace)), plans.check_plan(plan)
    except ValueError as exc:
        raise ConfigError(f"WORKSPACE={workspace!r} PLAN={plan!r}: {exc}") from None
    settings = _settings()
    require_database(settings)
    if chosen == plans.FREE:
        require_broker(settings)  # before anything is recorded: the purge request must go out
    now = datetime.now(UTC)
    with get_engine(settings.database_url).begin() as conn:
        change = plans.set_plan(conn, ws, chosen, "cli", now, model_name(settings))
    if change.downgraded:
        key, purge = plans.purge_event(ws, f"cli-{now.isoformat()}", "plan free (cli)")
        producer = EventProducer(settings)
        producer.send(live_sync.TOPIC, purge, key=key)
        producer.close()
    was = change.previous or "none"
    done = (
        "vectors removal requested, live sync off" if change.downgraded
        else "vectorisation job queued" if change.job_queued
        else "nothing else to do"
    )  # fmt: skip
    typer.echo(f"workspace {ws}: plan {change.plan} (was {was}); {done}")


def feed_docs(
    dry_run: Annotated[bool, typer.Option(help="Count what would be fed; send nothing.")] = False,
) -> None:
    """Feed every documentation file of AI_DOCS_REPOSITORIES again, whatever was processed (the
    daily ai-docs-sync sends only what changed). Holds ai-docs-sync's lock: never both at once."""
    from shared import registry
    from shared.cli.main import _settings
    from shared.cron.runtime import run_job

    settings = _settings()
    require_database(settings)
    if not settings.ai_docs_repositories:
        raise ConfigError("AI_DOCS_REPOSITORIES is empty: no documentation repository to feed")
    spec = dataclasses.replace(registry.job("ai-docs-sync"), entrypoint="cronjobs.ai_docs_sync:full_feed")
    code, ctx = run_job(spec, settings, dry_run=dry_run)
    if ctx is not None:
        typer.echo(json.dumps({"feed-docs": "full", "dry_run": dry_run, "counts": dict(ctx.counts)}))
    raise typer.Exit(code)


def register(ai_app: typer.Typer) -> None:
    ai_app.add_typer(plan_app, name="plan")
    ai_app.command("feed-docs")(feed_docs)
