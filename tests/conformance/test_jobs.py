"""Every registry job, held to one bar through its samples (R19: idempotent runs, duplicates, kills).

Each job runs as real processes, exactly as its CronJob runs it (`python -m shared.cli.main job
NAME`), against a fresh database holding Plane's schema, real S3 (moto), a real broker and a
loopback receiver, with the rows its samples (cronjobs/samples) seed. Every run of a case gets the
same `--scheduled-for`, as a retried CronJob run would. After each step one thing is asserted:
the visible effects the samples read back equal what one complete run leaves.

What it shows, per job:
- a dry run changes nothing visible and records the counts the real run then records (on the
  dry run's keys: a real run may add diagnostics, such as hard-delete's longest transaction);
- a second run for the same scheduled time does nothing and counts nothing;
- two runs started together for one scheduled time do the work once between them;
- a run killed (SIGKILL) half-way leaves partial effects that the next run completes, and the
  next run marks the killed run's record `abandoned`.

What it cannot show:
- that the samples cover the job's whole selection: each seeds a few representative rows it must
  act on and must leave alone; the edge cases live in tests/integration;
- effects outside what `effects()` reads (other tables, other buckets), or work a dry run leaves
  out of its counts altogether;
- kills at every point: one kill per job, at the first visible change (after a committed batch);
  for `interruptible=False` jobs (one unit of work) at a random moment, so a run may be killed
  before, during or after its unit;
- whether an at-least-once effect was repeated: where a kill can make one happen twice (archive
  objects, issue-activity events, telemetry spans), effects are read deduplicated, as their
  readers do (by row id, event id, span content).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import select

from shared import registry
from shared.conformance import JobSampler, JobSamples, SampleWorld
from shared.db.state import JobRun
from shared.embedded.stack import env_for
from shared.registry import JobSpec

SIZE = 100  # rows to act on; each sample seeds at least two and a half batches of its job
RUN_TIMEOUT_S = 120.0
HALF_WAY_TIMEOUT_S = 60.0
RANDOM_KILL_WITHIN_S = 2.0  # a job process starts in ~0.5 s: kills land before, during and after

jobs = pytest.mark.parametrize("spec", registry.JOBS, ids=lambda s: s.name)
pytestmark = pytest.mark.timeout(300)  # a case takes seconds; a hang should not hold the run for long


@dataclass(frozen=True)
class Run:
    """A job_runs record."""

    id: int
    status: str
    counts: dict[str, int]


class Process:
    """One `plane-workers job` process, its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(args, env=dict(env), stdout=log, stderr=subprocess.STDOUT)

    def wait(self) -> int:
        try:
            return self.popen.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit within {RUN_TIMEOUT_S}s: {self.log()}") from None

    def kill(self) -> None:
        self.popen.kill()  # SIGKILL
        self.popen.wait(timeout=30)

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_bytes()[-tail:].decode("utf-8", "replace")


class Job:
    """A job, its samples seeded in a world of their own, and its runs as real processes."""

    def __init__(self, spec: JobSpec, world_of: Callable[[int], SampleWorld], logs: Path) -> None:
        self.spec = spec
        self.world = world_of(SIZE)
        assert spec.samples, f"job {spec.name} has no samples (see test_every_job_names_its_samples)"
        self.samples: JobSamples = cast(JobSampler, registry.load(spec.samples))(self.world)
        self.expected = self.samples.expected
        scheduled = self.samples.scheduled_for or datetime.now(UTC).replace(microsecond=0)
        self.scheduled = scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self.env = env_for(self.world.settings) | {"LOG_LEVEL": "WARNING"} | dict(self.samples.env)
        self.logs = logs
        self._n = 0

    def effects(self) -> object:
        return self.samples.effects()

    def start(self, *, dry_run: bool = False) -> Process:
        self._n += 1
        args = [
            sys.executable,
            "-m",
            "shared.cli.main",
            "job",
            self.spec.name,
            "--scheduled-for",
            self.scheduled,
        ]
        return Process([*args, "--dry-run"] if dry_run else args, self.env, self.logs / f"run-{self._n}.log")

    def run(self, *, dry_run: bool = False) -> Run:
        """One complete run: exit 0 and exactly one new job_runs record, returned."""
        before = self.last_run_id()
        process = self.start(dry_run=dry_run)
        code = process.wait()
        assert code == 0, f"{self.spec.name} exited {code}: {process.log()}"
        runs = self.runs_after(before)
        assert len(runs) == 1, f"one run, one record: {runs}"
        return runs[0]

    def last_run_id(self) -> int:
        with self.world.engine.connect() as conn:
            return conn.scalar(select(JobRun.id).order_by(JobRun.id.desc()).limit(1)) or 0

    def runs_after(self, run_id: int) -> list[Run]:
        query = select(JobRun.id, JobRun.status, JobRun.counts).where(
            JobRun.job == self.spec.name, JobRun.id > run_id
        )
        with self.world.engine.connect() as conn:
            return [
                Run(i, status, dict(counts)) for i, status, counts in conn.execute(query.order_by(JobRun.id))
            ]


def work(counts: Mapping[str, int], keys: Mapping[str, int]) -> dict[str, int]:
    """`counts` on the keys a dry run reported: what it predicts. A real run may record more
    (diagnostics such as hard-delete's longest transaction) that a dry run cannot know."""
    return {key: counts.get(key, 0) for key in keys}


