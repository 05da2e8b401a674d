"""prune-worker-state on real PostgreSQL: old dedupe keys and finished run records go, the rest stays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, text

from shared import registry
from shared.cron.runtime import EXIT_OK, run_job
from shared.db.state import JobRun, ProcessedEvent, WebhookDelivery

SPEC = registry.job("prune-worker-state")


def seed(engine, now: datetime) -> None:  # type: ignore[no-untyped-def]
    keys = [
        {"consumer": "c", "event_id": uuid.uuid4(), "processed_at": now - timedelta(days=age)}
        for age in [20] * 7000 + [13] * 50  # 7,000 past the 14-day retention: two batches
    ]
    runs = [
        {"job": "x", "status": status, "started_at": now - timedelta(days=age), "counts": {}}
        for status, age in [("success", 100), ("failure", 91), ("running", 200), ("success", 30)]
    ]
    deliveries = [
        {
            "delivery_id": uuid.uuid4(),
            "webhook_id": uuid.uuid4(),
            "status": "succeeded",
            "attempts": 1,
            "event_time": now - timedelta(days=age),
            "finished_at": now - timedelta(days=age),
        }
        for age in (61, 61, 61, 59)  # HARD_DELETE_AFTER_DAYS is 60 in the tests
    ]
    with engine.begin() as conn:
        conn.execute(insert(ProcessedEvent), keys)
        conn.execute(insert(JobRun), runs)
        conn.execute(insert(WebhookDelivery), deliveries)
        for logged, age in ((True, 61), (True, 59), (False, 61)):  # an unlogged one is in flight
            conn.execute(
                text(
                    "INSERT INTO plane_workers.webhook_attempts"
                    " (delivery_id, attempt, webhook_id, started_at, logged)"
                    " VALUES (gen_random_uuid(), 1, gen_random_uuid(), :at, :logged)"
                ),
                {"at": now - timedelta(days=age), "logged": logged},
            )
        for status, age in (("sent", 15), ("presumed_sent", 15), ("sending", 15), ("sent", 13)):
            conn.execute(
                text(
                    "INSERT INTO plane_workers.email_digests"
                    " (key, receiver_id, issue_id, log_ids, message_id, status, created_at)"
                    " VALUES (md5(random()::text), gen_random_uuid(), gen_random_uuid(), '{}', 'm', :s, :at)"
                ),
                {"s": status, "at": now - timedelta(days=age)},
            )
        for age in (15, 13):
            conn.execute(
                text("INSERT INTO plane_workers.issue_origins VALUES (gen_random_uuid(), 'https://x', :at)"),
                {"at": now - timedelta(days=age)},
            )
        # soft-deletes' collections: abandoned 15 days, discarded yesterday, in progress 13 days
        # (kept: not abandoned for the retention), each with 3 rows.
        for phase, age in (("marking", 15), ("discarded", 1), ("collecting", 13)):
            subtree = conn.scalar(
                text(
                    "INSERT INTO plane_workers.soft_delete_subtrees"
                    " (root_table, root_id, stamp, phase, updated_at)"
                    " VALUES ('issues', gen_random_uuid()::text, now(), :p, :at) RETURNING id"
                ),
                {"p": phase, "at": now - timedelta(days=age)},
            )
            conn.execute(
                text(
                    "INSERT INTO plane_workers.soft_delete_subtree_rows (subtree_id, tbl, id, layer)"
                    " SELECT :s, 'issue_comments', gen_random_uuid()::text, 1 FROM generate_series(1, 3)"
                ),
                {"s": subtree},
            )


def counts(engine) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        keys = conn.scalar(select(func.count()).select_from(ProcessedEvent))
        runs = conn.scalars(select(JobRun.status).where(JobRun.job == "x").order_by(JobRun.id)).all()
    return keys, list(runs)


def left(engine) -> dict[str, list]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {
            "attempts": conn.execute(
                text("SELECT logged FROM plane_workers.webhook_attempts ORDER BY started_at")
            )
            .scalars()
            .all(),
            "digests": conn.execute(
                text("SELECT status FROM plane_workers.email_digests ORDER BY created_at, status")
            )
            .scalars()
            .all(),
            "origins": conn.scalar(text("SELECT count(*) FROM plane_workers.issue_origins")),
            "subtrees": conn.execute(
                text(
                    "SELECT s.phase, count(r.id) FROM plane_workers.soft_delete_subtrees s LEFT JOIN"
                    " plane_workers.soft_delete_subtree_rows r ON r.subtree_id = s.id GROUP BY s.id"
                )
            ).all(),
        }


def test_prunes_past_retention_and_dry_run_counts_the_same(settings, engine):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    seed(engine, now)
    code, dry = run_job(SPEC, settings, dry_run=True, scheduled_for=now)
    assert code == EXIT_OK and dry is not None
    assert dry.counts == {
        "deleted_processed_events": 7000,
        "deleted_job_runs": 2,
        "deleted_webhook_deliveries": 3,
        "deleted_webhook_attempts": 1,
        "deleted_email_digests": 2,
        "deleted_issue_origins": 1,
        "deleted_soft_delete_subtree_rows": 6,
        "deleted_soft_delete_subtrees": 2,
    }
    assert counts(engine) == (7050, ["success", "failure", "running", "success"])

    code, real = run_job(SPEC, settings, scheduled_for=now)
    assert code == EXIT_OK and real is not None
    assert real.counts == {
        "deleted_processed_events": 7000,
        "deleted_job_runs": 2,
        "deleted_webhook_deliveries": 3,
        "deleted_webhook_attempts": 1,
        "deleted_email_digests": 2,
        "deleted_issue_origins": 1,
        "deleted_soft_delete_subtree_rows": 6,
        "deleted_soft_delete_subtrees": 2,
    }
    # An attempt not yet logged is in flight, a digest still 'sending' is settled by the digest.
    assert left(engine) == {
        "attempts": [False, True],
        "digests": ["sending", "sent"],
        "origins": 1,
        "subtrees": [("collecting", 3)],
    }
    # A run still marked running is the trace of a killed run: kept whatever its age.
    assert counts(engine) == (50, ["running", "success"])

    code, again = run_job(SPEC, settings, scheduled_for=now)
    assert code == EXIT_OK and again is not None and again.counts == {}
