"""`plane-workers topics create` (the chart's topics hook) and `plane-workers check` (its `helm
test`), as processes against the embedded PostgreSQL and broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace

from confluent_kafka.admin import AdminClient

from shared import registry
from shared.embedded.postgres import EmbeddedPostgres
from shared.embedded.stack import env_for
from shared.kafka.config import client_config
from shared.kafka.topics import desired_topics
from shared.settings import Settings

CONSUMER = registry.CONSUMERS[0]


def cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shared.cli.main", *args]
    return subprocess.run(command, env=env_for(settings), capture_output=True, text=True, timeout=timeout)


def fresh_prefix(settings: Settings) -> Settings:
    return replace(settings, kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.")


def partitions(settings: Settings) -> dict[str, int]:
    metadata = AdminClient(client_config(settings)).list_topics(timeout=10)
    prefix = settings.kafka_topic_prefix
    return {name: len(t.partitions) for name, t in metadata.topics.items() if name.startswith(prefix)}


def test_topics_create_makes_every_topic_then_changes_nothing(settings: Settings) -> None:
    bare = fresh_prefix(settings)
    args = [
        "topics",
        "create",
        "--replication-factor",
        "1",
        "--partitions",
        f"{CONSUMER.topic}=8",
        "--retry-config",
        "retention.ms=604800000",
        "--dlq-config",
        "retention.ms=2592000000",
    ]
    first = cli(bare, *args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    wanted = {t.name: t.partitions for t in desired_topics(bare)}
    assert sorted(report["created"]) == sorted(wanted)
    family = {bare.topic(t) for t in (CONSUMER.topic, CONSUMER.dlq_topic, *CONSUMER.retry_topics)}
    expected = {name: 8 if name in family else count for name, count in wanted.items()}
    assert partitions(bare) == expected

    again = cli(bare, *args)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    # Idempotent: nothing created and no partitions added. (The embedded broker reports no topic
    # configs, so configs_updated lists every managed key again there; real Kafka lists none.)
    assert report["created"] == [] and report["partitions_added"] == {}
    assert partitions(bare) == expected


def test_topics_create_refuses_bad_options_with_one_line(settings: Settings) -> None:
    result = cli(settings, "topics", "create", "--partitions", "no-such-topic=3")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no-such-topic" in result.stderr
    result = cli(settings, "topics", "create", "--config", "retention.ms")
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


def test_topics_create_without_a_broker_says_so(settings: Settings) -> None:
    nowhere = replace(settings, kafka_bootstrap_servers="127.0.0.1:9")
    started = time.monotonic()
    result = cli(nowhere, "topics", "create", "--timeout", "3")
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 30
    (line,) = result.stderr.strip().splitlines()
    assert "cannot reach Kafka at KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9" in line


def test_check_passes_on_a_ready_deployment(settings: Settings) -> None:
    result = cli(settings, "check", "--timeout", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == [
        "database:",
        "plane",
        "migrations:",
        "broker:",
        "topics:",
    ]
    assert all(line.startswith("ok ") for line in lines), lines


def test_check_names_each_failure_on_its_own_line(
    settings: Settings, embedded_postgres: EmbeddedPostgres
) -> None:
    # An empty database (no Plane tables, no migrations) and a prefix with no topics.
    empty = embedded_postgres.create_database(f"e_{uuid.uuid4().hex[:10]}")
    broken = replace(fresh_prefix(settings), database_url=empty)
    result = cli(broken, "check", "--timeout", "5")
    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failures) == 3, result.stdout
    plane, migrations, topics = failures
    assert "public.workspaces does not exist" in plane
    assert "no revision" in migrations and "plane-workers migrate" in migrations
    assert f"{len(desired_topics(broken))} of {len(desired_topics(broken))} missing" in topics
    assert "plane-workers topics create" in topics


def test_check_without_database_or_broker_fails_fast_and_hides_the_password(settings: Settings) -> None:
    nowhere = replace(
        settings,
        database_url="postgresql://plane:s3cret-pw@127.0.0.1:9/plane",
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    started = time.monotonic()
    result = cli(nowhere, "check", "--timeout", "3")
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["FAIL", "FAIL", "FAIL"]
    assert "DATABASE_URL=postgresql://plane:[redacted]@127.0.0.1:9/plane" in lines[0]
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9" in lines[1]
