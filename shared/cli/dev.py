"""`plane-workers dev`: the consumers a default install runs, each as a child process, plus an
in-process cron schedule.

Child processes (not threads) so each consumer runs exactly as it does in its pod. The schedule
fires `plane-workers job NAME --scheduled-for T` at each job's cron time. Add-ons the chart leaves
off by default (Plane AI: the embeddings consumer loads a model first, its jobs feed it) run only
when named with `--with`, consumer or job.
"""

from __future__ import annotations

import logging
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

from croniter import croniter

from shared import registry
from shared.embedded.bootstrap import prepare
from shared.embedded.stack import EmbeddedStack, env_for
from shared.settings import VARIABLES, Settings

log = logging.getLogger(__name__)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shared.cli.main", *args]


def exports(base: Settings, stack: Settings) -> list[str]:
    """`export VAR=value` for every variable the embedded stack set (what another shell needs for
    `produce`, `dlq`, `job` against this stack); configured values were kept, so they are not
    repeated, and the only secrets among them are the embedded servers' own fixed ones."""
    env_base, env_stack = env_for(base, {}), env_for(stack, {})
    return [
        f"export {var.env}={shlex.quote(env_stack[var.env])}"
        for var in VARIABLES
        if env_stack[var.env] != env_base[var.env]
    ]


def check_named(extra: Collection[str]) -> list[str]:
    """`extra` as given, each the name of a consumer, a job or a deployment (UnknownWorkload
    otherwise)."""
    known = [spec.name for spec in (*registry.CONSUMERS, *registry.JOBS, *registry.DEPLOYMENTS)]
    for name in extra:
        if name not in known:
            raise registry.UnknownWorkload(
                f"no consumer, job or deployment named {name!r} (known: {', '.join(known)})"
            )
    return list(extra)


def consumers_to_run(extra: Collection[str] = ()) -> list[registry.ConsumerSpec]:
    """The consumers enabled by default plus those named in `extra` (UnknownWorkload otherwise)."""
    named = set(check_named(extra))
    return [spec for spec in registry.CONSUMERS if spec.enabled_by_default or spec.name in named]


def jobs_to_run(extra: Collection[str] = ()) -> list[registry.JobSpec]:
    """The jobs a default install schedules plus those named in `extra` (UnknownWorkload
    otherwise). A manual job (a back-fill) runs only when named, once, at start-up."""
    named = set(check_named(extra))
    return [
        spec for spec in registry.JOBS if (spec.enabled_by_default and not spec.manual) or spec.name in named
    ]


def child_env(settings: Settings, name: str) -> dict[str, str]:
    """What differs per child: no fixed metrics port, and probe files of its own (as each pod has
    its own /tmp); shared, one child's start-up clear() removed another's file."""
    return {"METRICS_PORT": "0", "HEALTH_FILE": f"{settings.health_file}.{name}"}


def deployments_to_run(extra: Collection[str] = ()) -> list[registry.DeploymentSpec]:
    """The deployments enabled by default plus those named in `extra` (the Celery bridge: it
    needs the AMQP_URL of Plane's RabbitMQ, which the embedded stack does not start)."""
    named = set(check_named(extra))
    return [spec for spec in registry.DEPLOYMENTS if spec.enabled or spec.name in named]


def run_dev(
    settings: Settings, state_dir: Path | None, *, jobs_now: bool = False, extra: Collection[str] = ()
) -> int:
    specs, job_specs = consumers_to_run(extra), jobs_to_run(extra)
    deployments = deployments_to_run(extra)
    running = {spec.name for spec in (*specs, *job_specs, *deployments)}
    every = (*registry.CONSUMERS, *registry.JOBS, *registry.DEPLOYMENTS)
    left_out = [spec.name for spec in every if spec.name not in running]
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with EmbeddedStack(settings, state_dir) as stack:
        prepare(stack.settings)
        env = env_for(stack.settings)
        children = {
            spec.name: subprocess.Popen(command(*spec.args), env=env | child_env(stack.settings, spec.name))
            for spec in (*specs, *deployments)
        }
        now = datetime.now(UTC)
        schedule = {spec.name: croniter(spec.schedule, now) for spec in job_specs}
        manual = {spec.name for spec in job_specs if spec.manual}
        due = {
            name: now if jobs_now or name in manual else it.get_next(datetime)
            for name, it in schedule.items()
        }
        broker = stack.settings.kafka_bootstrap_servers
        print(f"dev: {len(specs)} consumer(s) and {len(due)} job(s) on {broker}", flush=True)
        if deployments:
            print(f"  and: {', '.join(spec.name for spec in deployments)}", flush=True)
        if left_out:
            print(f"  off by default (add with --with NAME): {', '.join(left_out)}", flush=True)
        print("  in another shell, for produce / dlq / job against this stack:", flush=True)
        for line in exports(settings, stack.settings):
            print(f"    {line}", flush=True)
        for name, when in sorted(due.items(), key=lambda kv: kv[1]):
            print(f"  next {name}: {when.isoformat()}", flush=True)
        jobs: list[subprocess.Popen[bytes]] = []
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        log.error("%s exited with %s", name, child.returncode)
                        return 1
                now = datetime.now(UTC)
                for name, when in due.items():
                    if when <= now:
                        job_args = ("job", name, "--scheduled-for", when.isoformat())
                        jobs.append(subprocess.Popen(command(*job_args), env=env))
                        due[name] = schedule[name].get_next(datetime)  # a manual one's: next year
                jobs = [j for j in jobs if j.poll() is None]
                time.sleep(0.5)
        finally:
            # Jobs are left to finish (they are idempotent and hold their own lock); consumers
            # get SIGTERM, their graceful stop.
            for child in children.values():
                child.terminate()
            for child in [*children.values(), *jobs]:
                child.wait(timeout=60)
    return 0
