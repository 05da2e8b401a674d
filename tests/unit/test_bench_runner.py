"""`make bench`'s runner: it knows every benchmark, and a benchmark whose stdout is not pure JSON is
an error naming it (no benchmark is run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.benchmarks import run_all

BENCH_DIR = Path(run_all.__file__).parent


def fake(stdout_lines: list[str], code: int = 0) -> list[str]:
    script = "".join(f"print({line!r});" for line in stdout_lines) + f"raise SystemExit({code})"
    return [sys.executable, "-c", script]


def test_every_benchmark_is_in_the_runner() -> None:
    on_disk = {p.stem for p in BENCH_DIR.glob("bench_*.py")}
    assert on_disk, "no benchmarks found"
    assert on_disk == set(run_all.BENCHMARKS)
    for bench in run_all.BENCHMARKS.values():
        assert bench.full and bench.quick and all(a.isdigit() for a in bench.full + bench.quick)


def test_a_pure_json_stdout_becomes_an_entry() -> None:
    details = {"benchmark": "x", "ours": 30.0, "baseline": 10.0, "ratio": 3.0, "limit": None, "unit": "x/s"}
    entry = run_all.run_one("bench_fake", fake([json.dumps(details, indent=2)]), timeout_s=60)
    assert "error" not in entry
    assert (entry["ours"], entry["baseline"], entry["ratio"], entry["unit"]) == (30.0, 10.0, 3.0, "x/s")
    assert entry["details"] == details


def test_a_stray_line_before_the_json_is_an_error_naming_the_benchmark() -> None:
    cmd = fake(["worker: Warm shutdown (MainProcess)", json.dumps({"ours": 1})])
    entry = run_all.run_one("bench_fake", cmd, timeout_s=60)
    assert entry["error"].startswith("bench_fake: stdout is not one JSON object")
    assert "worker: Warm shutdown" in entry["error"]
    assert entry["details"] is None


def test_a_failing_or_incomplete_benchmark_is_an_error() -> None:
    failed = run_all.run_one("bench_fake", fake(["{}"], code=3), timeout_s=60)
    assert failed["error"].startswith("bench_fake: exit code 3")
    lacking = run_all.run_one("bench_fake", fake([json.dumps({"ours": 1})]), timeout_s=60)
    assert "lacks baseline, ratio, limit, unit" in lacking["error"]


def test_emit_keeps_what_the_benchmark_and_its_children_print_off_stdout() -> None:
    # What Celery's worker does on shutdown (a raw write to fd 1), a print, and a child process.
    script = (
        "import os, subprocess, sys\n"
        "from tests.benchmarks.emit import emit\n"
        "def main(n):\n"
        "    os.write(1, b'worker: Warm shutdown (MainProcess)\\n')\n"
        "    print('progress')\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"child\")'], check=True)\n"
        "    return {'n': n}\n"
        "emit(main, ['7'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=run_all.REPO, capture_output=True, timeout=60, check=True
    )
    assert json.loads(proc.stdout) == {"n": 7}
    assert all(s in proc.stderr for s in (b"worker: Warm shutdown", b"progress", b"child"))


def test_a_benchmark_past_its_timeout_is_stopped_and_an_error() -> None:
    cmd = [sys.executable, "-c", "import time; print('partial', flush=True); time.sleep(60)"]
    entry = run_all.run_one("bench_fake", cmd, timeout_s=1)
    assert entry["error"] == "bench_fake: timed out after 1 s; stdout starts with b'partial\\n'"
    assert entry["wall_s"] < 30
