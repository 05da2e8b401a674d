"""Where our CPU per webhook delivery goes: bench_webhooks' failing scenario (1% of receivers
answer 500), ours only, with every consumer process sampled by py-spy over the phase.

    python -m tests.benchmarks.profile_webhooks PY_SPY OUT_DIR [events [webhooks [rate_hz [gil]]]]

Also CPU ms per delivery by thread kind (the HTTP pool, the journal, the lookup and writer
stages, arroyo's main thread, librdkafka's threads), from /proc per thread; `rate_hz` 0 skips the
sampling so those figures are undisturbed, `gil` 1 samples only the thread holding the GIL.
PY_SPY is a py-spy binary (not a project dependency: install it anywhere, e.g. `pip install
--target`); OUT_DIR receives one raw (collapsed-stack) profile per process and a summary of the
hottest frames by self and inclusive samples. Idle threads are not sampled (py-spy's default), so
the samples are where the CPU went. Prints JSON: deliveries/s and CPU ms per delivery by
component, as `bench_webhooks` measures them. Not part of the tests or of `make bench`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack
from shared.events import new_event
from shared.settings import Settings
from tests.benchmarks.bench_webhooks import (
    activity,
    assigned,
    component,
    seed,
    spawn_logged,
    stop_consumers,
    throughput,
)
from tests.benchmarks.cpu_accounting import CpuMeter
from tests.benchmarks.emit import emit
from tests.benchmarks.webhook_receiver import Receiver
from tests.helpers import wait_until

TOP = 40
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of `pid`, by OS thread id, with its comm name
    (librdkafka names its threads; Python's are named by `thread_names`)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return out


def thread_names(py_spy: str, pid: int) -> dict[int, str]:
    """Python thread names by OS thread id, from `py-spy dump`."""
    dump = subprocess.run([py_spy, "dump", "--pid", str(pid), "--json"], capture_output=True, check=True)
    return {t["os_thread_id"]: t["thread_name"] or "?" for t in json.loads(dump.stdout) if t["os_thread_id"]}


def by_thread_kind(
    py_spy: str, pid: int, before: dict[int, tuple[str, float]], items: int
) -> dict[str, float]:
    """CPU ms per item by kind of thread (names without their number) over the phase."""
    after = thread_cpu(pid)
    names = thread_names(py_spy, pid)
    used: Counter[str] = Counter()
    for tid, (comm, seconds) in after.items():
        kind = re.sub(r"[_-]?\d+$", "", names.get(tid, comm))
        used[kind] += seconds - (before[tid][1] if tid in before else 0.0)
    table = {kind: round(s * 1000 / items, 3) for kind, s in used.most_common() if s > 0}
    table["total"] = round(sum(used.values()) * 1000 / items, 3)
    return table


def hottest(raw: Path) -> dict[str, Any]:
    """Self and inclusive sample counts per frame (function and file) from a collapsed profile."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.rsplit(":", 1)[0] for f in stack.split(";")]  # drop line numbers
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    pct = lambda c: [(f, round(100 * n / max(1, total), 1)) for f, n in c.most_common(TOP)]  # noqa: E731
    return {"samples": total, "self_pct": pct(own), "inclusive_pct": pct(inclusive)}


def main(
    py_spy: str,
    out_dir: str,
    n_events: int = 50,
    n_webhooks: int = 100,
    rate_hz: int = 250,
    gil: int = 0,
    processes: int = 0,
) -> dict[str, Any]:
    """`rate_hz` 0: no sampling, only CPU per thread (py-spy then only names the threads)."""
    processes = processes or os.cpu_count() or 2
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-profile-"))
    total = n_events * n_webhooks
    with EmbeddedStack(Settings.from_env(), state) as stack, Receiver() as receiver:
        s = replace(stack.settings, metrics_port=0, webhook_allowed_ips=("127.0.0.0/8",), log_level="WARNING")
        prepare(s)
        from shared.db.engine import get_engine
        from shared.events.producer import EventProducer

        engine = get_engine(s.database_url)
        world = seed(engine, receiver, "proffail", n_webhooks, max(1, n_webhooks // 100))
        warm = seed(engine, receiver, "profwarm", 1, 0)
        producer = EventProducer(s)

        def produce(w: dict[str, Any], marker: str) -> None:
            event = new_event("plane.webhook_activity.v1", activity(w, marker))
            producer.send("webhook-events", event, key=w["workspace"])

        names = ["webhook-events"] + ["webhook-deliveries"] * processes
        logs = [state / f"{name}-{i}.log" for i, name in enumerate(names)]
        consumers = [spawn_logged(name, s, log) for name, log in zip(names, logs, strict=True)]
        spies: list[tuple[str, subprocess.Popen[bytes]]] = []
        try:
            produce(warm, "warmup")
            wait_until(lambda: receiver.count() >= 1, timeout_s=120)
            wait_until(lambda: all(assigned(log, "webhook-deliveries") for log in logs[1:]), timeout_s=120)
            time.sleep(2)
            for i, (name, consumer) in enumerate(zip(names, consumers, strict=True) if rate_hz else ()):
                raw = out / f"{i}-{name}.txt"
                cmd = [py_spy, "record", "--pid", str(consumer.pid), "-f", "raw", "-r", str(rate_hz)]
                cmd += ["--nonblocking", "-o", str(raw), *(["--gil"] if gil else [])]
                spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                spies.append((str(raw), spy))
            time.sleep(1)  # py-spy attached
            before = {c.pid: thread_cpu(c.pid) for c in consumers}
            rate, cpu = throughput(engine, world, n_events, total, produce, CpuMeter(component))
            threads = {
                f"{i}-{name}": by_thread_kind(py_spy, c.pid, before[c.pid], total)
                for i, (name, c) in enumerate(zip(names, consumers, strict=True))
            }
        finally:
            for _, spy in spies:
                spy.send_signal(signal.SIGINT)
            for _, spy in spies:
                spy.wait(timeout=30)
            stop_consumers(consumers)
        producer.close()
        engine.dispose()
    profiles = {Path(raw).stem: hottest(Path(raw)) for raw, _ in spies if Path(raw).exists()}
    (out / "summary.json").write_text(json.dumps(profiles, indent=1))
    return {
        "deliveries": total,
        "deliveries_per_s": round(rate, 1),
        "cpu_ms_per_delivery": cpu,
        "cpu_ms_per_delivery_by_thread": threads,
        "out": str(out),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    emit(lambda *sizes: main(args[0], args[1], *sizes), args[2:])
