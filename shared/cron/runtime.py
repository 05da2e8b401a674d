"""Runs one registry job: once at a time (advisory lock), recorded, measured, with exit codes.

Exit codes: 0 the work is done (or another run holds the lock and is doing it), 1 the job
failed (the run record says why), 2 bad usage or configuration.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
PROGRESS_EVERY_S = 10.0


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

    def batch_done(self) -> None:
        """Call after each committed batch: progress every PROGRESS_EVERY_S, JOB_BATCH_PAUSE_MS pause."""
        if time.monotonic() - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = time.monotonic()
            log.info("progress", extra={"fields": {"counts": dict(self.counts)}})
        if self.settings.job_batch_pause_ms:
            time.sleep(self.settings.job_batch_pause_ms / 1000)

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
    with log_context(job=spec.name, dry_run=dry_run), engine.connect() as lock_conn:
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
        try:
            log.info("job started")
            function(ctx)
        except Exception as exc:
            log.exception("job failed")
            _finish(engine, run_id, "failure", ctx.counts, f"{type(exc).__name__}: {exc}")
            metrics.JOB_RUNS.labels(spec.name, "failure").inc()
            return EXIT_FAILED, ctx
        finally:
            lock_conn.execute(select(func.pg_advisory_unlock(lock_key(spec.name))))
            lock_conn.commit()
            metrics.JOB_DURATION_SECONDS.labels(spec.name).set(time.monotonic() - started)
            metrics.push(settings.pushgateway_url, spec.name)
        status = "dry_run" if dry_run else "success"
        _finish(engine, run_id, status, ctx.counts, None)
        metrics.JOB_RUNS.labels(spec.name, status).inc()
        if not dry_run:
            metrics.JOB_LAST_SUCCESS.labels(spec.name).set(time.time())
        metrics.push(settings.pushgateway_url, spec.name)
        log.info("job finished", extra={"fields": {"counts": dict(ctx.counts)}})
        return EXIT_OK, ctx


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
