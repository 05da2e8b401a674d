"""`topics create` options and its plan against what a cluster has (no broker needed)."""

from __future__ import annotations

import pytest

from shared import registry
from shared.kafka.config import max_message_bytes
from shared.kafka.topics import (
    Existing,
    TopicOptions,
    TopicOptionsError,
    desired_topics,
    main_topics,
    plan,
)
from shared.settings import Settings

SETTINGS = Settings.from_env({"KAFKA_TOPIC_PREFIX": "prod."})
CONSUMER = registry.CONSUMERS[0]


def by_logical(options: TopicOptions | None = None) -> dict[str, object]:
    return {t.logical: t for t in desired_topics(SETTINGS, options)}


def test_every_registry_topic_with_its_kind_and_the_prefix():
    topics = by_logical()
    assert set(topics) == {name for name, _ in registry.all_topics()}
    for spec in registry.CONSUMERS:
        assert topics[spec.topic].kind == "main"
        assert topics[spec.dlq_topic].kind == "dlq"
        assert {topics[t].kind for t in spec.retry_topics} <= {"retry"}
        assert topics[spec.topic].name == f"prod.{spec.topic}"
        assert topics[spec.topic].partitions == spec.partitions


def test_partitions_of_a_main_topic_carry_to_its_retry_tiers_and_dlq():
    topics = by_logical(TopicOptions(partitions={CONSUMER.topic: 12}))
    family = {CONSUMER.topic, CONSUMER.dlq_topic, *CONSUMER.retry_topics}
    registry_partitions = dict(registry.all_topics())
    for logical, topic in topics.items():
        assert topic.partitions == (12 if logical in family else registry_partitions[logical])


def test_configs_by_kind_over_the_common_ones():
    options = TopicOptions(
        config={"min.insync.replicas": "2", "retention.ms": "1"},
        retry_config={"retention.ms": "2"},
        dlq_config={"retention.ms": "3", "max.message.bytes": "5000000"},
    )
    topics = by_logical(options)
    assert topics[CONSUMER.topic].config == {"min.insync.replicas": "2", "retention.ms": "1"}
    retry = topics[CONSUMER.retry_topics[0]].config
    assert retry == {
        "min.insync.replicas": "2",
        "retention.ms": "2",
        # What the workers write to a tier may be as large as the producer allows.
        "max.message.bytes": str(max_message_bytes(SETTINGS)),
    }
    assert topics[CONSUMER.dlq_topic].config == {
        "min.insync.replicas": "2",
        "retention.ms": "3",
        "max.message.bytes": "5000000",
    }


@pytest.mark.parametrize(
    "options",
    [
        TopicOptions(partitions={"no-such-topic": 3}),
        # Retry tiers follow their main topic; they are not set on their own.
        TopicOptions(partitions={CONSUMER.retry_topics[0]: 3}),
        TopicOptions(partitions={CONSUMER.topic: 0}),
        TopicOptions(replication_factor=0),
    ],
)
def test_options_that_cannot_apply(options: TopicOptions):
    with pytest.raises(TopicOptionsError):
        desired_topics(SETTINGS, options)


def test_partition_keys_are_the_main_topics():
    assert CONSUMER.topic in main_topics()
    assert CONSUMER.dlq_topic not in main_topics()


def test_plan_creates_what_is_missing_and_leaves_what_matches():
    wanted = desired_topics(SETTINGS, TopicOptions(replication_factor=3))
    first, second = wanted[0], wanted[1]
    existing = {second.name: Existing(second.partitions, 3, dict(second.config))}
    steps = plan(wanted, existing, 3)
    assert first in steps.create and second not in steps.create
    assert steps.unchanged == [second.name]
    assert steps.add_partitions == {} and steps.set_configs == {} and steps.warnings == []


def test_plan_adds_partitions_but_never_removes_them():
    topic = desired_topics(SETTINGS, TopicOptions(partitions={CONSUMER.topic: 8}))
    main = next(t for t in topic if t.logical == CONSUMER.topic)
    grow = plan([main], {main.name: Existing(6, 1, dict(main.config))}, 1)
    assert grow.add_partitions == {main.name: (6, 8)}
    shrink = plan([main], {main.name: Existing(10, 1, dict(main.config))}, 1)
    assert shrink.add_partitions == {}
    assert shrink.unchanged == [main.name]
    (warning,) = shrink.warnings
    assert "10 partitions" in warning and "cannot remove" in warning


def test_plan_sets_only_the_config_keys_that_differ():
    options = TopicOptions(dlq_config={"retention.ms": "2592000000", "cleanup.policy": "delete"})
    dlq = next(t for t in desired_topics(SETTINGS, options) if t.kind == "dlq")
    have = dict(dlq.config) | {"retention.ms": "604800000", "segment.ms": "1"}
    steps = plan([dlq], {dlq.name: Existing(dlq.partitions, 1, have)}, 1)
    # Keys nobody asked for (segment.ms) are left alone.
    assert steps.set_configs == {dlq.name: {"retention.ms": "2592000000"}}


def test_plan_reports_a_replication_factor_it_cannot_change():
    main = desired_topics(SETTINGS)[0]
    steps = plan([main], {main.name: Existing(main.partitions, 1, dict(main.config))}, 3)
    (warning,) = steps.warnings
    assert "replication factor is 1, not 3" in warning
    # -1 (the broker's default) has nothing to compare with.
    assert plan([main], {main.name: Existing(main.partitions, 1, dict(main.config))}, -1).warnings == []
