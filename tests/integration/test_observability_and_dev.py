"""What an operator watches and runs: a consumer's /metrics, job pushes, and `plane-workers dev`.

The Pushgateway is stood in for by a real HTTP server on loopback that records its push API
(`POST /metrics/job/<job>`, a push-add, with the text exposition format), and the client side
(prometheus-client's pushadd_to_gateway) is exercised unchanged over the wire. What the gateway
keeps across pushes is tested in test_pushgateway.py (a model of it, and Debian's
prometheus-pushgateway when installed).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from shared import registry
from shared.cron.runtime import EXIT_OK, run_job
from shared.db.plane import IssueDescriptionVersion
from shared.db.state import JobRun, ProcessedEvent
from shared.embedded.ports import free_port
from shared.embedded.stack import env_for
from shared.events.producer import EventProducer
from tests.helpers import idv_event, processed, seed, spawn_consumer, wait_until
from tests.integration.http_servers import HttpServer, running

IDV = registry.consumer("issue-description-versions")


def test_consumer_serves_metrics_with_outcomes(settings, engine):  # type: ignore[no-untyped-def]
    (alice, _), issues = seed(engine, 3)
    port = free_port()
    consumer = spawn_consumer(IDV.name, settings, METRICS_PORT=str(port))
    try:
        producer = EventProducer(settings)
        producer.send_many(IDV.topic, [(str(i.id), idv_event(i, alice, creating=True)) for i in issues])
        producer.send_raw(settings.topic(IDV.topic), b"{not json", key=b"k")
        wait_until(lambda: processed(engine, IDV.name) == 3)

        def scrape() -> str:
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except requests.ConnectionError:
                return ""

        text = wait_until(lambda: (t := scrape()) and 'outcome="dead_lettered"' in t and t, timeout_s=30)
        assert f'plane_workers_events_processed_total{{consumer="{IDV.name}",outcome="ok"}} 3.0' in text
        dead = f'plane_workers_events_processed_total{{consumer="{IDV.name}",outcome="dead_lettered"}} 1.0'
        assert dead in text
        assert f'plane_workers_event_processing_seconds_count{{consumer="{IDV.name}"}}' in text
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=30) == 0, consumer.stderr.read().decode()[-3000:]  # type: ignore[union-attr]


def test_job_pushes_metrics_and_survives_a_dead_gateway(settings, engine):  # type: ignore[no-untyped-def]
    spec = registry.job("prune-worker-state")
    gateway = HttpServer()
    with running(gateway):
        code, _ = run_job(spec, replace(settings, pushgateway_url=gateway.url("")))
        assert code == EXIT_OK
    pushes = [r for r in gateway.requests if r.method == "POST"]
    assert pushes, "nothing was pushed"
    path, body = pushes[-1].path, pushes[-1].body.decode()
    assert path == "/metrics/job/plane-workers-prune-worker-state"
    assert 'plane_workers_job_last_success_timestamp_seconds{job="prune-worker-state"}' in body
    assert 'plane_workers_job_runs_total{job="prune-worker-state",outcome="success"}' in body

    # Nothing listens on this port any more: the push fails, the job does not.
    dead = replace(settings, pushgateway_url=f"http://127.0.0.1:{free_port()}")
    code, _ = run_job(spec, dead)
    assert code == EXIT_OK
    with engine.connect() as conn:
        assert conn.scalars(select(JobRun.status)).all() == ["success", "success"]


@pytest.mark.slow
def test_dev_runs_consumers_and_jobs_then_stops_cleanly(settings, engine, tmp_path):  # type: ignore[no-untyped-def]
    (alice, _), issues = seed(engine, 2)
    with engine.begin() as conn:  # an expired dedupe key, for the prune job to remove
        conn.execute(
            ProcessedEvent.__table__.insert().values(
                consumer="old",
                event_id="00000000-0000-4000-8000-000000000000",
                processed_at=datetime.now(UTC) - timedelta(days=30),
            )
        )
    # Named with --with, one of Plane AI's jobs (off by default) joins the default install's.
    # Manual jobs (back-fills) only when named.
    dev_jobs = [
        j for j in registry.JOBS if (j.enabled_by_default and not j.manual) or j.name == "ai-reap-stuck-jobs"
    ]
    # Files, not pipes: dev's children inherit them, and a pipe nobody reads while the test waits
    # fills at 64 kB and blocks every child writing to it.
    out_path, err_path = tmp_path / "dev.out", tmp_path / "dev.err"

    def printed(path: Path) -> str:
        return path.read_text(errors="replace")

    with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
        dev = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.main", "dev", "--jobs-now", "--with", "ai-reap-stuck-jobs"],
            env=env_for(settings) | {"LOG_LEVEL": "WARNING"},
            stdout=out_file,
            stderr=err_file,
            start_new_session=True,
        )
    try:
        events = [(str(i.id), idv_event(i, alice, creating=True)) for i in issues]
        EventProducer(settings).send_many(IDV.topic, events)
        # dev starts every default consumer at once (a dozen processes on CI's 2 cores): 15 s on an
        # idle machine.
        try:
            wait_until(lambda: processed(engine, IDV.name) == 2, timeout_s=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; dev printed:\n{printed(err_path)[-3000:]}") from None
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(IssueDescriptionVersion)) == 2

        # --jobs-now ran every registry job once, each recorded.
        def finished_jobs() -> set[str]:
            with engine.connect() as conn:
                return set(conn.scalars(select(JobRun.job).where(JobRun.status == "success")))

        assert wait_until(lambda: finished_jobs() >= {j.name for j in dev_jobs}, timeout_s=90)
        # Plane AI's other jobs are off, as in a default install; only the one named ran.
        assert not {j.name for j in registry.JOBS if j not in dev_jobs} & finished_jobs()
        assert processed(engine, "old") == 0
    finally:
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=60)
    assert dev.returncode == 0, printed(err_path)[-2000:]
    defaults = [spec.name for spec in registry.CONSUMERS if spec.enabled_by_default]
    assert f"{len(defaults)} consumer(s) and {len(dev_jobs)} job(s)" in printed(out_path)
    assert "off by default (add with --with NAME): embeddings" in printed(out_path)
    # No child outlived it: nothing is left in its process group.
    leftovers = subprocess.run(["pgrep", "-g", str(dev.pid)], capture_output=True, text=True).stdout
    assert leftovers == ""
