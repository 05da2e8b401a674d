"""Conformance samples of every registry job: `samples="cronjobs.samples:<job name with _>"`.

Each function takes a `shared.conformance.SampleWorld` and returns `JobSamples`: it seeds rows the
job must act on (at least a few batches, so a kill can land half-way) and rows it must leave
alone, and says how to read the visible effects back. tests/conformance/test_jobs.py runs every
job against them: dry run, real run, a second run, two concurrent runs, a kill -9 half-way.
"""

from cronjobs.samples.ai import (
    ai_docs_sync,
    ai_feed_jobs,
    ai_reap_stuck_jobs,
    ai_reconcile,
    ai_workspace_plan_sync,
)
from cronjobs.samples.cleanup import (
    cleanup_api_logs,
    cleanup_description_versions,
    cleanup_email_logs,
    cleanup_page_versions,
    cleanup_webhook_logs,
)
from cronjobs.samples.housekeeping import delete_expired_exports, delete_unuploaded_assets, prune_worker_state
from cronjobs.samples.issues import archive_close_issues, hard_delete
from cronjobs.samples.mail import email_digest
from cronjobs.samples.telemetry import instance_traces

__all__ = [
    "ai_docs_sync",
    "ai_feed_jobs",
    "ai_reap_stuck_jobs",
    "ai_reconcile",
    "ai_workspace_plan_sync",
    "archive_close_issues",
    "cleanup_api_logs",
    "cleanup_description_versions",
    "cleanup_email_logs",
    "cleanup_page_versions",
    "cleanup_webhook_logs",
    "delete_expired_exports",
    "delete_unuploaded_assets",
    "email_digest",
    "hard_delete",
    "instance_traces",
    "prune_worker_state",
]
