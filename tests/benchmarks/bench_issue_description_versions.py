"""Events/s through `issue-description-versions`: one consumer process on the embedded stack.

The events are produced first; the clock starts at the first committed effect (so the consumer
group's first join is not counted) and stops when every event is processed. Prints JSON.
Not part of the test run: `make bench`.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack
from shared.settings import Settings
from tests.benchmarks.emit import emit, summary
from tests.helpers import idv_event, processed, seed, spawn_consumer, wait_until

CONSUMER = "issue-description-versions"


def main(n: int = 20_000) -> dict[str, object]:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    state = Path(tempfile.mkdtemp(prefix="plane-workers-bench-"))
    with EmbeddedStack(Settings.from_env(), state) as stack:
        s = replace(stack.settings, metrics_port=0)
        prepare(s)
        from shared.db.engine import get_engine
        from shared.events.producer import EventProducer

        engine = get_engine(s.database_url)
        users, issues = seed(engine, n, n_users=5)
        events = [(str(i.id), idv_event(i, users[k % 5], creating=True)) for k, i in enumerate(issues)]
        EventProducer(s).send_many(CONSUMER, events)
        consumer = spawn_consumer(CONSUMER, s)
        try:
            wait_until(lambda: processed(engine, CONSUMER) > 0, timeout_s=120, interval_s=0.01)
            start, first = time.perf_counter(), processed(engine, CONSUMER)
            wait_until(lambda: processed(engine, CONSUMER) >= n, timeout_s=900, interval_s=0.05)
            elapsed = time.perf_counter() - start
        finally:
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(timeout=60)
        engine.dispose()
    rate = round((n - first) / elapsed, 1)
    return {
        "benchmark": "issue-description-versions",
        # No baseline yet: Plane's task is not run here, so no ratio either.
        **summary(rate, None, "events/s"),
        "events": n,
        "timed_events": n - first,
        "seconds": round(elapsed, 3),
        "events_per_s": rate,
        "consumer_processes": 1,
        "cpu_count": os.cpu_count(),
        "stack": "embedded (pgserver PostgreSQL, tansu)",
    }


if __name__ == "__main__":
    emit(main, sys.argv[1:2])
