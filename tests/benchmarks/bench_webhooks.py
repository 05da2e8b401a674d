"""Webhook deliveries/s, ours versus a Celery worker written like Plane's, same run, same receiver.

Ours: one `webhook-events` process and as many `webhook-deliveries` processes as Celery has worker
processes (pods of one Deployment sharing the topic's partitions), real `plane-workers consume`
processes. Celery: one prefork worker with --concurrency = this machine's cores, RabbitMQ on
127.0.0.1:5672. Embedded PostgreSQL and Kafka-protocol broker (tansu) for both; one asyncio
loopback receiver. Ours runs every scenario, then Celery does. Prints JSON. Not part of the tests.

Scenario "failing" (1% of receivers answer 500). N `webhook_activity` events for a workspace with
W webhooks, 1% of them (at least one) failing, so N x W deliveries. The clock runs from the first
event produced (ours: to Kafka; Celery: `.delay()`) to the last first-attempt row in
`webhook_logs`. The phase is metered (`cpu_accounting`): CPU ms per delivery by component, and
`cpu_per_delivery` compares our processes (webhook-events + webhook-deliveries) with Celery's
worker (target: ours at most 1/5). Then latency one event at a time to a workspace with one
healthy webhook, from before the produce/.delay() call to the request's arrival; p50/p99 over
`samples`.

Scenario "hanging" (1% of receivers never answer until the deadline, WEBHOOK_TIMEOUT_S for ours,
the `requests` timeout for Celery; 30 s, shorter only when a quick run passes `deadline_s`):
- `healthy_latency`: open loop for `open_loop_s` (2/3 of the deadline, so no hanging attempt ends
  meanwhile), 20 events/s round-robin over 10 workspaces of W/10 webhooks, one of the W hanging
  (1% at W = 100): 2 x W deliveries/s offered, as many workspaces with few webhooks each. A
  healthy delivery's latency runs from just before its event is produced (which is when a first
  attempt is due) to the request's arrival at the healthy receiver; events carry a marker the
  receiver reads from the body. Requests still missing `grace_s` after the last event
  count with the time they had waited so far: p99 is then a lower bound (`p99_is_lower_bound`).
  Ours runs the same open loop with no hanging webhook first (`healthy_latency_control_no_hanging`):
  if its tail is as long, the load, not the hanging endpoints, is what delays healthy deliveries.
  Both report CPU ms per offered delivery by component over the phase.
- `throughput`: right after, a burst of N events to a second such workspace (N x W deliveries).
  deliveries/s = first-attempt `webhook_logs` rows of that workspace (any outcome) / the time from
  the first event produced until every healthy delivery is logged or the window closes. The window
  is 2 x deadline - 2 s: it ends just before the second release of Celery's processes stuck on
  hanging requests, so its rate is the steady one, not one inflated by a release. Celery's queue
  is purged before the burst (what its processes have reserved stays); both sides go on with
  hanging requests from the open-loop phase still in flight.
Targets: ours >= 100x Celery's deliveries/s, healthy p99 < 100 ms.
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
from typing import Any

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

# The open loop: 20 events/s over 10 workspaces of W/10 webhooks, one of them hanging (1% at
# W = 100), so 2 x W deliveries/s offered, 2 of them to the hanging endpoint every second.
OPEN_LOOP_EVENTS_PER_S = 20.0
OPEN_LOOP_WORKSPACES = 10
SLICE_S = 2.0
TARGET_HANG_RATIO = 100.0  # ours / Celery deliveries/s with hanging endpoints
TARGET_HEALTHY_P99_MS = 100.0
TARGET_CPU_RATIO = 0.2  # ours / Celery CPU ms per delivery

Send = Callable[[dict[str, str], str], None]  # (world, marker) -> one event produced


def seed(
    engine: Engine, receiver: Receiver, slug: str, n_webhooks: int, bad: int, kind: str = "fail"
) -> dict[str, Any]:
    """A workspace with `n_webhooks` webhooks, the first `bad` of them at `/<kind>/...`."""
    paths = [f"/{kind if i < bad else 'ok'}/{slug}-{i}" for i in range(n_webhooks)]
    with engine.begin() as conn:
        user = insert_user(conn, first_name="Bench", display_name="bench")
        ws = insert_one(conn, "workspaces", name=slug, slug=slug, owner_id=user)
        project = insert_one(conn, "projects", name=slug, identifier=slug[:5].upper(), workspace_id=ws)
        issue = insert_one(conn, "issues", name="Bench", workspace_id=ws, project_id=project, sequence_id=1)
        for path in paths:
            insert_one(
                conn,
                "webhooks",
                url=receiver.url(path),
                workspace_id=ws,
                created_by_id=user,
                is_active=True,
                issue=True,
                secret_key=f"plane_wh_{uuid.uuid4().hex}",
                version="v1",
            )
    return {
        "slug": slug,
        "workspace": str(ws),
        "actor": str(user),
        "issue": str(issue),
        "healthy_paths": [p for p in paths if p.startswith("/ok/")],
        "bad_paths": [p for p in paths if not p.startswith("/ok/")],
    }


def activity(world: dict[str, Any], marker: str) -> dict[str, object]:
    """Plane's `webhook_activity` kwargs; `new_value` carries the marker the receiver reads."""
    return {
        "event": "issue",
        "verb": "updated",
        "field": "name",
        "old_value": "name",
        "new_value": f"bench-seq-{marker}",
        "actor_id": world["actor"],
        "slug": world["slug"],
        "current_site": "http://plane.bench",
        "event_id": world["issue"],
        "old_identifier": None,
        "new_identifier": None,
    }


