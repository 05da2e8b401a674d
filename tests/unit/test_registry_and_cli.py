"""The registry is the single source: entries are valid, and the CLI and chart agree with it."""

from __future__ import annotations

import json

import pytest
from croniter import croniter
from typer.testing import CliRunner

from shared import helm_export, registry
from shared.cli.main import app
from shared.events.schemas import event_types, validator_for

runner = CliRunner()


@pytest.mark.parametrize("spec", registry.CONSUMERS, ids=lambda s: s.name)
def test_consumer_entry_is_valid(spec: registry.ConsumerSpec) -> None:
    assert registry.NAME_PATTERN.match(spec.name)
    assert callable(registry.load(spec.handler or spec.strategy or ""))
    assert spec.owner and spec.description
    assert spec.dlq_topic == f"{spec.topic}.dlq"
    assert all(t in event_types() for t in spec.event_types)
    assert list(spec.retry_delays_s) == sorted(spec.retry_delays_s)


def samples_problem(spec: registry.ConsumerSpec) -> str | None:
    """Why the conformance suite (tests/conformance) cannot reach this consumer, if it cannot."""
    package = (spec.handler or spec.strategy or "").partition(":")[0].rsplit(".", 1)[0]
    if not spec.samples:
        return (
            f"consumer {spec.name} has no samples: write {package.replace('.', '/')}/samples.py with "
            "`def cases(world: SampleWorld) -> ConsumerSamples` (shared/conformance.py) and set "
            f'samples="{package}.samples:cases" on its ConsumerSpec in shared/registry.py'
        )
    if not callable(registry.load(spec.samples)):
        return f"consumer {spec.name}: samples {spec.samples!r} is not a function"
    return None


@pytest.mark.parametrize("spec", registry.CONSUMERS, ids=lambda s: s.name)
def test_consumer_has_conformance_samples(spec: registry.ConsumerSpec) -> None:
    assert samples_problem(spec) is None, samples_problem(spec)


def test_a_consumer_without_samples_is_told_what_to_add() -> None:
    bare = registry.ConsumerSpec(
        name="pages", topic="pages", event_types=(), description="d", handler="services.pages.handler:handle"
    )
    assert samples_problem(bare) == (
        "consumer pages has no samples: write services/pages/samples.py with "
        "`def cases(world: SampleWorld) -> ConsumerSamples` (shared/conformance.py) and set "
        'samples="services.pages.samples:cases" on its ConsumerSpec in shared/registry.py'
    )


def test_consumer_takes_exactly_one_of_handler_and_strategy() -> None:
    for kwargs in ({}, {"handler": "a:b", "strategy": "c:d"}):
        with pytest.raises(ValueError, match="exactly one"):
            registry.ConsumerSpec(name="x-y", topic="x", event_types=(), description="d", **kwargs)


def test_webhook_retry_tiers_are_the_delivery_schedule() -> None:
    from services.webhooks.schedule import DEFAULT_SCHEDULE_S

    assert registry.consumer("webhook-deliveries").retry_delays_s == tuple(map(float, DEFAULT_SCHEDULE_S))


# Plane's beat pins these at minute 0 (plane-bgtasks §2); every other job is spread off it.
PLANE_PINNED_AT_MINUTE_0 = {
    "hard-delete", "archive-close-issues", "delete-unuploaded-assets", "cleanup-page-versions",
}  # fmt: skip


@pytest.mark.parametrize("spec", registry.JOBS, ids=lambda s: s.name)
def test_job_entry_is_valid(spec: registry.JobSpec) -> None:
    assert registry.NAME_PATTERN.match(spec.name)
    assert callable(registry.load(spec.entrypoint))
    assert croniter.is_valid(spec.schedule)
    # A manual job's schedule never fires (its CronJob is suspended).
    spread = spec.schedule.split()[0] != "0" or spec.name in PLANE_PINNED_AT_MINUTE_0 or spec.manual
    assert spread, "spread off minute 0"
    assert 0 < spec.backoff_limit <= 2 and spec.active_deadline_seconds > 0


def test_names_are_unique() -> None:
    names = [s.name for s in registry.CONSUMERS] + [s.name for s in registry.JOBS]
    assert len(names) == len(set(names))


def test_every_schema_is_valid_json_schema() -> None:
    for name in ["cloudevent", *event_types()]:
        validator_for(name)  # raises SchemaError if not


def test_cli_list_json_equals_the_registry() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [c["name"] for c in listed["consumers"]] == [s.name for s in registry.CONSUMERS]
    assert [j["name"] for j in listed["jobs"]] == [s.name for s in registry.JOBS]
    assert [c["topic"] for c in listed["consumers"]] == [s.topic for s in registry.CONSUMERS]
    assert [j["schedule"] for j in listed["jobs"]] == [s.schedule for s in registry.JOBS]


def test_chart_workloads_file_is_current() -> None:
    assert helm_export.is_current(), "run `plane-workers export-helm`"
    result = runner.invoke(app, ["export-helm", "--check"])
    assert result.exit_code == 0


def test_unknown_workloads_are_usage_errors() -> None:
    assert runner.invoke(app, ["job", "no-such-job"]).exit_code == 2
    assert runner.invoke(app, ["consume", "no-such-consumer"]).exit_code == 2
    result = runner.invoke(app, ["dev", "--with", "no-such-consumer"])
    assert result.exit_code == 2  # refused before any embedded server starts
    assert "no consumer, job or deployment named 'no-such-consumer' (known: " in result.output


def test_dev_runs_what_a_default_install_runs_and_adds_what_is_named() -> None:
    from shared.cli.dev import consumers_to_run, deployments_to_run, jobs_to_run

    default = {spec.name for spec in consumers_to_run()}
    assert default == {spec.name for spec in registry.CONSUMERS if spec.enabled_by_default}
    assert "embeddings" not in default
    assert {spec.name for spec in consumers_to_run(["embeddings"])} == default | {"embeddings"}
    # Jobs alike: Plane AI's schedule only when named; a job name adds no consumer and vice versa.
    default_jobs = {spec.name for spec in jobs_to_run()}
    assert default_jobs == {
        spec.name for spec in registry.JOBS if spec.enabled_by_default and not spec.manual
    }
    # A manual job (a back-fill) only when named.
    assert "backfill-issue-versions" not in default_jobs
    assert "backfill-issue-versions" in {spec.name for spec in jobs_to_run(["backfill-issue-versions"])}
    assert "ai-reconcile" not in default_jobs and "archive-close-issues" in default_jobs
    named = ["ai-reconcile", "embeddings"]
    assert {spec.name for spec in jobs_to_run(named)} == default_jobs | {"ai-reconcile"}
    assert {spec.name for spec in consumers_to_run(named)} == default | {"embeddings"}
    with pytest.raises(registry.UnknownWorkload, match="no consumer, job or deployment named 'ai-reconc"):
        jobs_to_run(["ai-reconciler"])
    # The Celery bridge is off (it needs Plane's RabbitMQ) unless named, and adds nothing else.
    assert deployments_to_run() == []
    assert [spec.name for spec in deployments_to_run(["celery-bridge"])] == ["celery-bridge"]
    assert {spec.name for spec in consumers_to_run(["celery-bridge"])} == default
