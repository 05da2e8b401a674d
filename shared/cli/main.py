"""`plane-workers`: run consumers and jobs, feed and inspect topics, manage the deployment.

Every consumer and job name comes from `shared.registry`; nothing here lists them again.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from shared import logs, registry
from shared.settings import Settings, get_settings, markdown_table, secret_values

app = typer.Typer(
    help="Plane's background tasks as Kafka consumers and Kubernetes CronJobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(help="Inspect and replay dead-lettered events.", no_args_is_help=True)
topics_app = typer.Typer(help="Manage the Kafka topics the registry needs.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
webhooks_app = typer.Typer(help="Operate webhook deliveries.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(webhooks_app, name="webhooks")


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    logs.configure(settings.log_level, settings.log_format, secret_values(settings))
    return settings


def _require(value: str, variable: str) -> None:
    if not value:
        typer.echo(f"{variable} is not set (or run `plane-workers dev` for the embedded stack)", err=True)
        raise typer.Exit(2)


@app.command("list")
def list_workloads(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every consumer and job in the registry."""
    consumers = [
        {
            "kind": "consumer",
            "name": s.name,
            "topic": s.topic,
            "group": s.group,
            "event_types": list(s.event_types),
            "dlq": s.dlq_topic,
            "retry_topics": list(s.retry_topics),
            "description": s.description,
        }
        for s in registry.CONSUMERS
    ]
    jobs = [
        {"kind": "job", "name": s.name, "schedule": s.schedule, "description": s.description}
        for s in registry.JOBS
    ]
    if as_json:
        typer.echo(json.dumps({"consumers": consumers, "jobs": jobs}, indent=2))
        return
    typer.echo("Consumers:")
    for c in consumers:
        typer.echo(f"  {c['name']:<32} topic {c['topic']:<32} {c['description']}")
    typer.echo("Jobs:")
    for j in jobs:
        typer.echo(f"  {j['name']:<32} {j['schedule']:<14} {j['description']}")


@app.command()
def consume(name: Annotated[str, typer.Argument(help="Consumer name from `list`.")]) -> None:
    """Run one consumer until SIGTERM (its main topic and retry tiers)."""
    from shared.kafka.runtime import consume as run_consumer

    settings = _settings()
    spec = _lookup(registry.consumer, name)
    _require(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    raise typer.Exit(run_consumer(spec.name, settings))


@app.command()
def job(
    name: Annotated[str, typer.Argument(help="Job name from `list`.")],
    dry_run: Annotated[bool, typer.Option(help="Count what would change; change nothing.")] = False,
    scheduled_for: Annotated[
        datetime | None,
        typer.Option(help="The run's notion of now (ISO 8601, UTC), e.g. a missed schedule."),
    ] = None,
) -> None:
    """Run one job now. Exit 0: done (or another run holds the lock); 1: failed; 2: usage."""
    from datetime import UTC

    from shared.cron.runtime import run_job

    settings = _settings()
    spec = _lookup(registry.job, name)
    _require(settings.database_url, "DATABASE_URL")
    if scheduled_for is not None and scheduled_for.tzinfo is None:
        scheduled_for = scheduled_for.replace(tzinfo=UTC)
    code, ctx = run_job(spec, settings, dry_run=dry_run, scheduled_for=scheduled_for)
    if ctx is not None:
        typer.echo(json.dumps({"job": name, "dry_run": dry_run, "counts": dict(ctx.counts)}))
    raise typer.Exit(code)


@app.command()
def produce(
    topic: Annotated[str, typer.Argument(help="Logical topic, e.g. issue-description-versions.")],
    event_type: Annotated[
        str | None, typer.Option("--type", help="Event type; default: the topic's only type.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Message key; default: from the data.")] = None,
) -> None:
    """Read event data as JSON on stdin (one object, or one per line); produce valid envelopes."""
    from shared.events import InvalidEvent, new_event
    from shared.events.producer import EventProducer

    settings = _settings()
    spec = next((c for c in registry.CONSUMERS if c.topic == topic), None)
    if spec is None:
        typer.echo(f"unknown topic {topic!r}; known: {[c.topic for c in registry.CONSUMERS]}", err=True)
        raise typer.Exit(2)
    if event_type is None:
        if len(spec.event_types) != 1:
            typer.echo(f"--type is required: one of {list(spec.event_types)}", err=True)
            raise typer.Exit(2)
        event_type = spec.event_types[0]
    text = sys.stdin.read().strip()
    try:
        items = (
            [json.loads(text)]
            if text.startswith("{") and "\n" not in text
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
        events = [new_event(event_type, item) for item in items]
    except (ValueError, InvalidEvent) as exc:
        typer.echo(f"invalid input, nothing produced: {exc}", err=True)
        raise typer.Exit(2) from None
    producer = EventProducer(settings)
    producer.send_many(topic, [(key or _default_key(e.data), e) for e in events])
    for e in events:
        typer.echo(json.dumps({"produced": e.id, "topic": settings.topic(topic)}))


def _default_key(data: dict) -> str | None:
    for field in ("issue_id", "webhook_id", "workspace_id", "page_id", "id"):
        if isinstance(data.get(field), str):
            return data[field]
    return None


@dlq_app.command("show")
def dlq_show(
    topic: Annotated[str, typer.Argument(help="Logical topic whose DLQ to read.")],
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
) -> None:
    """Print dead letters (JSON lines with their failure headers); consumes nothing."""
    from shared.cli.dlq import show

    for entry in show(_settings(), topic, limit):
        typer.echo(json.dumps(entry))


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="Logical topic whose DLQ to replay.")],
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
) -> None:
    """Re-publish dead letters to their original topic (each once)."""
    from shared.cli.dlq import replay

    typer.echo(json.dumps({"replayed": replay(_settings(), topic, limit)}))