def spawn_logged(name: str, settings: Settings, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """A consumer process logging at INFO (its partition assignments) to a file."""
    with log_path.open("ab") as log:
        return spawn_consumer(name, settings, stderr=log, LOG_LEVEL="INFO", **env)


def assigned(log_path: Path, topic: str) -> bool:
    """The runtime logs every assignment; an empty one means the process has no partition yet."""
    lines = [line for line in log_path.read_text().splitlines() if f"{topic}: partitions assigned" in line]
    return bool(lines) and not lines[-1].rstrip('"}').endswith("[]")


def first_attempts(engine: Engine, workspace: str, healthy_only: bool = False) -> int:
    query = "SELECT count(*) FROM webhook_logs l"
    if healthy_only:
        query += " JOIN webhooks w ON w.id = l.webhook AND w.url LIKE '%/ok/%'"
    query += " WHERE l.workspace_id = :ws AND l.retry_count = 0"
    with engine.connect() as conn:
        return conn.scalar(text(query), {"ws": workspace})


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
    engine: Engine, world: dict[str, Any], n: int, total: int, send: Send, meter: CpuMeter
) -> tuple[float, dict[str, float]]:
    """Deliveries per second, and CPU ms per delivery by component over the same phase."""
    meter.start()
    start = time.perf_counter()
    for i in range(n):
        send(world, f"fail-{i}")
    wait_until(lambda: first_attempts(engine, world["workspace"]) >= total, timeout_s=1800, interval_s=0.05)
    rate = total / (time.perf_counter() - start)
    return rate, per_item_ms(meter.stop(), total)


def percentiles(seen: list[float], lower_bound: bool = False) -> dict[str, Any]:
    seen = sorted(seen)
    return {
        "p50_ms": round(statistics.median(seen), 2),
        "p99_ms": round(seen[min(len(seen) - 1, int(len(seen) * 0.99))], 2),
        "max_ms": round(seen[-1], 2),
        "p99_is_lower_bound": lower_bound,
    }


def latencies_ms(
    receiver: Receiver, world: dict[str, Any], samples: int, send: Send, tag: str
) -> dict[str, Any]:
    """One event at a time to a workspace with one healthy webhook: produce to arrival."""
    seen = []
    for i in range(samples):
        before = receiver.count()
        marker = f"{tag}-{i}"
        started = time.monotonic()
        send(world, marker)
        record = wait_until(
            lambda b=before, m=marker: next((r for r in receiver.records(b) if r.marker == m), None),
            timeout_s=30,
            interval_s=0.0005,
        )
        seen.append((record.at - started) * 1000)
    return percentiles(seen)


