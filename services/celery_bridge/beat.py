"""Which of Plane's django_celery_beat entries one of our CronJobs also runs.

The map comes from the registry: each JobSpec's `replaces` names Plane's tasks in backticks
(`archive_and_close_old_issues`, ...), and a periodic task's `task` column is the dotted name
whose last part is that function (plane.bgtasks.issue_automation_task.archive_and_close_old_issues).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, text

from shared import registry

TABLE = "django_celery_beat_periodictask"
_NAMED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


@dataclass(frozen=True)
class BeatEntry:
    name: str
    task: str
    job: str  # our CronJob that runs it

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "task": self.task, "cronjob": self.job}


def replaced_tasks() -> dict[str, str]:
    """Plane task function name -> the CronJob that replaces it."""
    found: dict[str, str] = {}
    for job in registry.JOBS:
        for name in _NAMED.findall(job.replaces):
            found.setdefault(name, job.name)
    return found


def job_for(task: str) -> str | None:
    if not task.startswith("plane."):
        return None
    return replaced_tasks().get(task.rsplit(".", 1)[-1])


def has_table(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{TABLE}"}).scalar())


def enabled_overlaps(conn: Connection) -> list[BeatEntry]:
    rows = conn.execute(text(f"SELECT name, task FROM {TABLE} WHERE enabled ORDER BY name"))
    return [BeatEntry(name, task, job) for name, task in rows if (job := job_for(task))]


def disable(conn: Connection, entries: list[BeatEntry]) -> int:
    """Set them disabled and bump django_celery_beat's change marker, which its DatabaseScheduler
    polls to reload the schedule (as saving the entries in Django's admin would)."""
    if not entries:
        return 0
    changed = conn.execute(
        text(
            f"UPDATE {TABLE} SET enabled = false, date_changed = now() WHERE name = ANY(:names) AND enabled"
        ),
        {"names": [e.name for e in entries]},
    ).rowcount
    conn.execute(text("UPDATE django_celery_beat_periodictasks SET last_update = now() WHERE ident = 1"))
    return changed
