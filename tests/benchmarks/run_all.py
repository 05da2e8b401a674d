"""Every benchmark in one command, one JSON report: `make bench` (`make bench-quick` to smoke-test).

`python -m tests.benchmarks.run_all [--quick] [--out FILE]` runs each benchmark of `BENCHMARKS` in
its own subprocess (a fresh embedded stack each, and nothing one leaves behind in the process
skews the next), parses its stdout as one JSON document, and prints the report:

    {"commit", "machine": {"cores", "python", "platform"}, "started_at", "quick",
     "benchmarks": [{"name", "args", "wall_s", "ours", "baseline", "ratio", "limit", "unit",
                     "details": <the benchmark's own JSON>, "error"?}]}

`ours`/`baseline` are throughputs in `unit`, `ratio` = ours / baseline, `limit` the physical ceiling
where the benchmark knows one (else null). A benchmark that fails, or whose stdout is not pure JSON,
gets an `error` and makes the runner exit 1, after the report is still printed and written.
The benchmarks' stderr (their logs) passes through to ours.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = ("ours", "baseline", "ratio", "limit", "unit")


class Benchmark(NamedTuple):
    full: list[str]  # the sizes the README's figures were taken at
    quick: list[str]  # small enough for the whole run to take a couple of minutes
    timeout_s: float  # at full size; a hung benchmark must not hold the run forever


BENCHMARKS: dict[str, Benchmark] = {
    # events
    "bench_issue_description_versions": Benchmark(["20000"], ["500"], 3600),
    # issues exported (CSV and XLSX; ours, Plane's in-memory way, the bare writer), each in its own process
    "bench_exports": Benchmark(["100000"], ["1000"], 3600),
    # soft-deleted issues (x11 rows each); 20,000 live issues are seeded at any size
    "bench_hard_delete": Benchmark(["91000"], ["500"], 3600),
    # events, webhooks per event, latency samples: the README's figures are 50 x 100, not main's 100 x 100
    # quick: the hanging endpoints' deadline shortened to 5 s (30 s, WEBHOOK_TIMEOUT_S, at full size)
    "bench_webhooks": Benchmark(["50", "100", "200"], ["5", "100", "20", "0", "5"], 3600),
    # requests per case and round (fresh-connection cases send half as many), rounds
    "bench_http_clients": Benchmark(["3000", "3"], ["300", "2"], 900),
    # issue-activity events (a mix of updates and comments, 90% with notifications), ours then Celery
    "bench_activity": Benchmark(["5000"], ["300"], 1800),
    # receivers (10 stacks of 5 unsent logs each: 100,000 logs, 20,000 mails), ours then Celery
    "bench_email_digest": Benchmark(["2000"], ["40"], 3600),
    # transactional mails (4 sign-in codes to 1 workspace invitation), ours then Celery
    "bench_mail_tasks": Benchmark(["5000"], ["200"], 1800),
    # links crawled (a third of the pages 50-300 ms late), ours then Plane's way one at a time
    "bench_link_crawler": Benchmark(["2000"], ["300"], 1800),
    # Celery .delay() calls through the bridge to Kafka, latency samples (needs the machine's RabbitMQ)
    "bench_celery_bridge": Benchmark(["10000", "200"], ["500", "50"], 1800),
    # sentences through the embeddings consumer (and raw encode of the same), issues backfilled;
    # CPU fp32 on the build machine's 2 cores: 100,000 issues would take ~30-60 min there
    "bench_embeddings": Benchmark(["3000", "10000"], ["300", "300"], 3600),
    # CPU backends torch / ONNX fp32 / ONNX int8: corpus and query sentences, threads (0: every
    # core, the same count for torch and ONNX Runtime), interleaved timing rounds
    "bench_embeddings_int8": Benchmark(["4000", "400", "0", "5"], ["500", "50", "0", "2"], 3600),
    # issue updates timed produce -> searchable through the embeddings consumer (vs the seed's
    # documented 30 s poll), then ai-reconcile over workspaces / issues, in sync and 1% stale
    "bench_ai_schedule": Benchmark(["200", "1000", "100000"], ["20", "100", "10000"], 3600),
    # rows of the soft-deleted workspace, ours in keyset batches against Plane's per-object recursion
    "bench_soft_delete": Benchmark(["100000"], ["5000"], 3600),
}
QUICK_TIMEOUT_S = 600


def parse_report(name: str, stdout: bytes) -> dict[str, Any]:
    """The benchmark's JSON object; ValueError naming it and quoting its output's start if stdout is
    anything more (a stray log line in front) or less."""
    try:
        details = json.loads(stdout)
    except ValueError:
        details = None
    if not isinstance(details, dict):
        raise ValueError(f"{name}: stdout is not one JSON object; it starts with {stdout[:200]!r}")
    return details


def run_one(name: str, cmd: list[str], timeout_s: float, args: list[str] | None = None) -> dict[str, Any]:
    """Run one benchmark command and return its report entry (with `error` if it failed)."""
    entry: dict[str, Any] = {"name": name, "args": args or [], "wall_s": None}
    entry |= dict.fromkeys(SUMMARY_KEYS)
    entry["details"] = None
    started = time.perf_counter()
    # Its own session, so that on a timeout or Ctrl-C one signal reaches the benchmark and the
    # consumers and Celery worker it spawned (it stops its embedded stack itself, see emit.py).
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stdout = stop(proc)
        entry["error"] = f"{name}: timed out after {timeout_s:.0f} s; stdout starts with {stdout[:200]!r}"
        return entry
    except BaseException:
        stop(proc)
        raise
    finally:
        entry["wall_s"] = round(time.perf_counter() - started, 1)
    if proc.returncode != 0:
        entry["error"] = f"{name}: exit code {proc.returncode}; stdout starts with {stdout[:200]!r}"
        return entry
    try:
        details = parse_report(name, stdout)
    except ValueError as e:
        entry["error"] = str(e)
        return entry
    missing = [k for k in SUMMARY_KEYS if k not in details]
    if missing:
        entry["error"] = f"{name}: its JSON lacks {', '.join(missing)}"
    entry |= {k: details.get(k) for k in SUMMARY_KEYS}
    entry["details"] = details
    return entry


def stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> bytes:
    """SIGTERM to the benchmark's process group, SIGKILL after `grace_s`; what it had printed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.communicate(timeout=grace_s)[0] or b""
        except subprocess.TimeoutExpired:
            continue
    return b""  # something outside its group still holds the pipe; give up on the output


def commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_all(quick: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "commit": commit(),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "benchmarks": [],
    }
    for name, bench in BENCHMARKS.items():
        if only and name not in only:
            continue
        args = bench.quick if quick else bench.full
        timeout_s = QUICK_TIMEOUT_S if quick else bench.timeout_s
        print(f"run_all: {name} {' '.join(args)}", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", f"tests.benchmarks.{name}", *args]
        report["benchmarks"].append(run_one(name, cmd, timeout_s, args))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks work")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="run just this one")
    opts = parser.parse_args(argv)
    report = run_all(opts.quick, opts.only)
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if opts.out:
        opts.out.write_text(text + "\n")
    failed = [b["name"] for b in report["benchmarks"] if "error" in b]
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
