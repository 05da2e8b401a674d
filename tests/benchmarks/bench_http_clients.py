"""CPU per webhook-shaped request: the thread-per-request client (`SafeHttpClient`, urllib3)
against the asyncio one (`AsyncSafeHttpClient`, its own HTTP/1.1 on one event loop), both whole:
the same rules, the same code path as a delivery takes.

The work, per request: POST a ~2 KB JSON body with Standard Webhooks and Plane headers to the
loopback receiver (`webhook_receiver`, in a process of its own so its CPU is not counted), read
the response capped at WEBHOOK_RESPONSE_MAX_BYTES (20,000) raw bytes, within a 30 s total
deadline, redirects not followed, nothing decompressed. Both parse the URL strictly, vet its
address against the allowlist (the URL is an IP literal, as in `bench_webhooks`, so neither
resolves a name), dial the vetted IP with Host set to the URL's host, and pool connections per
endpoint (64 here).

Cases: keep-alive (pooled connections) and fresh (`Connection: close`, so every request opens a
new connection), at 1 and 64 requests in flight (urllib3: 64 threads sharing one client, as the
thread pool of webhook-deliveries ran it; asyncio: 64 tasks on one loop).
CPU = this process's user + system time over the measured requests (every thread), after a
warm-up; every case runs `rounds` times, interleaved, and its median is reported (the build
machine is shared). `python -m tests.benchmarks.bench_http_clients [requests_per_case [rounds]]`
prints JSON;
`summary`'s ours/baseline are requests per CPU second at keep-alive x 64, the asyncio client (what
webhook-deliveries runs) over the urllib3 one (ratio > 1: the asyncio client does more per CPU
second).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import urllib3

from shared.http import Allowlist, SafeHttpClient
from shared.http.aio import AsyncSafeHttpClient
from tests.benchmarks.emit import emit, summary

RESPONSE_CAP = 20_000  # WEBHOOK_RESPONSE_MAX_BYTES' default
DEADLINE_S = 30.0  # WEBHOOK_TIMEOUT_S' default
IN_FLIGHT = (1, 64)
ALLOWLIST = Allowlist.parse(ips="127.0.0.0/8")


def serve(conn: Connection) -> None:
    """The receiver's process: report the port, serve until told to stop."""
    from tests.benchmarks.webhook_receiver import Receiver

    with Receiver() as receiver:
        conn.send(receiver.port)
        conn.recv()


def body_2kb() -> bytes:
    """A webhook payload of about 2 KB, shaped like Plane's issue event."""
    issue = {f"field_{i}": f"value {i} " + "x" * 24 for i in range(38)}
    payload = {
        "event": "issue",
        "action": "PATCH",
        "webhook_id": str(uuid.uuid4()),
        "workspace_id": str(uuid.uuid4()),
        "data": issue,
        "activity": {"field": "name", "new_value": "a", "old_value": "b", "actor": None},
    }
    return json.dumps(payload).encode()


def headers(fresh: bool) -> dict[str, str]:
    out = {
        "Content-Type": "application/json",
        "webhook-id": f"msg_{uuid.uuid4().hex}",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
        "X-Plane-Delivery": str(uuid.uuid4()),
        "X-Plane-Event": "issue",
        "X-Plane-Signature": "0" * 64,
    }
    if fresh:
        out["Connection"] = "close"
    return out


def run_threads(n: int, in_flight: int, one: Callable[[], None]) -> None:
    """`n` calls of `one`, `in_flight` threads at a time."""
    if in_flight == 1:
        for _ in range(n):
            one()
        return
    left = [n]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            one()

    with ThreadPoolExecutor(in_flight) as pool:
        for future in [pool.submit(worker) for _ in range(in_flight)]:
            future.result()


