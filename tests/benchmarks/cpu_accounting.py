"""CPU seconds by component over a benchmark phase, read from /proc (psutil).

A throughput ratio on a small machine says little without where the CPU went: the processes under
test share the cores with the broker, PostgreSQL and the load generator. `CpuMeter` snapshots the
CPU time of every process it can name before and after a phase. A process's own time counts, plus
its reaped children's (PostgreSQL backends that ended during the phase are in the postmaster's);
the benchmark's own process counts only itself, since the consumers it spawns count on their own.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import psutil

Classifier = Callable[[str, str, str], str | None]  # (name, executable, command line) -> component


class CpuMeter:
    def __init__(self, classify: Classifier) -> None:
        self._classify = classify
        self._before: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        self._before = self._snapshot()

    def stop(self) -> dict[str, float]:
        """CPU seconds per component since `start` (processes born meanwhile count from zero)."""
        after = self._snapshot()
        used: dict[str, float] = defaultdict(float)
        for pid, (component, seconds) in after.items():
            previous = self._before.get(pid)
            used[component] += seconds - (previous[1] if previous and previous[0] == component else 0.0)
        return dict(used)

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        seen = {}
        me = os.getpid()
        for process in psutil.process_iter(["name", "exe", "cmdline", "cpu_times"]):
            info = process.info
            if info["cpu_times"] is None:
                continue
            component = "benchmark process" if process.pid == me else None
            component = component or self._classify(
                info["name"] or "", info["exe"] or "", " ".join(info["cmdline"] or ())
            )
            if component is None:
                continue
            times = info["cpu_times"]
            seconds = times.user + times.system
            if process.pid != me:
                seconds += times.children_user + times.children_system
            seen[process.pid] = (component, seconds)
        return seen


def per_item_ms(used: dict[str, float], items: int) -> dict[str, float]:
    """CPU milliseconds per item by component, largest first, with their total."""
    largest_first = sorted(used.items(), key=lambda kv: -kv[1])
    table = {name: round(seconds * 1000 / items, 3) for name, seconds in largest_first}
    table["total"] = round(sum(used.values()) * 1000 / items, 3)
    return table


def machine_busy_s() -> float:
    """CPU seconds every CPU of the machine spent busy since boot."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak resident set) of one process, MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": found.get("VmRSS", 0.0), "peak_rss_mib": found.get("VmHWM", 0.0)}
