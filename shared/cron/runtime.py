"""Runs one registry job: once at a time (advisory lock), recorded, measured, with exit codes.

Exit codes: 0 the work is done (or another run holds the lock and is doing it), 1 the job
failed (the run record says why), 2 bad usage or configuration, 143 (128 + SIGTERM, what a shell
reports for a process SIGTERM ended) the run was interrupted.

SIGTERM (a deleted Job, a drained node, activeDeadlineSeconds) or SIGINT: the batch in progress
is finished and committed, then the job stops at its next batch boundary (JobContext.batch_done,
so every `drain` too): the run is recorded `interrupted` with its counts and finished_at, the lock
is released, and the process exits 143, well inside the pod's grace period unless one batch takes
longer (a batch's statements are bounded; a run SIGKILLed anyway is marked `abandoned` by the
next). The next run does what is left. Metrics are pushed once per run, never for a dry run.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, cast

from sqlalchemy import Engine, Executable, func, select, text, update

from shared import metrics, registry
from shared.db.engine import get_engine
from shared.db.state import JobRun
from shared.logs import log_context
from shared.registry import JobSpec
from shared.settings import Settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143
PROGRESS_EVERY_S = 10.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class JobInterrupted(BaseException):
    """Raised out of the job at its first batch boundary after SIGTERM/SIGINT. A BaseException,
    like KeyboardInterrupt, so that a job's own `except Exception` cannot swallow it."""


@dataclass
class JobContext:
    name: str
    settings: Settings
    engine: Engine
    dry_run: bool
    # The run's notion of "now": the CronJob's scheduled time when given, so a re-run of a
    # missed schedule computes the same cut-offs as the original would have.
    now: datetime
    counts: Counter[str] = field(default_factory=Counter)
    _last_progress: float = field(default_factory=time.monotonic, repr=False)
    # A job may count from several threads (hard-delete's workers); `+=` on a Counter is not atomic.
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Set by SIGTERM/SIGINT (run_job): the job stops at its next batch boundary.
    stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def batch_done(self) -> None:
        """Call after each committed batch: progress every PROGRESS_EVERY_S, JOB_BATCH_PAUSE_MS pause.
        Raises JobInterrupted once the run has been asked to stop (from any of the job's threads)."""
        self.check_stop()
        if time.monotonic() - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = time.monotonic()
            log.info("progress", extra={"fields": {"counts": dict(self.counts)}})
        if self.settings.job_batch_pause_ms and self.stop.wait(self.settings.job_batch_pause_ms / 1000):
            self.check_stop()

    def check_stop(self) -> None:
        """For a job's own loops between batches: raise JobInterrupted if asked to stop."""
        if self.stop.is_set():
            raise JobInterrupted()

    def count(self, action: str, n: int = 1) -> None:
        with self._count_lock:
            self.counts[action] += n
        if not self.dry_run:
            metrics.JOB_ROWS.labels(self.name, action).inc(n)

    def count_query(self, action: str, statement: Executable, params: Mapping[str, Any]) -> None:
        """Count what a `SELECT count(*)` finds: how dry runs report what they would change."""
        with self.engine.connect() as conn:
            self.count(action, conn.scalar(statement, params) or 0)

    def drain(self, action: str, statement: Executable, params: Mapping[str, Any], limit: int) -> None:
        """Run `statement`, which changes at most `:limit` rows, in a transaction of its own each
        time, until one run changes fewer: bounded batches that commit as they go."""
        while True:
            with self.engine.begin() as conn:
                changed = conn.execute(statement, {**params, "limit": limit}).rowcount
            if changed:
                self.count(action, changed)
            self.batch_done()
            if changed < limit:
                return


JobFunction = Callable[[JobContext], None]


