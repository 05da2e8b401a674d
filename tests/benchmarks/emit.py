"""A benchmark's entry point: its JSON is the only thing on stdout.

`make bench` (`run_all`) parses each benchmark's stdout as one JSON document, but what runs inside a
benchmark writes to fd 1 on its own: Celery's worker says "worker: Warm shutdown (MainProcess)"
through `os.write` on the raw descriptor, and the consumers, pgserver and the brokers are
subprocesses that inherit it. So fd 1 points at stderr while `main` runs, which covers Python
prints, C libraries and every child alike, and the JSON goes to the real stdout afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def emit(main: Callable[..., dict[str, Any]], args: list[str]) -> None:
    """`main(*int args)` with fd 1 on stderr, then its result as JSON on the real stdout."""
    # SIGTERM (run_all's timeout or Ctrl-C) as SystemExit, so `with EmbeddedStack(...)` and the
    # `finally`s stop what a signal to our process group misses: PostgreSQL (pg_ctl) and the broker
    # run in sessions of their own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        result = main(*(int(a) for a in args))
    finally:
        sys.stdout.flush()
        os.dup2(real_stdout, 1)
        os.close(real_stdout)
    print(json.dumps(result, indent=2), flush=True)


def summary(
    ours: float, baseline: float | None, unit: str, limit: float | None = None
) -> dict[str, float | str | None]:
    """The keys every benchmark reports alike: throughputs in `unit`, `ratio` = ours / baseline
    (higher is better), `limit` the physical ceiling where the benchmark knows one."""
    ratio = round(ours / baseline, 2) if baseline else None
    return {"ours": ours, "baseline": baseline, "ratio": ratio, "limit": limit, "unit": unit}
