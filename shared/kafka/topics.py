"""Create or update every topic the registry needs (`plane-workers topics create`).

The registry says which topics exist (each consumer's main topic, its retry tiers and its DLQ, and
the topics jobs produce to) and how many partitions each gets. The operator adds the replication
factor, per-topic partition overrides and topic configs (TopicOptions; the chart's `topics:`
values). `ensure_topics` then makes the cluster match, never destructively:

- a missing topic is created with its partitions, replication factor and configs;
- an existing topic with fewer partitions than wanted gets more (Kafka cannot remove partitions,
  so one with more is left as it is and reported);
- each wanted config key that differs is set (incrementally: keys not asked for are left alone);
- a replication factor that differs is reported only: changing it is a partition reassignment.

Running it twice changes nothing the second time, so it is safe as a Helm pre-install and
pre-upgrade hook, and safe to run by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from shared import registry
from shared.kafka.config import client_config, max_message_bytes
from shared.settings import Settings

log = logging.getLogger(__name__)

TopicKind = Literal["main", "retry", "dlq"]

# Kafka's error codes that mean "someone else did it first": not an error for an idempotent run.
_ALREADY_EXISTS = KafkaError.TOPIC_ALREADY_EXISTS
_INVALID_REPLICATION_FACTOR = KafkaError.INVALID_REPLICATION_FACTOR


class TopicError(RuntimeError):
    """A topic could not be made as asked; the message names the topic and what to change."""


class TopicOptionsError(ValueError):
    """Options that cannot apply (an unknown topic, a partition count below 1...)."""


@dataclass(frozen=True)
class TopicOptions:
    """What the operator decides on top of the registry.

    `partitions` is keyed by logical main topic (a consumer's `topic`, or a topic a job produces
    to); a consumer's retry tiers and DLQ follow its main topic, since one consumer group reads
    them all. Configs are Kafka topic configs (`retention.ms`, `min.insync.replicas`...): `config`
    for every topic, then `retry_config` / `dlq_config` laid over it for those kinds.
    """

    replication_factor: int = 1
    partitions: Mapping[str, int] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    retry_config: Mapping[str, str] = field(default_factory=dict)
    dlq_config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicSpec:
    name: str  # physical
    logical: str
    kind: TopicKind
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class Existing:
    """What the cluster has for one topic; `config` holds the values of the keys we manage."""

    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    # physical name -> (partitions before, after)
    partitions_added: dict[str, tuple[int, int]] = field(default_factory=dict)
    # physical name -> {key: new value}, only the keys that changed
    configs_updated: dict[str, dict[str, str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    # Differences ensure_topics does not fix (partitions above the wanted count, replication).
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "partitions_added": {name: list(change) for name, change in self.partitions_added.items()},
            "configs_updated": self.configs_updated,
            "unchanged": len(self.unchanged),
            "warnings": self.warnings,
        }


def _logical_topics() -> dict[str, tuple[TopicKind, str]]:
    """Every logical topic -> (kind, the main topic it follows)."""
    topics: dict[str, tuple[TopicKind, str]] = {}
    for spec in registry.CONSUMERS:
        topics[spec.topic] = ("main", spec.topic)
        topics[spec.dlq_topic] = ("dlq", spec.topic)
        for retry in spec.retry_topics:
            topics[retry] = ("retry", spec.topic)
    for job_spec in registry.JOBS:
        for topic in job_spec.produces:
            topics.setdefault(topic, ("main", topic))
    # A deployment's own dead letters (celery-bridge.dlq) are a DLQ like a consumer's, though
    # no main topic of theirs exists here; helm_export.topics classes them alike.
    for deployment in registry.DEPLOYMENTS:
        for topic in deployment.produces:
            topics.setdefault(topic, ("dlq" if topic.endswith(".dlq") else "main", topic))
    return topics


def main_topics() -> list[str]:
    """The logical names `TopicOptions.partitions` may be keyed by."""
    return sorted({main for _, main in _logical_topics().values()})


def desired_topics(settings: Settings, options: TopicOptions | None = None) -> list[TopicSpec]:
    """Every topic the registry needs, with the options applied, sorted by physical name.

    Retry tiers and DLQs also get `max.message.bytes` = the producer's limit (unless a config sets
    it): what the workers write there, a re-queued event or a dead letter cut to fit, may be as
    large as the producer allows, and Kafka's default topic limit (1 MiB) is below it.
    """
    options = options or TopicOptions()
    kinds = _logical_topics()
    known = set(main_topics())
    unknown = sorted(set(options.partitions) - known)
    if unknown:
        raise TopicOptionsError(
            f"--partitions: no topic named {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    bad = {topic: n for topic, n in options.partitions.items() if n < 1}
    if bad:
        raise TopicOptionsError(f"--partitions: must be at least 1: {bad}")
    if options.replication_factor < 1 and options.replication_factor != -1:
        raise TopicOptionsError("--replication-factor must be at least 1 (or -1: the broker's default)")
    topics = []
    for logical, partitions in registry.all_topics():
        kind, main = kinds.get(logical, ("main", logical))
        config = dict(options.config)
        if kind != "main":
            config.setdefault("max.message.bytes", str(max_message_bytes(settings)))
        config.update({"retry": options.retry_config, "dlq": options.dlq_config}.get(kind, {}))
        topics.append(
            TopicSpec(
                name=settings.topic(logical),
                logical=logical,
                kind=kind,
                partitions=options.partitions.get(main, partitions),
                config={key: str(value) for key, value in config.items()},
            )
        )
    return sorted(topics, key=lambda t: t.name)


@dataclass(frozen=True)
class Plan:
    create: list[TopicSpec]
    add_partitions: dict[str, tuple[int, int]]
    set_configs: dict[str, dict[str, str]]
    unchanged: list[str]
    warnings: list[str]


def plan(wanted: list[TopicSpec], existing: Mapping[str, Existing], replication_factor: int) -> Plan:
    """What to do to make `existing` match `wanted` (pure: no broker involved)."""
    create, unchanged, warnings = [], [], []
    add_partitions: dict[str, tuple[int, int]] = {}
    set_configs: dict[str, dict[str, str]] = {}
    for topic in wanted:
        have = existing.get(topic.name)
        if have is None:
            create.append(topic)
            continue
        changed = False
        if have.partitions < topic.partitions:
            add_partitions[topic.name] = (have.partitions, topic.partitions)
            changed = True
        elif have.partitions > topic.partitions:
            warnings.append(
                f"{topic.name}: has {have.partitions} partitions, more than the {topic.partitions} wanted; "
                "Kafka cannot remove partitions, left as it is"
            )
        if replication_factor != -1 and have.replication_factor != replication_factor:
            warnings.append(
                f"{topic.name}: replication factor is {have.replication_factor}, not {replication_factor}; "
                "changing it needs a partition reassignment (kafka-reassign-partitions), left as it is"
            )
        differing = {k: v for k, v in topic.config.items() if have.config.get(k) != v}
        if differing:
            set_configs[topic.name] = differing
            changed = True
        if not changed:
            unchanged.append(topic.name)
    return Plan(create, add_partitions, set_configs, unchanged, warnings)


def _admin(settings: Settings) -> AdminClient:
    # librdkafka's own reconnect chatter would bury the one line that says what failed.
    quiet = logging.getLogger("shared.kafka.topics.librdkafka")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    return AdminClient(client_config(settings), logger=quiet)


def _list_topics(admin: AdminClient, settings: Settings, timeout_s: float) -> dict[str, Existing]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = admin.list_topics(timeout=min(5.0, max(timeout_s, 0.5)))
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise TopicError(
                    f"cannot reach Kafka at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
                    f"within {timeout_s:.0f}s: {exc.args[0].str() if exc.args else exc}"
                ) from None
            time.sleep(0.5)
    existing = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None:
            continue
        partitions = list(topic.partitions.values())
        replicas = len(partitions[0].replicas) if partitions else 0
        existing[name] = Existing(partitions=len(partitions), replication_factor=replicas)
    return existing


def _describe_configs(
    admin: AdminClient, names: list[str], keys: set[str], timeout_s: float
) -> dict[str, dict[str, str]]:
    if not names or not keys:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, name) for name in names], request_timeout=timeout_s
    )
    found: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException as exc:
            raise TopicError(f"{resource.name}: reading its configs failed: {_error_text(exc)}") from None
        found[resource.name] = {
            key: entry.value for key, entry in entries.items() if key in keys and entry.value is not None
        }
    return found


def _error_text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def ensure_topics(
    settings: Settings,
    options: TopicOptions | None = None,
    *,
    dry_run: bool = False,
    timeout_s: float = 30.0,
) -> TopicReport:
    """Make every registry topic exist with the options; see the module docstring."""
    options = options or TopicOptions()
    wanted = desired_topics(settings, options)
    admin = _admin(settings)
    existing = _list_topics(admin, settings, timeout_s)
    present = [t.name for t in wanted if t.name in existing]
    keys = {key for t in wanted for key in t.config}
    configs = _describe_configs(admin, present, keys, timeout_s)
    existing = {
        name: Existing(have.partitions, have.replication_factor, configs.get(name, {}))
        for name, have in existing.items()
    }
    steps = plan(wanted, existing, options.replication_factor)
    report = TopicReport(
        created=[t.name for t in steps.create],
        partitions_added=dict(steps.add_partitions),
        configs_updated=dict(steps.set_configs),
        unchanged=list(steps.unchanged),
        warnings=list(steps.warnings),
    )
    for warning in steps.warnings:
        log.warning("%s", warning)
    if dry_run:
        return report

    if steps.create:
        new = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=options.replication_factor,
                config=t.config,
            )
            for t in steps.create
        ]
        report.created = []
        for name, future in admin.create_topics(new, operation_timeout=timeout_s).items():
            try:
                future.result()
                report.created.append(name)
            except KafkaException as exc:
                code = exc.args[0].code() if exc.args else None
                if code == _ALREADY_EXISTS:  # a concurrent run won; its settings are ours too
                    report.unchanged.append(name)
                    continue
                if code == _INVALID_REPLICATION_FACTOR:
                    raise TopicError(
                        f"{name}: replication factor {options.replication_factor} is more than the "
                        f"brokers available ({_error_text(exc)}); use --replication-factor (chart: "
                        "topics.replicationFactor) at most the broker count"
                    ) from None
                raise TopicError(f"{name}: create failed: {_error_text(exc)}") from None
        report.created.sort()
    if steps.add_partitions:
        request = [NewPartitions(name, after) for name, (_, after) in steps.add_partitions.items()]
        for name, future in admin.create_partitions(request, operation_timeout=timeout_s).items():
            try:
                future.result()
            except KafkaException as exc:
                raise TopicError(f"{name}: adding partitions failed: {_error_text(exc)}") from None
            log.warning(
                "%s: partitions %d -> %d; keys now map to other partitions, so per-key order holds "
                "only for events produced after the change",
                name,
                *steps.add_partitions[name],
            )
    if steps.set_configs:
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                    for key, value in sorted(changes.items())
                ],
            )
            for name, changes in steps.set_configs.items()
        ]
        for resource, future in admin.incremental_alter_configs(resources, request_timeout=timeout_s).items():
            try:
                future.result()
            except KafkaException as exc:
                raise TopicError(f"{resource.name}: config update failed: {_error_text(exc)}") from None
    log.info(
        "topics: %d created, %d with more partitions, %d with new configs, %d unchanged",
        len(report.created),
        len(report.partitions_added),
        len(report.configs_updated),
        len(report.unchanged),
    )
    return report


def create_topics(settings: Settings, replication_factor: int = 1, timeout_s: float = 30.0) -> list[str]:
    """Make every registry topic exist (registry partitions, no extra configs); returns the names
    created. For `dev`, `demo` and the tests; deployments use `ensure_topics` with their options."""
    report = ensure_topics(settings, TopicOptions(replication_factor=replication_factor), timeout_s=timeout_s)
    return report.created