def difference(seen: object, expected: object) -> str:
    """A short account of how effects differ (they may hold thousands of ids)."""
    if isinstance(seen, dict) and isinstance(expected, dict):
        parts = [
            f"{k}: {difference(seen.get(k), expected.get(k))}" for k in expected if seen.get(k) != expected[k]
        ]
        parts += [f"{k}: not expected" for k in seen if k not in expected]
        return "; ".join(parts)
    if isinstance(seen, list) and isinstance(expected, list):
        missing = [e for e in expected if e not in seen]
        extra = [s for s in seen if s not in expected]
        return f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})"
    return f"seen {seen!r:.300}, expected {expected!r:.300}"


def assert_effects(job: Job, when: str) -> None:
    seen = job.effects()
    assert seen == job.expected, f"{job.spec.name} {when}: {difference(seen, job.expected)}"


def test_every_job_names_its_samples() -> None:
    problems = []
    for spec in registry.JOBS:
        function = spec.name.replace("-", "_")
        fix = (
            f"write `def {function}(world: SampleWorld) -> JobSamples` in cronjobs/samples/ (exported from "
            f'cronjobs/samples/__init__.py) and set samples="cronjobs.samples:{function}" on '
            f'JobSpec(name="{spec.name}") in shared/registry.py'
        )
        if not spec.samples:
            problems.append(f"job {spec.name} has no samples: {fix}")
            continue
        try:
            sampler = registry.load(spec.samples)
        except (ImportError, AttributeError) as exc:
            problems.append(f"job {spec.name}: samples={spec.samples!r} does not load ({exc}): {fix}")
            continue
        if not callable(sampler):
            problems.append(f"job {spec.name}: samples={spec.samples!r} is not a function: {fix}")
    assert not problems, "\n".join(problems)


@jobs
def test_dry_run_then_real_run_then_a_second_that_changes_nothing(
    spec: JobSpec, world_of, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    job = Job(spec, world_of, tmp_path)
    initial = job.effects()
    assert initial != job.expected, f"{spec.name}: the samples seed nothing for the job to do"

    dry = job.run(dry_run=True)
    assert dry.status == "dry_run", dry
    assert any(dry.counts.values()), f"{spec.name}: the dry run found nothing to do: {dry}"
    assert job.effects() == initial, f"the dry run changed effects: {difference(job.effects(), initial)}"

    real = job.run()
    assert real.status == "success", real
    assert_effects(job, "after one run")
    assert work(real.counts, dry.counts) == dry.counts, f"dry run {dry.counts}, real run {real.counts}"

    again = job.run()
    assert again.status == "success", again
    assert not any(again.counts.values()), f"a second run for the same time did work: {again.counts}"
    assert_effects(job, "after a second run")


@jobs
def test_two_concurrent_runs_for_one_scheduled_time_do_the_work_once(
    spec: JobSpec, world_of, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    job = Job(spec, world_of, tmp_path)
    dry = job.run(dry_run=True)
    before = job.last_run_id()
    both = [job.start(), job.start()]
    codes = [process.wait() for process in both]
    assert codes == [0, 0], [process.log() for process in both]

    runs = job.runs_after(before)
    assert len(runs) == 2 and {r.status for r in runs} <= {"success", "skipped"}, runs
    total: Counter[str] = Counter()
    for r in runs:
        total.update(work(r.counts, dry.counts))
    assert dict(total) == dry.counts, f"two runs did {dict(total)} between them, the work is {dry.counts}"
    assert any(r.status == "skipped" or not any(work(r.counts, dry.counts).values()) for r in runs), runs
    assert_effects(job, "after two concurrent runs")


@jobs
def test_a_run_killed_half_way_is_finished_by_the_next(spec: JobSpec, world_of, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job = Job(spec, world_of, tmp_path)
    initial = job.effects()
    before = job.last_run_id()
    victim = job.start()
    if job.samples.interruptible:
        kill_half_way(job, victim, initial)
        moment = "half-way"
        partial = job.effects()
        assert partial not in (initial, job.expected), f"{spec.name}: the kill did not land half-way"
    else:
        time.sleep(delay := random.uniform(0, RANDOM_KILL_WITHIN_S))
        victim.kill()
        moment = f"{delay:.2f}s after its start"  # unseeded: a failure says where the kill landed
    killed = [r.id for r in job.runs_after(before)]

    rerun = job.run()
    assert rerun.status == "success", rerun
    assert_effects(job, f"after a kill {moment} and a rerun")
    statuses = {r.id: r.status for r in job.runs_after(before) if r.id in killed}
    if job.samples.interruptible:
        assert list(statuses.values()) == ["abandoned"], f"the killed run's record: {statuses}"
    else:  # killed before it recorded itself, while running, or after it finished
        assert "running" not in statuses.values(), f"the killed run's record ({moment}): {statuses}"


def kill_half_way(job: Job, victim: Process, initial: object) -> None:
    """SIGKILL `victim` as soon as its effects have started to change and are not yet complete."""
    deadline = time.monotonic() + HALF_WAY_TIMEOUT_S
    while True:
        seen = job.effects()
        if seen != initial and seen != job.expected:
            victim.kill()
            return
        if seen == job.expected or victim.popen.poll() is not None:
            victim.kill()
            pytest.fail(
                f"{job.spec.name} finished before a kill could land half-way: seed more batches in its "
                f"samples or raise JOB_BATCH_PAUSE_MS there. {victim.log()}"
            )
        if time.monotonic() > deadline:
            victim.kill()
            pytest.fail(f"{job.spec.name} changed nothing in {HALF_WAY_TIMEOUT_S}s: {victim.log()}")
        time.sleep(0.02)
