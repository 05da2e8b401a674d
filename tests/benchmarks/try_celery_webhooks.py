"""Smoke run of the Celery webhook baseline (`celery_webhooks`): not a pytest test.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and a PostgreSQL with trust auth for `postgres`
(default 127.0.0.1:5432; `BENCH_PG_ADMIN_URL` overrides). Creates the scratch database
`bench_celery_smoke` with Plane's schema, a workspace "bench" with one issue and 20 webhooks on a
loopback receiver (one answering 500), starts a 2-process prefork worker, enqueues N
`webhook_activity` tasks (default 100, so 2,000 deliveries), waits for every `webhook_logs` row,
prints deliveries/s as JSON, then stops the worker and drops the database.

`python -m tests.benchmarks.try_celery_webhooks [N] [CONCURRENCY]`
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from sqlalchemy import create_engine

from shared.testing.plane_rows import insert_one, insert_user
from tests.benchmarks import celery_webhooks
from tests.benchmarks.webhook_receiver import Receiver

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "bench_celery_smoke"
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
SCHEMA = os.environ.get(
    "BENCH_PLANE_SCHEMA",
    str(Path(__file__).resolve().parents[3] / "shared" / "plane-schema" / "plane_schema.sql"),
)
WEBHOOKS = 20


def psql(url: str, *args: str) -> None:
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *args], check=True, stdout=subprocess.DEVNULL
    )


def seed(receiver: Receiver) -> tuple[str, str]:
    """User, workspace "bench", project, issue and the webhooks; returns (actor id, issue id)."""
    engine = create_engine(DB_URL.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.begin() as conn:
            user = insert_user(conn, first_name="Bench", display_name="bench")
            ws = insert_one(conn, "workspaces", name="Bench", slug="bench", owner_id=user)
            project = insert_one(conn, "projects", name="Bench", identifier="BEN", workspace_id=ws)
            issue = insert_one(
                conn, "issues", name="Benchmark issue", workspace_id=ws, project_id=project, sequence_id=1
            )
            for i in range(WEBHOOKS):
                url = receiver.url("/fail/0" if i == 0 else f"/ok/{i}")
                insert_one(
                    conn,
                    "webhooks",
                    url=url,
                    workspace_id=ws,
                    created_by_id=user,
                    is_active=True,
                    issue=True,
                    secret_key=f"plane_wh_{uuid.uuid4().hex}",
                    version="v1",
                )
    finally:
        engine.dispose()
    return str(user), str(issue)


def logged() -> tuple[int, datetime | None, int]:
    """(rows, max(created_at), rows with status 500) of webhook_logs."""
    db = psycopg2.connect(DB_URL)
    try:
        with db.cursor() as cur:
            cur.execute(
                "SELECT count(*), max(created_at), count(*) FILTER (WHERE response_status = '500') "
                "FROM webhook_logs"
            )
            return cur.fetchone()
    finally:
        db.close()


def main(n: int = 100, concurrency: int = 2) -> dict:
    psql(ADMIN_URL, "-c", f"DROP DATABASE IF EXISTS {DB_NAME}", "-c", f"CREATE DATABASE {DB_NAME}")
    receiver = Receiver()
    worker = None
    try:
        psql(DB_URL, "-f", SCHEMA)
        actor, issue = seed(receiver)
        started = time.monotonic()
        worker = celery_webhooks.start_worker(DB_URL, concurrency=concurrency)
        worker_start_s = time.monotonic() - started
        expected = n * WEBHOOKS
        t0_wall, t0 = datetime.now(UTC), time.monotonic()
        for i in range(n):
            celery_webhooks.webhook_activity.delay(
                event="issue",
                verb="updated",
                field="name",
                old_value=f"name {i}",
                new_value=f"name {i + 1}",
                actor_id=actor,
                slug="bench",
                current_site="http://127.0.0.1",
                event_id=issue,
                old_identifier=None,
                new_identifier=None,
            )
        enqueue_s = time.monotonic() - t0
        deadline = t0 + 600
        while (count := logged()[0]) < expected:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"only {count}/{expected} webhook_logs rows")
            time.sleep(0.05)
        count, last, failed = logged()
        elapsed = (last - t0_wall).total_seconds()
        records = receiver.records()
        result = {
            "activities": n,
            "deliveries": count,
            "concurrency": concurrency,
            "deliveries_per_s": round(count / elapsed, 1),
            "seconds": round(elapsed, 3),
            "enqueue_seconds": round(enqueue_s, 3),
            "received": len(records),
            "received_last_s": round(max(r.at for r in records) - t0, 3),
            "distinct_deliveries": len({r.delivery for r in records}),
            "logged_500": failed,
            "worker_start_seconds": round(worker_start_s, 2),
        }
        assert count == expected and failed == n and result["distinct_deliveries"] == expected, result
        return result
    finally:
        if worker is not None:
            celery_webhooks.stop_worker(worker)
        receiver.close()
        psql(ADMIN_URL, "-c", f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:3])), indent=2))
