"""`plane-workers`: run consumers and jobs, feed and inspect topics, manage the deployment.

Every consumer and job name comes from `shared.registry`; nothing here lists them again. A command
that fails prints one line and exits with a documented code (shared/cli/errors.py).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from shared import logs, registry
from shared.cli.ai import ai_app
from shared.cli.celery import celery_app
from shared.cli.errors import (
    CliError,
    ConfigError,
    ErrorMappingGroup,
    require,
    require_broker,
    require_database,
)
from shared.cli.imports import import_issues
from shared.settings import (
    Settings,
    get_settings,
    markdown_table,
    secret_values,
    shown_values,
)

app = typer.Typer(
    cls=ErrorMappingGroup,
    help="Plane's background tasks as Kafka consumers and Kubernetes CronJobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(
    cls=ErrorMappingGroup, help="Inspect and replay dead-lettered events.", no_args_is_help=True
)
topics_app = typer.Typer(help="Manage the Kafka topics the registry needs.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
webhooks_app = typer.Typer(cls=ErrorMappingGroup, help="Operate webhook deliveries.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(webhooks_app, name="webhooks")
mail_app = typer.Typer(
    cls=ErrorMappingGroup, help="Check transactional mails without sending.", no_args_is_help=True
)
app.add_typer(mail_app, name="mail")
app.add_typer(celery_app, name="celery")
app.add_typer(ai_app, name="ai")
app.command("import")(import_issues)


def _load_settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        raise ConfigError(f"configuration error: {exc}") from None


def _settings() -> Settings:
    settings = _load_settings()
    logs.configure(settings.log_level, settings.log_format, secret_values(settings))
    return settings


def _require(value: str, variable: str) -> None:
    require(value, variable)


def _names(kind: str, specs) -> str:  # type: ignore[no-untyped-def]
    """A command's epilog: the registry's names of one kind, one per line."""
    return f"{kind} (`plane-workers list` describes them):\n\n" + "\n".join(s.name for s in specs)


def what_runs_table() -> str:
    """The README's "What runs" table, from the registry (`plane-workers list --markdown`)."""
    defaults = Settings.from_env({})  # topics under the default KAFKA_TOPIC_PREFIX
    rows = ["| Kind | Name | Topic / schedule (UTC) | Replaces |", "|---|---|---|---|"]
    for c in registry.CONSUMERS:
        rows.append(f"| consumer | `{c.name}` | `{defaults.topic(c.topic)}` | {c.replaces} |")
    for j in registry.JOBS:
        when = "by hand (`plane-workers job`; a suspended CronJob)" if j.manual else f"`{j.schedule}`"
        rows.append(f"| job | `{j.name}` | {when} | {j.replaces} |")
    for d in registry.DEPLOYMENTS:
        state = "" if d.enabled else " (off unless enabled)"
        rows.append(f"| deployment | `{d.name}` | `plane-workers {' '.join(d.args)}`{state} | {d.replaces} |")
    return "\n".join(rows)


@app.command("list")
def list_workloads(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    markdown: Annotated[bool, typer.Option(help="The README table of what runs.")] = False,
) -> None:
    """List every consumer and job in the registry."""
    if markdown:
        typer.echo(what_runs_table())
        return
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
            "replaces": s.replaces,
        }
        for s in registry.CONSUMERS
    ]
    jobs = [
        {
            "kind": "job",
            "name": s.name,
            "schedule": s.schedule,
            "description": s.description,
            "replaces": s.replaces,
        }
        for s in registry.JOBS
    ]
    deployments = [
        {
            "kind": "deployment",
            "name": s.name,
            "args": list(s.args),
            "enabled": s.enabled,
            "produces": list(s.produces),
            "description": s.description,
            "replaces": s.replaces,
        }
        for s in registry.DEPLOYMENTS
    ]
    if as_json:
        typer.echo(json.dumps({"consumers": consumers, "jobs": jobs, "deployments": deployments}, indent=2))
        return
    typer.echo("Consumers:")
    for c in consumers:
        typer.echo(f"  {c['name']:<32} topic {c['topic']:<32} {c['description']}")
    typer.echo("Jobs:")
    for j in jobs:
        typer.echo(f"  {j['name']:<32} {j['schedule']:<14} {j['description']}")
    typer.echo("Deployments:")
    for d in deployments:
        typer.echo(f"  {d['name']:<32} {' '.join(d['args']):<14} {d['description']}")