def measure(run: Callable[[int], int], n: int) -> dict[str, float]:
    """Wall and CPU of `run(n)` (which returns its failures), after a warm-up of n/10."""
    run(max(10, n // 10))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    failures = run(n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "requests": n,
        "failures": failures,
        "wall_s": round(wall, 3),
        "requests_per_s": round(n / wall, 1),
        "cpu_ms_per_request": round(cpu * 1000 / n, 4),
    }


def safe_client_case(url: str, body: bytes, fresh: bool, in_flight: int, n: int) -> dict[str, float]:
    client = SafeHttpClient(
        ALLOWLIST,
        max_connections_per_endpoint=64,
        max_request_bytes=1024 * 1024,
        user_agent="plane-workers-webhooks",
    )
    try:

        def run(count: int) -> int:
            failures = [0]

            def one() -> None:
                r = client.request(
                    "POST",
                    url,
                    headers=headers(fresh),
                    body=body,
                    deadline_s=DEADLINE_S,
                    max_response_bytes=RESPONSE_CAP,
                )
                if r.status != 200:
                    failures[0] += 1

            run_threads(count, in_flight, one)
            return failures[0]

        return measure(run, n)
    finally:
        client.close()


async def _async_case(url: str, body: bytes, fresh: bool, in_flight: int, n: int) -> dict[str, float]:
    client = AsyncSafeHttpClient(
        ALLOWLIST,
        max_connections_per_endpoint=64,
        max_request_bytes=1024 * 1024,
        user_agent="plane-workers-webhooks",
    )
    try:

        async def one() -> bool:
            r = await client.request(
                "POST",
                url,
                headers=headers(fresh),
                body=body,
                deadline_s=DEADLINE_S,
                max_response_bytes=RESPONSE_CAP,
            )
            return r.status == 200

        async def run(count: int) -> int:
            left = [count]
            failures = [0]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    if not await one():
                        failures[0] += 1

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return failures[0]

        await run(max(10, n // 10))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        failures = await run(n)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await client.aclose()
    return {
        "requests": n,
        "failures": failures,
        "wall_s": round(wall, 3),
        "requests_per_s": round(n / wall, 1),
        "cpu_ms_per_request": round(cpu * 1000 / n, 4),
    }


def async_case(url: str, body: bytes, fresh: bool, in_flight: int, n: int) -> dict[str, float]:
    return asyncio.run(_async_case(url, body, fresh, in_flight, n))


def main(n: int = 3000, rounds: int = 3) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child,), daemon=True)
    server.start()
    clients = {
        "SafeHttpClient (urllib3, threads)": safe_client_case,
        "AsyncSafeHttpClient (asyncio, one event loop)": async_case,
    }
    runs: dict[tuple[str, str, int], list[dict[str, float]]] = defaultdict(list)
    try:
        url = f"http://127.0.0.1:{parent.recv()}/ok/bench"
        body = body_2kb()
        for round_ in range(rounds):
            for connection in ("keep-alive", "fresh"):
                for in_flight in IN_FLIGHT:
                    # Fresh connections cost more per request: fewer of them keep each case short.
                    count = n if connection == "keep-alive" else max(100, n // 2)
                    # Alternate which client goes first, so neither always follows the other.
                    order = list(clients.items())[:: 1 if round_ % 2 == 0 else -1]
                    for name, case in order:
                        result = case(url, body, connection == "fresh", in_flight, count)
                        runs[(name, connection, in_flight)].append(result)
    finally:
        parent.send("stop")
        server.join(10)
        if server.is_alive():
            server.kill()
    cases: list[dict[str, Any]] = []
    for (name, connection, in_flight), results in runs.items():
        cpu = [r["cpu_ms_per_request"] for r in results]
        cases.append(
            {
                "client": name,
                "connection": connection,
                "in_flight": in_flight,
                "requests_per_round": results[0]["requests"],
                "failures": sum(r["failures"] for r in results),
                "requests_per_s": round(statistics.median(r["requests_per_s"] for r in results), 1),
                "cpu_ms_per_request": round(statistics.median(cpu), 4),
                "cpu_ms_per_request_runs": cpu,
            }
        )
    safe, aio = clients
    by = {(c["client"], c["connection"], c["in_flight"]): c for c in cases}
    comparison = []
    for connection in ("keep-alive", "fresh"):
        for in_flight in IN_FLIGHT:
            ours, theirs = by[(safe, connection, in_flight)], by[(aio, connection, in_flight)]
            comparison.append(
                {
                    "connection": connection,
                    "in_flight": in_flight,
                    "urllib3_cpu_ms": ours["cpu_ms_per_request"],
                    "asyncio_cpu_ms": theirs["cpu_ms_per_request"],
                    "cpu_saved_ms_per_request": round(
                        ours["cpu_ms_per_request"] - theirs["cpu_ms_per_request"], 4
                    ),
                    "asyncio_cpu_fraction": round(
                        theirs["cpu_ms_per_request"] / ours["cpu_ms_per_request"], 3
                    ),
                }
            )
    ka = (by[(aio, "keep-alive", 64)], by[(safe, "keep-alive", 64)])  # ours (what runs), baseline
    per_cpu_s = [round(1000 / c["cpu_ms_per_request"], 1) for c in ka]
    return {
        "benchmark": "HTTP client CPU per webhook-shaped request",
        **summary(per_cpu_s[0], per_cpu_s[1], "requests per CPU second (keep-alive, 64 in flight)"),
        "rounds": rounds,
        "figures": "median over the rounds (each round runs every case, the clients' order alternating)",
        "body_bytes": len(body),
        "response_cap_bytes": RESPONSE_CAP,
        "cases": cases,
        "comparison": comparison,
        "versions": {
            "python": platform.python_version(),
            "urllib3": urllib3.__version__,
            "event_loop": "asyncio default (no uvloop)",
        },
        "cpu_count": os.cpu_count(),
        "receiver": "webhook_receiver (asyncio) in its own process, loopback; its CPU is not counted",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:])
