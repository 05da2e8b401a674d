"""/health on a consumer's metrics port and `plane-workers ai health`, on the embedded PostgreSQL
with pgvector and the real all-MiniLM-L6-v2 on CPU: healthy (200, exit 0) with the breaker closed,
the index reachable, the model loaded and its device; the database refusing connections turns
both unhealthy (503, exit 3) without the server or the command failing."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

from sqlalchemy import Engine

from shared import consumer_health, metrics
from shared.embedded.ports import free_port
from shared.embedded.stack import env_for
from shared.settings import Settings
from tests.helpers import set_database_up

CLI = [sys.executable, "-m", "shared.cli.main", "ai", "health"]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def ai_health(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = env_for(settings) | {"EMBEDDING_DEVICE": "cpu", "LOG_LEVEL": "WARNING"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def test_health_on_the_metrics_port_follows_the_database(
    settings: Settings, engine: Engine, admin: Engine
) -> None:
    port = free_port()
    metrics.serve(port, consumer_health.for_consumer("issue-description-versions", settings))
    status, body = get(f"http://127.0.0.1:{port}/health")
    document = json.loads(body)
    assert status == 200, document
    assert document["healthy"] is True and document["consumer"] == "issue-description-versions"
    assert document["database"]["ok"] is True
    assert document["database"]["circuit_breaker"]["state"] == "closed"
    # /metrics is still there, with the breaker's state among the series.
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and b"plane_workers_database_circuit_state" in body

    engine.dispose()
    set_database_up(admin, settings.database_url, up=False)
    try:
        status, body = get(f"http://127.0.0.1:{port}/health")
    finally:
        set_database_up(admin, settings.database_url, up=True)
    document = json.loads(body)
    assert status == 503 and document["healthy"] is False
    assert document["database"]["ok"] is False
    assert "not currently accepting connections" in document["database"]["error"]
    assert settings.database_url not in body.decode()  # no URL (or password) in the answer
    assert get(f"http://127.0.0.1:{port}/health")[0] == 200  # back once the database is


def test_ai_health_loads_the_model_and_reports_every_check(
    settings: Settings, engine: Engine, admin: Engine
) -> None:
    result = ai_health(settings)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["healthy"] is True
    assert document["database"]["circuit_breaker"]["state"] == "closed"
    assert document["index"] == {"ok": True, "backend": "pgvector", "name": document["index"]["name"]}
    assert document["index"]["name"].startswith("ai_")
    assert document["model"]["loaded"] is True and document["model"]["dimension"] == 384
    assert document["device"] == "cpu"

    engine.dispose()
    set_database_up(admin, settings.database_url, up=False)
    try:
        result = ai_health(settings)
    finally:
        set_database_up(admin, settings.database_url, up=True)
    assert result.returncode == 3, result.stderr  # the database (and the pgvector index) unreachable
    document = json.loads(result.stdout)
    assert document["healthy"] is False
    assert document["database"]["ok"] is False and document["index"]["ok"] is False
    assert document["model"]["loaded"] is True


def test_ai_health_reads_a_running_consumers_endpoint(settings: Settings) -> None:
    port = free_port()
    metrics.serve(port, consumer_health.for_consumer("issue-description-versions", settings))
    result = ai_health(settings, "--endpoint", f"http://127.0.0.1:{port}/health")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["database"]["ok"] is True
    gone = ai_health(settings, "--endpoint", f"http://127.0.0.1:{free_port()}/health")
    assert gone.returncode == 3
    assert gone.stderr.count("\n") == 1 and "--endpoint=" in gone.stderr
    assert ai_health(settings, "--endpoint", "ftp://x/health").returncode == 2
