"""`plane-workers celery check-beat` against Plane's django_celery_beat tables (Plane's schema)."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import text

from services.celery_bridge import beat
from shared import registry

# Plane's beat schedule (reference/plane-bgtasks.md §2): entry name -> task.
B = "plane.bgtasks."
PLANE_BEAT = {
    "check-every-five-minutes-to-send-email-notifications": B
    + "email_notification_task.stack_email_notification",
    "run-every-6-hours-for-instance-trace": "plane.license.bgtasks.tracer.instance_traces",
    "check-every-day-to-delete-hard-delete": B + "deletion_task.hard_delete",
    "check-every-day-to-archive-and-close": B + "issue_automation_task.archive_and_close_old_issues",
    "check-every-day-to-delete_exporter_history": B + "exporter_expired_task.delete_old_s3_link",
    "check-every-day-to-delete-file-asset": B + "file_asset_task.delete_unuploaded_file_asset",
    "check-every-day-to-delete-api-logs": B + "cleanup_task.delete_api_logs",
    "check-every-day-to-delete-email-notification-logs": B + "cleanup_task.delete_email_notification_logs",
    "check-every-day-to-delete-page-versions": B + "cleanup_task.delete_page_versions",
    "check-every-day-to-delete-issue-description-versions": B
    + "cleanup_task.delete_issue_description_versions",
    "check-every-day-to-delete-webhook-logs": B + "cleanup_task.delete_webhook_logs",
    "check-every-day-to-delete-exporter-history": B + "exporter_expired_task.delete_old_s3_link",
}


def test_every_plane_beat_task_maps_to_a_registry_cronjob():
    jobs = {j.name for j in registry.JOBS}
    for task in PLANE_BEAT.values():
        assert beat.job_for(task) in jobs, task
    assert beat.job_for("plane.bgtasks.dummy_data_task.create_dummy_data") is None
    assert beat.job_for("other.app.hard_delete") is None  # only Plane's own tasks


def _seed(engine, rows: dict[str, tuple[str, bool]]) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO django_celery_beat_periodictasks (ident, last_update) VALUES (1, now())")
        )
        for name, (task, enabled) in rows.items():
            conn.execute(
                text(
                    "INSERT INTO django_celery_beat_periodictask (name, task, args, kwargs, enabled, "
                    "total_run_count, date_changed, description, one_off, headers) VALUES "
                    "(:n, :t, '[]', '{}', :e, 0, now(), '', false, '{}')"
                ),
                {"n": name, "t": task, "e": enabled},
            )


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "celery", "check-beat", *args],
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_beat_lists_enabled_overlaps_and_disables_them(engine, database_url):  # type: ignore[no-untyped-def]
    rows = {name: (task, True) for name, task in PLANE_BEAT.items()}
    rows["check-every-day-to-delete-webhook-logs"] = (
        PLANE_BEAT["check-every-day-to-delete-webhook-logs"],
        False,
    )
    rows["someone-elses-task"] = ("proj.tasks.nightly", True)
    _seed(engine, rows)

    listed = _cli(database_url, "--json", "--fail")
    assert listed.returncode == 1, listed.stderr
    entries = json.loads(listed.stdout)["enabled"]
    assert {e["name"] for e in entries} == set(PLANE_BEAT) - {"check-every-day-to-delete-webhook-logs"}
    by_name = {e["name"]: e["cronjob"] for e in entries}
    assert by_name["check-every-day-to-archive-and-close"] == "archive-close-issues"
    assert by_name["check-every-day-to-delete-exporter-history"] == "delete-expired-exports"

    disabled = _cli(database_url, "--disable", "--json")
    assert disabled.returncode == 0 and json.loads(disabled.stdout)["disabled"] == len(entries)
    with engine.connect() as conn:
        still = conn.execute(text("SELECT name FROM django_celery_beat_periodictask WHERE enabled")).scalars()
        assert list(still) == ["someone-elses-task"]
    assert _cli(database_url, "--fail").returncode == 0


def test_check_beat_errors_are_one_line_without_the_password():
    result = _cli("postgresql://plane:s3cr3t-pw@127.0.0.1:1/plane")
    assert result.returncode == 3
    assert "s3cr3t-pw" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "DATABASE_URL=" in result.stderr