@app.command(epilog=_names("Consumers", registry.CONSUMERS))
def consume(name: Annotated[str, typer.Argument(help="Consumer name (listed below).")]) -> None:
    """Run one consumer until SIGTERM (its main topic and retry tiers)."""
    from shared.kafka.runtime import consume as run_consumer

    settings = _settings()
    spec = _lookup(registry.consumer, name)
    _require(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    raise typer.Exit(run_consumer(spec.name, settings))


@app.command(epilog=_names("Jobs", registry.JOBS))
def job(
    name: Annotated[str, typer.Argument(help="Job name (listed below).")],
    dry_run: Annotated[bool, typer.Option(help="Count what would change; change nothing.")] = False,
    scheduled_for: Annotated[
        datetime | None,
        typer.Option(help="The run's notion of now (ISO 8601, UTC), e.g. a missed schedule."),
    ] = None,
    workspace: Annotated[str | None, typer.Option(help="migrate-workspace: MIGRATE_WORKSPACE_SLUG.")] = None,
    to: Annotated[str | None, typer.Option(help="migrate-workspace: MIGRATE_TARGET_DATABASE_URL.")] = None,
    s3_bucket: Annotated[str | None, typer.Option(help="migrate-workspace: MIGRATE_S3_TARGET_BUCKET.")] = (
        None
    ),
) -> None:
    """Run one job now. Exit 0: done (or another run holds the lock); 1: failed; 2: usage or
    configuration; 3: database unreachable."""
    from datetime import UTC

    from shared.cron.runtime import run_job

    settings = _settings()
    spec = _lookup(registry.job, name)
    require_database(settings)
    flags = {"migrate_workspace_slug": workspace, "migrate_target_database_url": to,
             "migrate_s3_target_bucket": s3_bucket}  # fmt: skip
    if any(v is not None for v in flags.values()):
        from dataclasses import replace

        settings = replace(settings, **{k: v for k, v in flags.items() if v is not None})
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
    """Read event data as JSON on stdin (one object, or one per line); produce valid envelopes.
    Nothing on stdin: nothing produced (exit 0, said on stderr)."""
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
    if sys.stdin.isatty():
        typer.echo("reading event data (JSON) from stdin; end with Ctrl-D", err=True)
    text = sys.stdin.read().strip()
    if not text:
        typer.echo(f"nothing produced: no event data on stdin (topic {settings.topic(topic)})", err=True)
        return
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
    require_broker(settings)
    producer = EventProducer(settings)
    producer.send_many(topic, [(key or _default_key(topic, e.data), e) for e in events])
    for e in events:
        typer.echo(json.dumps({"produced": e.id, "topic": settings.topic(topic)}))


# Topics whose catalogue key (DESIGN.md) is not the first of the fields below.
_TOPIC_KEY_FIELDS = {"imports": ("project_id",)}


def _default_key(topic: str, data: dict) -> str | None:
    fields = _TOPIC_KEY_FIELDS.get(topic, ())
    for field in (*fields, "issue_id", "webhook_id", "workspace_id", "page_id", "id"):
        if isinstance(data.get(field), str):
            return data[field]
    return None


@dlq_app.command("show")
def dlq_show(
    topic: Annotated[str, typer.Argument(help="Logical topic whose DLQ to read.")],
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
) -> None:
    """Print dead letters (JSON lines with their failure headers); consumes nothing."""
    from shared.cli.dlq import print_dead_letters

    print_dead_letters(_dlq_settings(topic), topic, limit)


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="Logical topic whose DLQ to replay.")],
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
) -> None:
    """Re-publish dead letters to their original topic (each once)."""
    from shared.cli.dlq import replay

    typer.echo(json.dumps({"replayed": replay(_dlq_settings(topic), topic, limit)}))


