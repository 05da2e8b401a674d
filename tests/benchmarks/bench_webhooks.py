"""Webhook deliveries/s, ours versus a Celery worker written like Plane's, same run, same receiver.

Both sides get the same work: N `webhook_activity` events for a workspace with W webhooks, one of
which answers 500 (1% failing with W=100), so N x W deliveries. The clock runs from the first
event produced (ours: to Kafka; Celery: `.delay()` to RabbitMQ on 127.0.0.1:5672) to the last
first-attempt row in `webhook_logs`. Ours: one `webhook-events` process and as many
`webhook-deliveries` processes as Celery has worker processes (pods of one Deployment sharing the
topic's partitions). Celery: one prefork worker with --concurrency = this machine's cores.
Then latency: one event at a time to a workspace with one healthy webhook, from before the
produce/.delay() call to the request's arrival at the receiver; p50/p99 over `samples`.
Embedded PostgreSQL and Kafka-protocol broker for both. Prints JSON. Not part of the test run.

Both throughput phases are also metered (`cpu_accounting`): CPU ms per delivery by component. With
C cores, a throughput of 10x Celery's leaves C / (10 x Celery's rate) of CPU per delivery for
everything, reported as `cpu_budget_ms_per_delivery_at_10x`.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine, text

from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack
from shared.events import new_event
from shared.settings import Settings
from shared.testing.plane_rows import insert_one, insert_user
from tests.benchmarks import celery_webhooks
from tests.benchmarks.cpu_accounting import CpuMeter, per_item_ms
from tests.benchmarks.emit import emit, summary
from tests.benchmarks.webhook_receiver import Receiver
from tests.helpers import spawn_consumer, wait_until


def seed(engine: Engine, receiver: Receiver, slug: str, n_webhooks: int, failing: int) -> dict[str, str]:
    with engine.begin() as conn:
        user = insert_user(conn, first_name="Bench", display_name="bench")
        ws = insert_one(conn, "workspaces", name=slug, slug=slug, owner_id=user)
        project = insert_one(conn, "projects", name=slug, identifier=slug[:5].upper(), workspace_id=ws)
        issue = insert_one(conn, "issues", name="Bench", workspace_id=ws, project_id=project, sequence_id=1)
        for i in range(n_webhooks):
            insert_one(
                conn,
                "webhooks",
                url=receiver.url(f"/fail/{i}" if i < failing else f"/ok/{i}"),
                workspace_id=ws,
                created_by_id=user,
                is_active=True,
                issue=True,
                secret_key=f"plane_wh_{uuid.uuid4().hex}",
                version="v1",
            )
    return {"slug": slug, "workspace": str(ws), "actor": str(user), "issue": str(issue)}


def activity(world: dict[str, str], i: int) -> dict[str, object]:
    return {
        "event": "issue",
        "verb": "updated",
        "field": "name",
        "old_value": f"name {i}",
        "new_value": f"name {i + 1}",
        "actor_id": world["actor"],
        "slug": world["slug"],
        "current_site": "http://plane.bench",
        "event_id": world["issue"],
        "old_identifier": None,
        "new_identifier": None,
    }


def spawn_logged(name: str, settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A consumer process logging at INFO (its partition assignments) to a file."""
    with log_path.open("ab") as log:
        return spawn_consumer(name, settings, stderr=log, LOG_LEVEL="INFO")


def assigned(log_path: Path, topic: str) -> bool:
    """The runtime logs every assignment; an empty one means the process has no partition yet."""
    lines = [line for line in log_path.read_text().splitlines() if f"{topic}: partitions assigned" in line]
    return bool(lines) and not lines[-1].rstrip('"}').endswith("[]")


def first_attempts(engine: Engine, workspace: str) -> int:
    query = text("SELECT count(*) FROM webhook_logs WHERE workspace_id = :ws AND retry_count = 0")
    with engine.connect() as conn:
        return conn.scalar(query, {"ws": workspace})


def component(name: str, exe: str, cmdline: str) -> str | None:
    """Names the processes of both sides. PostgreSQL is the embedded one (its binary ships with
    pgserver), not the build machine's own cluster."""
    if "consume webhook-deliveries" in cmdline:
        return "webhook-deliveries"
    if "consume webhook-events" in cmdline:
        return "webhook-events"
    if "celery" in cmdline:
        return "celery worker"
    if name in ("beam.smp", "epmd", "erl_child_setup", "inet_gethost"):
        return "rabbitmq"
    if "--advertised-listener-url" in cmdline:
        return "broker (tansu)"
    if name == "postgres" and "pgserver" in exe:
        return "postgresql"
    return None


