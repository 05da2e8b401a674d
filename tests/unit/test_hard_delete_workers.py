"""hard-delete's worker pool: bounded, and a failed batch fails the run instead of vanishing."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cronjobs.hard_delete import Workers, run
from shared.cron.runtime import JobContext
from shared.settings import Settings


def test_the_feeder_never_runs_ahead_of_the_threads():
    running, peak, finished, lock = 0, 0, 0, threading.Lock()

    def task() -> None:
        nonlocal running, peak, finished
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
            finished += 1

    with Workers(3) as workers:
        for submitted in range(1, 31):
            workers.submit(task)
            with lock:  # no backlog: what is unfinished fits the threads
                assert submitted - finished <= 3
        workers.join()
    assert peak == 3 and finished == 30


def test_a_failed_task_is_raised_by_the_next_submit_or_join():
    def fail() -> None:
        raise RuntimeError("batch failed")

    with Workers(1) as workers, pytest.raises(RuntimeError, match="batch failed"):
        workers.submit(fail)
        workers.submit(lambda: None)  # waits for the free thread, then reaps the failure
    with Workers(2) as workers, pytest.raises(RuntimeError, match="batch failed"):
        workers.submit(fail)
        workers.join()


def test_zero_workers_is_a_clear_error():
    settings = replace(Settings.from_env({}), hard_delete_workers=0)
    ctx = JobContext("hard-delete", settings, None, False, datetime.now(UTC))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HARD_DELETE_WORKERS must be at least 1"):
        run(ctx)