def _dlq_settings(topic: str) -> Settings:
    settings = _settings()
    if topic not in {c.topic for c in registry.CONSUMERS}:
        known = ", ".join(c.topic for c in registry.CONSUMERS)
        raise ConfigError(f"unknown topic {topic!r} (known: {known})")
    require_broker(settings)
    return settings


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
    require_database(settings)
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
    require_database(settings)
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
    ready: Annotated[
        bool, typer.Option("--ready", help="Readiness: the file's '.ready' companion (shared/health.py).")
    ] = False,
) -> None:
    """Liveness probe: exit 1 when the consumer loop has not touched its health file lately.
    With --ready, the readiness probe: exit 1 unless the consumer is ready (topics there,
    partitions assigned, not holding on a dependency outage, not stopping)."""
    from shared.health import check, ready_file

    path = file or Path(_load_settings().health_file)
    if ready:
        path = Path(ready_file(path))
    healthy, message = check(path, max_age)
    if not healthy:
        typer.echo(f"not ready: {message}" if ready else message, err=True)
        raise typer.Exit(1)
    typer.echo(message)


@app.command()
def config(
    markdown: Annotated[bool, typer.Option(help="The README's configuration table.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show every setting's effective value (secrets and passwords inside URLs hidden), or the
    table of variables."""
    if markdown:
        typer.echo(markdown_table())
        return
    shown = shown_values(_load_settings())
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    width = max(map(len, shown))
    typer.echo(f"{'Variable':<{width}}  Value")
    for env, value in shown.items():
        typer.echo(f"{env:<{width}}  {value or '(empty)'}")


@app.command("export-readme")
def export_readme(
    check: Annotated[bool, typer.Option(help="Fail if README.md's generated tables are stale.")] = False,
) -> None:
    """Write the registry and configuration tables into README.md (between their markers)."""
    from shared.cli import readme

    tables = {"registry": what_runs_table(), "configuration": markdown_table()}
    if check:
        stale = readme.stale_sections(tables)
        if stale:
            names = ", ".join(stale)
            raise CliError(f"README.md: the {names} table is stale: run `plane-workers export-readme`")
        typer.echo("README.md tables are current")
        return
    readme.write(tables)
    typer.echo(f"wrote {readme.README}")


@mail_app.command("preview")
def mail_preview(
    name: Annotated[str, typer.Argument(help="The mail: magic_link, workspace_invitation, ...")],
    data: Annotated[str, typer.Option("--data", help="The event's data, as JSON (Plane's task arguments).")],
    out: Annotated[Path | None, typer.Option(help="The .eml file to write.")] = None,
) -> None:
    """Render one mail as the `emails` consumer would (reads DATABASE_URL, writes nothing there)."""
    from shared.cli.mail import preview

    path, to, subject = preview(_settings(), name, data, out)
    typer.echo(f"wrote {path}: to {to}, subject {subject!r}")


@app.command()
def dev(
    state_dir: Annotated[Path | None, typer.Option(help="Embedded stack data.")] = None,
    jobs_now: Annotated[bool, typer.Option(help="Also run every job once at start-up.")] = False,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Also run this consumer, job or deployment, off by default (e.g. embeddings, ai-reconcile,"
            " celery-bridge); repeatable.",
        ),
    ] = None,
) -> None:
    """Run the default install's consumers plus an in-process cron schedule of its jobs on the
    embedded stack (Ctrl-C stops)."""
    from shared.cli.dev import check_named, run_dev

    extra = _lookup(check_named, with_ or [])
    raise typer.Exit(run_dev(_settings(), state_dir, jobs_now=jobs_now, extra=extra))


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
        raise ConfigError(str(exc)) from None


def main() -> None:
    app(prog_name="plane-workers")  # also under `python -m shared.cli.main` (dev's children)


if __name__ == "__main__":
    main()