def throughput(
    engine: Engine, world: dict[str, str], n: int, total: int, send: Callable[[int], None], meter: CpuMeter
) -> tuple[float, dict[str, float]]:
    """Deliveries per second, and CPU ms per delivery by component over the same phase."""
    meter.start()
    start = time.perf_counter()
    for i in range(n):
        send(i)
    wait_until(lambda: first_attempts(engine, world["workspace"]) >= total, timeout_s=1800, interval_s=0.05)
    rate = total / (time.perf_counter() - start)
    return rate, per_item_ms(meter.stop(), total)


def latencies_ms(receiver: Receiver, samples: int, send: Callable[[int], None]) -> dict[str, float]:
    seen = []
    for i in range(samples):
        before = receiver.count()
        started = time.monotonic()
        send(i)
        wait_until(lambda b=before: receiver.count() > b, timeout_s=30, interval_s=0.0005)
        seen.append((receiver.records()[-1].at - started) * 1000)
    seen.sort()
    return {
        "p50_ms": round(statistics.median(seen), 2),
        "p99_ms": round(seen[min(len(seen) - 1, int(len(seen) * 0.99))], 2),
        "max_ms": round(seen[-1], 2),
    }


def main(
    n_events: int = 100, n_webhooks: int = 100, samples: int = 200, processes: int = 0
) -> dict[str, object]:
    processes = processes or os.cpu_count() or 2
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    total = n_events * n_webhooks
    with EmbeddedStack(Settings.from_env(), state) as stack, Receiver() as receiver:
        s = replace(stack.settings, metrics_port=0, webhook_allowed_ips=("127.0.0.0/8",), log_level="WARNING")
        prepare(s)
        from shared.db.engine import get_engine
        from shared.events.producer import EventProducer

        engine = get_engine(s.database_url)
        ours_world = seed(engine, receiver, "ours", n_webhooks, failing=max(1, n_webhooks // 100))
        celery_world = seed(engine, receiver, "celery", n_webhooks, failing=max(1, n_webhooks // 100))
        latency_world = seed(engine, receiver, "latency", 1, failing=0)

        producer = EventProducer(s)
        meter = CpuMeter(component)

        def produce(world: dict[str, str], i: int) -> None:
            event = new_event("plane.webhook_activity.v1", activity(world, i))
            producer.send("webhook-events", event, key=world["workspace"])

        names = ["webhook-events"] + ["webhook-deliveries"] * processes
        logs = [state / f"{name}-{i}.log" for i, name in enumerate(names)]
        consumers = [spawn_logged(name, s, log) for name, log in zip(names, logs, strict=True)]
        try:
            produce(latency_world, -1)  # warm-up: both groups joined and a delivery made
            wait_until(lambda: receiver.count() >= 1, timeout_s=120)
            # Every deliveries process holds partitions (tansu does not describe groups).
            wait_until(lambda: all(assigned(log, "webhook-deliveries") for log in logs[1:]), timeout_s=120)
            time.sleep(2)
            ours_rate, ours_cpu = throughput(
                engine, ours_world, n_events, total, lambda i: produce(ours_world, i), meter
            )
            ours_latency = latencies_ms(receiver, samples, lambda i: produce(latency_world, i))
        finally:
            for consumer in consumers:
                consumer.send_signal(signal.SIGTERM)
            for consumer in consumers:
                consumer.wait(timeout=60)

        worker = celery_webhooks.start_worker(s.database_url, concurrency=processes)
        try:

            def delay(world: dict[str, str], i: int) -> None:
                celery_webhooks.webhook_activity.delay(**activity(world, i))

            celery_rate, celery_cpu = throughput(
                engine, celery_world, n_events, total, lambda i: delay(celery_world, i), meter
            )
            celery_latency = latencies_ms(receiver, samples, lambda i: delay(latency_world, i))
        finally:
            celery_webhooks.stop_worker(worker)
        producer.close()
        engine.dispose()
    return {
        "benchmark": "webhook deliveries",
        **summary(round(ours_rate, 1), round(celery_rate, 1), "deliveries/s"),
        "events": n_events,
        "webhooks_per_event": n_webhooks,
        "failing_receivers": max(1, n_webhooks // 100),
        "deliveries": total,
        "ours_deliveries_per_s": round(ours_rate, 1),
        "celery_deliveries_per_s": round(celery_rate, 1),
        "ours_cpu_ms_per_delivery": ours_cpu,
        "celery_cpu_ms_per_delivery": celery_cpu,
        # Everything, per delivery, that 10x Celery's rate would leave on this machine's cores.
        "cpu_budget_ms_per_delivery_at_10x": round((os.cpu_count() or 1) * 1000 / (10 * celery_rate), 3),
        "ours_latency_healthy": ours_latency,
        "celery_latency_healthy": celery_latency,
        "ours_processes": f"webhook-events x1, webhook-deliveries x{processes}",
        "celery_worker": f"prefork --concurrency={processes}, RabbitMQ 127.0.0.1:5672",
        "cpu_count": os.cpu_count(),
        "stack": "embedded (pgserver PostgreSQL, tansu); asyncio loopback receiver",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:])