def open_loop_latency(
    receiver: Receiver,
    worlds: list[dict[str, Any]],
    send: Send,
    tag: str,
    duration_s: float,
    grace_s: float,
    meter: CpuMeter,
) -> dict[str, Any]:
    """Healthy latency while 1% of the webhooks hang: events at a fixed rate, round-robin over the
    workspaces, each fanned out to its workspace's webhooks; every healthy request's arrival minus
    its event's produce time."""
    before = receiver.count()
    n = max(1, round(duration_s * OPEN_LOOP_EVENTS_PER_S))
    produced: dict[str, tuple[float, dict[str, Any]]] = {}
    meter.start()
    start = time.monotonic()
    for i in range(n):
        time.sleep(max(0.0, start + i / OPEN_LOOP_EVENTS_PER_S - time.monotonic()))
        world = worlds[i % len(worlds)]
        marker = f"{tag}-{i}"
        produced[marker] = (time.monotonic(), world)
        send(world, marker)
    expected = sum(len(world["healthy_paths"]) for _, world in produced.values())

    def arrivals() -> dict[tuple[str, str], float]:
        seen: dict[tuple[str, str], float] = {}
        for r in receiver.records(before):
            if r.marker in produced and r.path.startswith("/ok/"):
                seen.setdefault((r.marker, r.path), r.at)
        return seen

    last = time.monotonic()
    while len(got := arrivals()) < expected and time.monotonic() < last + grace_s:
        time.sleep(0.05)
    ended = time.monotonic()
    offered = sum(len(w["healthy_paths"]) + len(w["bad_paths"]) for _, w in produced.values())
    cpu = per_item_ms(meter.stop(), offered)
    # (seconds into the phase when the event was produced, latency ms)
    seen = [(produced[m][0] - start, (at - produced[m][0]) * 1000) for (m, _), at in got.items()]
    missing = [
        (at - start, (ended - at) * 1000)
        for marker, (at, world) in produced.items()
        for path in world["healthy_paths"]
        if (marker, path) not in got
    ]
    by_slice: dict[int, list[float]] = {}
    for t, ms in seen + missing:
        by_slice.setdefault(int(t // SLICE_S), []).append(ms)
    return {
        "events": n,
        "events_per_s": OPEN_LOOP_EVENTS_PER_S,
        "workspaces": len(worlds),
        "webhooks_per_workspace": len(worlds[0]["healthy_paths"]) + len(worlds[0]["bad_paths"]),
        "hanging_webhooks": sum(len(w["bad_paths"]) for w in worlds),
        "healthy_requests_expected": expected,
        "healthy_requests_arrived": len(got),
        "deliveries_offered_per_s": round(offered / duration_s, 1),
        # CPU ms per offered delivery by component over the phase: how near the cores are to full.
        "cpu_ms_per_delivery": cpu,
        **percentiles([ms for _, ms in seen + missing], lower_bound=len(missing) > expected * 0.01),
        # Where in the phase the tail is: p99 of the events produced in each SLICE_S seconds.
        f"p99_ms_by_{SLICE_S:g}s_of_events": [percentiles(by_slice[k])["p99_ms"] for k in sorted(by_slice)],
    }


def hanging_burst(
    engine: Engine, world: dict[str, Any], n: int, n_webhooks: int, send: Send, tag: str, window_s: float
) -> dict[str, Any]:
    """Deliveries/s with 1% of endpoints hanging, over [first produce, all healthy logged or window end]."""
    healthy_total = n * len(world["healthy_paths"])
    start = time.perf_counter()
    for i in range(n):
        send(world, f"{tag}-{i}")
    while True:
        now = time.perf_counter()
        if first_attempts(engine, world["workspace"], healthy_only=True) >= healthy_total:
            break
        if now - start >= window_s:
            break
        time.sleep(0.05)
    elapsed = now - start
    logged = first_attempts(engine, world["workspace"])
    healthy = first_attempts(engine, world["workspace"], healthy_only=True)
    return {
        "deliveries_per_s": round(logged / elapsed, 2),
        "measured_s": round(elapsed, 2),
        "window_s": window_s,
        "all_healthy_logged": healthy >= healthy_total,
        "deliveries_offered": n * n_webhooks,
        "first_attempts_logged": logged,
        "healthy_logged": healthy,
        "hanging_logged": logged - healthy,
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def stop_consumers(consumers: list[subprocess.Popen[bytes]]) -> None:
    for consumer in consumers:
        consumer.send_signal(signal.SIGTERM)
    for consumer in consumers:
        try:
            consumer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()


def main(
    n_events: int = 100, n_webhooks: int = 100, samples: int = 200, processes: int = 0, deadline_s: int = 30
) -> dict[str, object]:
    processes = processes or os.cpu_count() or 2
    bad = max(1, n_webhooks // 100)
    open_loop_s = round(deadline_s * 2 / 3)  # < deadline: no hanging attempt times out meanwhile
    grace_s = min(5.0, deadline_s / 2)
    window_s = 2 * deadline_s - 2
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    total = n_events * n_webhooks
    with EmbeddedStack(Settings.from_env(), state) as stack, Receiver() as receiver:
        s = replace(
            stack.settings,
            metrics_port=0,
            webhook_allowed_ips=("127.0.0.0/8",),
            log_level="WARNING",
            webhook_timeout_s=float(deadline_s),
        )
        prepare(s)
        from shared.db.engine import get_engine
        from shared.events.producer import EventProducer

        engine = get_engine(s.database_url)
        worlds: dict[str, dict[str, Any]] = {}
        open_loop_worlds: dict[str, list[dict[str, Any]]] = {}
        for side in ("ours", "celery"):
            worlds[f"{side}-fail"] = seed(engine, receiver, f"{side}fail", n_webhooks, bad)
            per = max(1, n_webhooks // OPEN_LOOP_WORKSPACES)
            open_loop_worlds[side] = [
                seed(engine, receiver, f"{side}hl{k}", per, bad if k == 0 else 0, kind="hang")
                for k in range(OPEN_LOOP_WORKSPACES)
            ]
            if side == "ours":
                open_loop_worlds["ours-control"] = [
                    seed(engine, receiver, f"oursctl{k}", per, 0) for k in range(OPEN_LOOP_WORKSPACES)
                ]
            worlds[f"{side}-hb"] = seed(engine, receiver, f"{side}hb", n_webhooks, bad, kind="hang")
        latency_world = seed(engine, receiver, "latency", 1, 0)

        producer = EventProducer(s)
        meter = CpuMeter(component)

        def produce(world: dict[str, Any], marker: str) -> None:
            event = new_event("plane.webhook_activity.v1", activity(world, marker))
            producer.send("webhook-events", event, key=world["workspace"])

        names = ["webhook-events"] + ["webhook-deliveries"] * processes
        logs = [state / f"{name}-{i}.log" for i, name in enumerate(names)]
        consumers = [spawn_logged(name, s, log) for name, log in zip(names, logs, strict=True)]
        try:
            produce(latency_world, "warmup")  # both groups joined and a delivery made
            wait_until(lambda: receiver.count() >= 1, timeout_s=120)
            # Every deliveries process holds partitions (tansu does not describe groups).
            wait_until(lambda: all(assigned(log, "webhook-deliveries") for log in logs[1:]), timeout_s=120)
            time.sleep(2)
            ours_rate, ours_cpu = throughput(engine, worlds["ours-fail"], n_events, total, produce, meter)
            ours_latency = latencies_ms(receiver, latency_world, samples, produce, "lat-ours")
            # The same open loop with no hanging webhook first: what the load alone costs in latency.
            ours_control_latency = open_loop_latency(
                receiver, open_loop_worlds["ours-control"], produce, "ctl-ours", open_loop_s, grace_s, meter
            )
            ours_hang_latency = open_loop_latency(
                receiver, open_loop_worlds["ours"], produce, "hl-ours", open_loop_s, grace_s, meter
            )
            ours_hang = hanging_burst(
                engine, worlds["ours-hb"], n_events, n_webhooks, produce, "hb-ours", window_s
            )
        finally:
            stop_consumers(consumers)

        worker = celery_webhooks.start_worker(
            s.database_url, concurrency=processes, webhook_timeout_s=deadline_s
        )
        try:

            def delay(world: dict[str, Any], marker: str) -> None:
                celery_webhooks.webhook_activity.delay(**activity(world, marker))

            celery_rate, celery_cpu = throughput(engine, worlds["celery-fail"], n_events, total, delay, meter)
            celery_latency = latencies_ms(receiver, latency_world, samples, delay, "lat-celery")
            celery_hang_latency = open_loop_latency(
                receiver, open_loop_worlds["celery"], delay, "hl-celery", open_loop_s, grace_s, meter
            )
            celery_webhooks.purge(worker)
            celery_hang = hanging_burst(
                engine, worlds["celery-hb"], n_events, n_webhooks, delay, "hb-celery", window_s
            )
        finally:
            celery_webhooks.stop_worker(worker, cold=True)
        producer.close()
        engine.dispose()

    ours_proc_cpu = round(ours_cpu.get("webhook-events", 0.0) + ours_cpu.get("webhook-deliveries", 0.0), 3)
    celery_proc_cpu = celery_cpu.get("celery worker", 0.0)
    cpu_ratio = ratio(ours_proc_cpu, celery_proc_cpu)
    hang_ratio = ratio(ours_hang["deliveries_per_s"], celery_hang["deliveries_per_s"])
    p99 = ours_hang_latency["p99_ms"]
    return {
        "benchmark": "webhook deliveries",
        **summary(round(ours_rate, 1), round(celery_rate, 1), "deliveries/s"),
        "events": n_events,
        "webhooks_per_event": n_webhooks,
        "failing_receivers": bad,
        "deliveries": total,
        "ours_deliveries_per_s": round(ours_rate, 1),
        "celery_deliveries_per_s": round(celery_rate, 1),
        "ours_cpu_ms_per_delivery": ours_cpu,
        "celery_cpu_ms_per_delivery": celery_cpu,
        # Our processes (webhook-events + webhook-deliveries) against Celery's worker, failing scenario.
        "cpu_per_delivery": {
            "ours_processes_ms": ours_proc_cpu,
            "celery_worker_ms": celery_proc_cpu,
            "ratio": cpu_ratio,
            "target_ratio_max": TARGET_CPU_RATIO,
            "met": cpu_ratio is not None and cpu_ratio <= TARGET_CPU_RATIO,
        },
        # Everything, per delivery, that 10x Celery's rate would leave on this machine's cores.
        "cpu_budget_ms_per_delivery_at_10x": round((os.cpu_count() or 1) * 1000 / (10 * celery_rate), 3),
        "ours_latency_healthy": ours_latency,
        "celery_latency_healthy": celery_latency,
        "hanging": {
            "hanging_receivers_per_workspace": bad,
            "webhooks_per_workspace": n_webhooks,
            "deadline_s": deadline_s,
            "deadline_is_production_value": deadline_s == 30,
            "latency_definition": (
                f"open loop, {OPEN_LOOP_EVENTS_PER_S:g} events/s for {open_loop_s} s round-robin over "
                f"{OPEN_LOOP_WORKSPACES} workspaces of {max(1, n_webhooks // OPEN_LOOP_WORKSPACES)} "
                f"webhooks, {bad} of them hanging, each event fanned out to its workspace's webhooks; "
                "latency = arrival at a healthy receiver - just before the event was produced (the "
                f"first attempt's due time); requests missing {grace_s:g} s after the last event "
                "count with the time waited so far (then p99 is a lower bound)"
            ),
            "throughput_definition": (
                f"burst of {n_events} events x {n_webhooks} webhooks; first-attempt webhook_logs rows "
                "(any outcome) / time from the first event produced until every healthy delivery is "
                f"logged or the {window_s:g} s window (2 x deadline - 2 s) closes"
            ),
            "ours": {
                "throughput": ours_hang,
                "healthy_latency": ours_hang_latency,
                "healthy_latency_control_no_hanging": ours_control_latency,
            },
            "celery": {"throughput": celery_hang, "healthy_latency": celery_hang_latency},
            "deliveries_per_s_ratio": hang_ratio,
            "target_ratio_min": TARGET_HANG_RATIO,
            "ratio_met": hang_ratio is not None and hang_ratio >= TARGET_HANG_RATIO,
            "ours_healthy_p99_ms": p99,
            "target_healthy_p99_ms": TARGET_HEALTHY_P99_MS,
            "healthy_p99_met": not ours_hang_latency["p99_is_lower_bound"] and p99 < TARGET_HEALTHY_P99_MS,
        },
        "ours_processes": f"webhook-events x1, webhook-deliveries x{processes}",
        "celery_worker": f"prefork --concurrency={processes}, RabbitMQ 127.0.0.1:5672",
        "cpu_count": os.cpu_count(),
        "stack": "embedded (pgserver PostgreSQL, tansu); asyncio loopback receiver",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:])
