"""Small helpers the tests share: seeding Plane rows, running consumers, waiting for effects."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from sqlalchemy import Engine, func, make_url, select, text

from shared.cli.dlq import show
from shared.db.plane import Issue, User
from shared.db.state import ProcessedEvent
from shared.embedded.stack import env_for
from shared.events import Event, new_event
from shared.kafka import runtime
from shared.registry import ConsumerSpec
from shared.settings import Settings
from shared.testing import plane_factory as make

IDV_TYPE = "plane.issue_description_version.v1"


def seed(engine: Engine, n_issues: int, n_users: int = 2) -> tuple[list[User], list[Issue]]:
    return make.project_with_issues(engine, n_issues, n_users)


def idv_event(issue: Issue, user: User, *, creating: bool = False, old_html: str = "<p>old</p>") -> Event:
    return new_event(
        IDV_TYPE,
        {
            "updated_issue": json.dumps({"description_html": old_html}),
            "issue_id": str(issue.id),
            "user_id": str(user.id),
            "is_creating": creating,
        },
    )


def wait_until(predicate: Callable[[], Any], timeout_s: float = 60, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def processed(engine: Engine, consumer: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.consumer == consumer)
        )


def dead_letters(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return list(show(settings, topic, limit=None))


@contextlib.contextmanager
def consumer_thread(
    spec: ConsumerSpec, settings: Settings, **build_kwargs: Any
) -> Iterator[runtime.ConsumerRun]:
    """Run a consumer in this process (signals left alone); stopped and joined on exit."""
    run = runtime.build(spec, settings, **build_kwargs)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(runtime.run(run, install_signals=False)))
    thread.start()
    try:
        yield run
    finally:
        run.shutdown()
        thread.join(timeout=60)
        assert not thread.is_alive(), "consumer did not stop"


def spawn_consumer(
    name: str, settings: Settings, stderr: int | IO[bytes] = subprocess.PIPE, **env: str
) -> subprocess.Popen[bytes]:
    """The consumer as its own process, exactly as a pod runs it. Pass a file as `stderr` when
    nobody reads the pipe: a full pipe blocks the consumer."""
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "consume", name],
        env=env_for(settings) | {"LOG_LEVEL": "WARNING"} | env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each, then wait up to a minute for each; kill one that is still running."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def set_database_up(admin: Engine, database_url: str, up: bool) -> None:
    """Down: the database refuses new connections ("database ... is not currently accepting
    connections", a FATAL at connect) and every session on it, pooled ones too, is terminated."""
    name = make_url(database_url).database
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(up).lower()}'))
        if not up:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