@webhooks_app.command("replay")
def webhooks_replay(
    webhook: Annotated[str, typer.Option(help="Webhook id (webhooks.id).")],
    since: Annotated[datetime, typer.Option(help="Deliveries whose event is this recent or newer.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count them.")] = False,
) -> None:
    """Re-send every delivery the webhook missed since T (while off, exhausted, 410, blocked),
    each with its original webhook-id. Re-enable the webhook in Plane first."""
    import uuid
    from datetime import UTC

    from services.webhooks.replay import replay
    from shared.db.engine import get_engine

    settings = _settings()
    _require(settings.database_url, "DATABASE_URL")
    try:
        webhook_id = uuid.UUID(webhook)
    except ValueError:
        typer.echo(f"--webhook: {webhook!r} is not a UUID", err=True)
        raise typer.Exit(2) from None
    since_utc = since if since.tzinfo else since.replace(tzinfo=UTC)
    count = replay(settings, get_engine(settings.database_url), webhook_id, since_utc, dry_run)
    typer.echo(json.dumps({"webhook": str(webhook_id), "replayed" if not dry_run else "would_replay": count}))


def _key_values(option: str, pairs: list[str] | None) -> dict[str, str]:
    """`KEY=VALUE` options into a dict; a malformed one is a usage error (exit 2)."""
    parsed: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            typer.echo(f"{option}: expected KEY=VALUE, got {pair!r}", err=True)
            raise typer.Exit(2)
        parsed[key.strip()] = value.strip()
    return parsed


