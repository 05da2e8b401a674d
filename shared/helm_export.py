"""The chart's workload list, generated from the registry (`plane-workers export-helm`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from shared import registry

CHART_DIR = Path(__file__).resolve().parent.parent / "charts" / "plane-workers"
WORKLOADS_FILE = CHART_DIR / "workloads.yaml"

HEADER = (
    "# GENERATED from shared/registry.py by `plane-workers export-helm`. Do not edit by hand:\n"
    "# the chart tests and `export-helm --check` fail when this file is stale.\n"
)


def workloads() -> dict[str, Any]:
    consumers = {
        spec.name: {
            "topic": spec.topic,
            "group": spec.group,
            "partitions": spec.partitions,
            "dlqTopic": spec.dlq_topic,
            "retryTopics": list(spec.retry_topics),
            "args": spec.args,
            "resources": spec.resources.as_k8s(),
            "gpu": spec.resources.gpu > 0,
            # consumers.<name>.enabled's default in the chart.
            "enabled": spec.enabled_by_default,
            "description": spec.description,
        }
        for spec in registry.CONSUMERS
    }
    jobs = {
        spec.name: {
            "schedule": spec.schedule,
            "args": spec.args,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "startingDeadlineSeconds": spec.starting_deadline_seconds,
            "backoffLimit": spec.backoff_limit,
            # The longest gap between two scheduled runs: the PrometheusRule's "no success" alert.
            "expectedIntervalSeconds": expected_interval_seconds(spec.schedule),
            "resources": spec.resources.as_k8s(),
            # cronjobs.<name>.enabled's default in the chart.
            "enabled": spec.enabled_by_default,
            # Run by hand only: its CronJob is always suspended (templates/_helpers.tpl).
            "manual": spec.manual,
            "description": spec.description,
        }
        for spec in registry.JOBS
    }
    # Deployments that are not Kafka consumers (the Celery bridge): templates/deployments.yaml.
    deployments = {
        spec.name: {
            "args": list(spec.args),
            "enabled": spec.enabled,
            "resources": spec.resources.as_k8s(),
            "description": spec.description,
        }
        for spec in registry.DEPLOYMENTS
    }
    return {"consumers": consumers, "cronjobs": jobs, "deployments": deployments, "topics": topics()}


def topics() -> dict[str, dict[str, Any]]:
    """Every logical topic the registry needs (as `topics create` makes them): its kind, the main
    topic whose partition count it follows, and the registry's partitions. The chart renders its
    Strimzi KafkaTopics from it (the topics hook Job asks `topics create` itself)."""
    found: dict[str, dict[str, Any]] = {}
    for spec in registry.CONSUMERS:
        found[spec.topic] = {"kind": "main", "follows": spec.topic}
        found[spec.dlq_topic] = {"kind": "dlq", "follows": spec.topic}
        for retry in spec.retry_topics:
            found[retry] = {"kind": "retry", "follows": spec.topic}
    for producer in (*registry.CONSUMERS, *registry.JOBS, *registry.DEPLOYMENTS):
        for topic in producer.produces:
            kind = "dlq" if topic.endswith(".dlq") else "main"
            found.setdefault(topic, {"kind": kind, "follows": topic})
    partitions = dict(registry.all_topics())
    return {name: {**found[name], "partitions": partitions[name]} for name in sorted(partitions)}


def expected_interval_seconds(schedule: str) -> int:
    """The longest gap between consecutive runs of a cron `schedule` (UTC), over a leap year or
    5000 runs, whichever ends first (enough for any cycle a CronJob schedule can have)."""
    start = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    times = croniter(schedule, start)
    previous = times.get_next(float)
    longest = 0.0
    for _ in range(5000):
        current = times.get_next(float)
        longest = max(longest, current - previous)
        if current - start > 366 * 86400:
            break
        previous = current
    return int(longest)


def render() -> str:
    return HEADER + yaml.safe_dump(workloads(), sort_keys=True, width=120)


def write(path: Path = WORKLOADS_FILE) -> None:
    path.write_text(render())


def is_current(path: Path = WORKLOADS_FILE) -> bool:
    return path.exists() and path.read_text() == render()
