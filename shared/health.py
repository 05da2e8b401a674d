"""A consumer's two probe files, and the check `plane-workers healthcheck [--ready]` runs on them.

- Liveness, HEALTH_FILE: its modification time is when the stalest of the process's poll loops
  (main topic and every retry tier) last polled, or, while the consumer waits for its topics,
  when that wait last looked. It stays fresh while the consumer holds on a dependency outage: a
  restart would not bring PostgreSQL back, only turn the outage into a crash loop.
- Readiness, HEALTH_FILE + ".ready" (`ready_file`): present, and touched twice a second, while
  the consumer is ready: its topics exist, every processor has been given its partitions by the
  group (none is a valid share: a spare member is ready), it is not holding on an unavailable
  dependency, a broker answers, and it is not stopping. Removed as soon as any of that is lost.

Nothing heavy is imported here: the probes run this every few seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

READY_SUFFIX = ".ready"


def ready_file(health_file: str | os.PathLike[str]) -> str:
    return f"{os.fspath(health_file)}{READY_SUFFIX}"


class ProbeFiles:
    """Writes the liveness and readiness files of one consumer process."""

    def __init__(self, health_file: str) -> None:
        self.live = Path(health_file)
        self.ready = Path(ready_file(health_file))
        self._is_ready = False

    def clear(self) -> None:
        """At start: a file left by the previous incarnation (/tmp survives container restarts
        within a pod) must not vouch for this one."""
        self.live.unlink(missing_ok=True)
        self.ready.unlink(missing_ok=True)
        self._is_ready = False

    def alive(self, at: float | None = None) -> None:
        """The loop ran at `at` (Unix time, default now)."""
        _touch(self.live, time.time() if at is None else at)

    def set_ready(self, ready: bool) -> None:
        if ready:
            _touch(self.ready, time.time())
        elif self._is_ready or self.ready.exists():
            self.ready.unlink(missing_ok=True)
        self._is_ready = ready


def _touch(path: Path, at: float) -> None:
    # Through a descriptor: a path-based create-then-utime raised FileNotFoundError when the file
    # was removed in between (by a restart's clear()), and that crashed the consumer.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.utime(fd, (at, at))
    finally:
        os.close(fd)


def check(path: Path, max_age_s: float) -> tuple[bool, str]:
    """(healthy, what to print): the file exists and is at most `max_age_s` old."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False, f"{path} does not exist"
    if age > max_age_s:
        return False, f"{path} is {age:.0f}s old (max {max_age_s:.0f}s)"
    return True, f"ok ({age:.1f}s)"