@topics_app.command("create")
def topics_create(
    replication_factor: Annotated[
        int, typer.Option(help="Replicas per partition of topics it creates (-1: the broker's default).")
    ] = 1,
    partitions: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TOPIC=N",
            help="Partitions of a logical main topic (its retry tiers and DLQ follow); repeatable. "
            "Default: the registry's.",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Topic config for every topic; repeatable."),
    ] = None,
    retry_config: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Topic config of retry tiers (over --config)."),
    ] = None,
    dlq_config: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Topic config of DLQs (over --config)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would change; change nothing.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker and each request.")] = 30,
) -> None:
    """Create or update every topic (main, retry tiers, DLQ) the registry needs: create missing
    ones, add partitions, set the given configs. Never deletes or shrinks; safe to run again.
    Retry tiers and DLQs get max.message.bytes = the producer's limit unless a config sets it.
    Exit 0: done; 1: the broker refused a change; 2: bad options; 3: broker unreachable."""
    from shared.kafka.topics import TopicError, TopicOptions, TopicOptionsError, ensure_topics

    settings = _settings()
    _require(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    counts: dict[str, int] = {}
    for topic, count in _key_values("--partitions", partitions).items():
        try:
            counts[topic] = int(count)
        except ValueError:
            typer.echo(f"--partitions: {topic}={count!r} is not a whole number", err=True)
            raise typer.Exit(2) from None
    options = TopicOptions(
        replication_factor=replication_factor,
        partitions=counts,
        config=_key_values("--config", config),
        retry_config=_key_values("--retry-config", retry_config),
        dlq_config=_key_values("--dlq-config", dlq_config),
    )
    try:
        report = ensure_topics(settings, options, dry_run=dry_run, timeout_s=timeout)
    except TopicOptionsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except TopicError as exc:
        typer.echo(f"topics create: {exc}", err=True)
        raise typer.Exit(3 if str(exc).startswith("cannot reach Kafka") else 1) from None
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(json.dumps({"dry_run": dry_run, **report.as_json()}))


@app.command("check")
def check_deployment(
    timeout: Annotated[float, typer.Option(help="Seconds each check may wait.")] = 10,
) -> None:
    """Check that this deployment can work (the chart's `helm test`): the database answers, Plane's
    tables and our migrated schema are there, a broker answers, every topic exists. One line per
    check; exit 0: all passed; 1: one failed; 2: configuration error."""
    from shared.cli.check import run

    raise typer.Exit(run(_settings(), timeout, typer.echo))


@app.command()
def migrate() -> None:
    """Create or upgrade the plane_workers schema (Plane's own tables are never touched)."""
    from shared.db.migrate import upgrade

    settings = _settings()
    _require(settings.database_url, "DATABASE_URL")
    upgrade(settings.database_url)
    typer.echo("plane_workers schema is up to date")


@app.command("export-helm")
def export_helm(
    check: Annotated[bool, typer.Option(help="Fail if the committed file is stale.")] = False,
) -> None:
    """Write charts/plane-workers/workloads.yaml from the registry."""
    from shared import helm_export

    if check:
        if not helm_export.is_current():
            typer.echo(f"{helm_export.WORKLOADS_FILE} is stale: run `plane-workers export-helm`", err=True)
            raise typer.Exit(1)
        typer.echo("workloads.yaml is current")
        return
    helm_export.write()
    typer.echo(f"wrote {helm_export.WORKLOADS_FILE}")


@app.command()
def healthcheck(
    max_age: Annotated[float, typer.Option(help="Seconds since the loop last touched the file.")] = 60,
    file: Annotated[Path | None, typer.Option(help="Default: HEALTH_FILE.")] = None,
) -> None:
    """Liveness probe: exit 1 when the consumer loop has not touched its health file lately."""
    path = file or Path(get_settings().health_file)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        typer.echo(f"{path} does not exist", err=True)
        raise typer.Exit(1) from None
    if age > max_age:
        typer.echo(f"{path} is {age:.0f}s old (max {max_age:.0f}s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok ({age:.1f}s)")


@app.command()
def config(
    markdown: Annotated[bool, typer.Option(help="The README's configuration table.")] = False,
) -> None:
    """Show the effective configuration (secrets hidden) or the table of variables."""
    if markdown:
        typer.echo(markdown_table())
        return
    typer.echo(repr(get_settings()))


@app.command()
def dev(
    state_dir: Annotated[Path | None, typer.Option(help="Embedded stack data.")] = None,
    jobs_now: Annotated[bool, typer.Option(help="Also run every job once at start-up.")] = False,
) -> None:
    """Run every consumer plus an in-process cron schedule on the embedded stack (Ctrl-C stops)."""
    from shared.cli.dev import run_dev

    raise typer.Exit(run_dev(_settings(), state_dir, jobs_now=jobs_now))


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="How many description changes to produce.")] = 200,
    state_dir: Annotated[Path | None, typer.Option(help="Embedded stack data.")] = None,
) -> None:
    """Start the embedded stack, load a small Plane workspace, run both slices, report."""
    from shared.cli.demo import run_demo

    raise typer.Exit(run_demo(_settings(), events, state_dir))


def _lookup(finder, name: str):  # type: ignore[no-untyped-def]
    try:
        return finder(name)
    except registry.UnknownWorkload as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