def lock_key(job: str) -> int:
    """A stable signed 64-bit advisory-lock key per job name."""
    digest = hashlib.sha256(f"plane-workers:job:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_job(
    spec: JobSpec,
    settings: Settings,
    *,
    dry_run: bool = False,
    scheduled_for: datetime | None = None,
) -> tuple[int, JobContext | None]:
    function = cast(JobFunction, registry.load(spec.entrypoint))
    engine = get_engine(settings.database_url)
    ctx = JobContext(
        name=spec.name,
        settings=settings,
        engine=engine,
        dry_run=dry_run,
        now=scheduled_for or datetime.now(UTC),
    )
    started = time.monotonic()
    with (
        log_context(job=spec.name, dry_run=dry_run),
        _stop_on_signals(ctx.stop),
        engine.connect() as lock_conn,
    ):
        # A session-level lock on a connection of its own, held for the whole run; released by
        # PostgreSQL if this process dies, so a killed run never blocks the next one.
        locked = lock_conn.scalar(select(func.pg_try_advisory_lock(lock_key(spec.name))))
        lock_conn.commit()
        if not locked:
            log.info("another run of %s holds the lock; nothing to do", spec.name)
            _record(engine, spec.name, "skipped", dry_run, scheduled_for, {}, None, finished=True)
            metrics.JOB_RUNS.labels(spec.name, "skipped_locked").inc()
            return EXIT_OK, None
        run_id = _record(engine, spec.name, "running", dry_run, scheduled_for, {}, None)
        _abandon_unfinished(engine, spec.name, run_id)
        error: str | None = None
        try:
            log.info("job started")
            ctx.check_stop()
            function(ctx)
        except JobInterrupted:
            status, code = "interrupted", EXIT_INTERRUPTED
            error = "interrupted by a signal; stopped after its last committed batch"
            log.warning("job interrupted", extra={"fields": {"counts": dict(ctx.counts)}})
        except Exception as exc:
            log.exception("job failed")
            status, code, error = "failure", EXIT_FAILED, f"{type(exc).__name__}: {exc}"
        else:
            status, code = ("dry_run" if dry_run else "success"), EXIT_OK
        finally:
            lock_conn.execute(select(func.pg_advisory_unlock(lock_key(spec.name))))
            lock_conn.commit()
        _finish(engine, run_id, status, ctx.counts, error)
        metrics.JOB_RUNS.labels(spec.name, status).inc()
        metrics.JOB_DURATION_SECONDS.labels(spec.name).set(time.monotonic() - started)
        if status == "success":
            metrics.JOB_LAST_SUCCESS.labels(spec.name).set(time.time())
        if not dry_run:  # a dry run changes nothing, so it reports nothing either
            metrics.push(settings.pushgateway_url, spec.name)
        if code == EXIT_OK:
            log.info("job finished", extra={"fields": {"counts": dict(ctx.counts)}})
        return code, ctx


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop` while the run lasts (only the main thread may take signals;
    elsewhere, e.g. a test calling run_job from a thread, they are left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.warning("received %s: stopping after the batch in progress", signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _record(
    engine: Engine,
    job: str,
    status: str,
    dry_run: bool,
    scheduled_for: datetime | None,
    counts: dict[str, int],
    error: str | None,
    finished: bool = False,
) -> int:
    with engine.begin() as conn:
        return conn.execute(
            JobRun.__table__.insert()
            .values(
                job=job,
                status=status,
                dry_run=dry_run,
                scheduled_for=scheduled_for,
                counts=counts,
                error=error,
                host=socket.gethostname(),
                finished_at=func.now() if finished else None,
            )
            .returning(JobRun.id)
        ).scalar_one()


def _abandon_unfinished(engine: Engine, job: str, run_id: int) -> None:
    """While this run holds the job's lock no other run of the job is alive (a run records itself
    only once it holds the lock, and the lock dies with its connection), so a row of the job still
    `running` is a run that was killed before it could finish (SIGKILL, OOM, a lost node)."""
    with engine.begin() as conn:
        abandoned = conn.execute(
            update(JobRun)
            .where(JobRun.job == job, JobRun.status == "running", JobRun.id != run_id)
            .values(status="abandoned", finished_at=func.now(), error=f"found unfinished by run {run_id}")
        ).rowcount
    if abandoned:
        log.warning("marked %d unfinished run(s) of %s abandoned", abandoned, job)


def _finish(engine: Engine, run_id: int, status: str, counts: Counter[str], error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(status=status, counts=dict(counts), error=error, finished_at=func.now())
        )


def set_statement_timeout(conn: object, seconds: float) -> None:
    """Bound a batch's statements so one slow batch cannot hold locks for long."""
    conn.execute(text(f"SET LOCAL statement_timeout = {int(seconds * 1000)}"))  # type: ignore[attr-defined]
