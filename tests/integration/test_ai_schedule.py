"""Plane AI's schedule on the Plane schema, real PostgreSQL and the embedded broker: ai-reconcile's
<=50 / >50 rule at its boundary and its memory of what it produced, the reaper's 4-day boundary,
onboarding under concurrency, and a plan downgrade that purges exactly one workspace's vectors
(the real model on CPU, the embeddings consumer's batch handler, the pgvector index)."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cronjobs.samples.ai import MODEL, ai_workspace
from shared import registry
from shared.cron.runtime import run_job
from shared.embedded.stack import env_for
from shared.embeddings import plans
from shared.events import parse_event
from shared.settings import Settings
from shared.testing.topics import read_topic

RECONCILE = registry.job("ai-reconcile")


def embed_events(settings: Settings) -> list[dict[str, Any]]:
    topic = settings.topic("embeddings")
    return [
        parse_event(m.value(), max_bytes=settings.event_max_bytes).data for m in read_topic(settings, topic)
    ]


def jobs(engine: Engine, workspace: uuid.UUID) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text(
                    "SELECT status FROM plane_workers.vectorization_jobs WHERE workspace_id = :w"
                    " ORDER BY created_at"
                ),
                {"w": workspace},
            )
        )


def reconcile(settings: Settings, at: datetime) -> dict[str, int]:
    code, ctx = run_job(RECONCILE, settings, scheduled_for=at)
    assert code == 0 and ctx is not None
    return dict(ctx.counts)


def test_at_most_50_missing_get_events_for_exactly_those_and_nothing_the_next_minute(
    settings: Settings, engine: Engine
) -> None:
    with engine.begin() as conn:
        ws, missing = ai_workspace(conn, 80, leave_out=50)
    at = datetime.now(UTC).replace(microsecond=0)
    assert reconcile(settings, at) == {"events": 50}
    events = embed_events(settings)
    assert sorted(e["entity_id"] for e in events) == sorted(missing)
    assert {(e["action"], e["workspace_id"]) for e in events} == {("upsert", str(ws))}

    assert reconcile(settings, at + timedelta(minutes=1)) == {}, "awaited, not produced again"
    assert len(embed_events(settings)) == 50

    # Past the retry delay the same documents are produced again, once, as attempt 2.
    later = at + timedelta(seconds=settings.ai_live_sync_retry_delay_s + 60)
    assert reconcile(settings, later) == {"events": 50, "retries": 50}
    assert reconcile(settings, later + timedelta(minutes=1)) == {}
    assert jobs(engine, ws) == ["success"], "no re-feed for a workspace within the rule"


def test_51_missing_queue_one_refeed_job_and_no_events(settings: Settings, engine: Engine) -> None:
    with engine.begin() as conn:
        ws, _ = ai_workspace(conn, 60, leave_out=51)
    at = datetime.now(UTC).replace(microsecond=0)
    assert reconcile(settings, at) == {"refeed_jobs": 1}
    assert reconcile(settings, at + timedelta(minutes=1)) == {}, "the workspace is being re-fed"
    assert jobs(engine, ws) == ["success", "queued"]
    assert embed_events(settings) == []


def test_retries_exhausted_refeed_the_workspace(settings: Settings, engine: Engine) -> None:
    with engine.begin() as conn:
        ws, _ = ai_workspace(conn, 5, leave_out=2)
    s = replace(settings, ai_live_sync_max_retries=1, ai_live_sync_retry_delay_s=60)
    at = datetime.now(UTC).replace(microsecond=0)
    assert reconcile(s, at) == {"events": 2}
    assert reconcile(s, at + timedelta(seconds=61)) == {"events": 2, "retries": 2}
    assert reconcile(s, at + timedelta(seconds=122)) == {"refeed_jobs": 1}
    assert jobs(engine, ws) == ["success", "queued"]


def test_toggle_off_means_no_work(settings: Settings, engine: Engine) -> None:
    with engine.begin() as conn:
        ai_workspace(conn, 10, leave_out=5)
        ai_workspace(conn, 60, leave_out=60)
    env = {k: v for k, v in env_for(settings).items() if k != "AI_VECTOR_SYNC_ENABLED"}
    off = Settings.from_env(env | {"CELERY_VECTOR_SYNC_ENABLED": "0"})
    assert not off.ai_vector_sync_enabled, "the seed's name is read too"
    for name in ("ai-reconcile", "ai-feed-jobs"):
        code, ctx = run_job(registry.job(name), off)
        assert code == 0 and ctx is not None and dict(ctx.counts) == {}, name
    assert embed_events(settings) == []


def test_the_reaper_fails_jobs_older_than_four_days_and_not_at_four(
    settings: Settings, engine: Engine
) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    ages = {
        "at_boundary": timedelta(days=4),
        "past": timedelta(days=4, seconds=1),
        "young": timedelta(days=1),
    }
    rows = {}
    with engine.begin() as conn:
        for name, age in ages.items():
            for status in ("queued", "running"):
                job_id = uuid.uuid4()
                conn.execute(
                    text(
                        "INSERT INTO plane_workers.vectorization_jobs (id, workspace_id, model_name, status, "
                        "created_at) VALUES (:id, gen_random_uuid(), :m, :s, :c)"
                    ),
                    {"id": job_id, "m": MODEL, "s": status, "c": at - age},
                )
                rows[job_id] = (name, status)
    code, ctx = run_job(registry.job("ai-reap-stuck-jobs"), settings, scheduled_for=at)
    assert code == 0 and ctx is not None and dict(ctx.counts) == {"failed": 2}
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id, status, error FROM plane_workers.vectorization_jobs")).all()
    for job_id, status, error in found:
        name, before = rows[job_id]
        if name == "past":
            assert status == "failed" and error.startswith(f"stuck: {before} for more than 4 days"), error
        else:
            assert (status, error) == (before, None)


def test_onboarding_queues_once_under_two_concurrent_plan_changes(settings: Settings, engine: Engine) -> None:
    ws = str(uuid.uuid4())
    barrier, changes = threading.Barrier(2), []

    def set_pro(offset: int) -> None:
        with engine.begin() as conn:
            barrier.wait()
            at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
            changes.append(plans.set_plan(conn, ws, "pro", "event", at, MODEL))

    threads = [threading.Thread(target=set_pro, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert jobs(engine, uuid.UUID(ws)) == ["queued"]
    assert sum(c.job_queued for c in changes) == 1, changes


def test_a_downgrade_purges_exactly_that_workspaces_vectors(settings: Settings, engine: Engine) -> None:
    from services.embeddings import handler
    from shared.embeddings.pipeline import Upsert
    from shared.embeddings.sources import read_documents
    from shared.events import Event, new_event
    from shared.events.producer import EventProducer
    from shared.kafka.handler import HandlerContext

    settings = replace(settings, embedding_device="cpu", embedding_cpu_threads=1)
    with engine.begin() as conn:
        kept, _ = ai_workspace(conn, 4, job=None)
        gone, _ = ai_workspace(conn, 4, job=None)
    indexer = handler.indexer(settings, engine)
    with engine.begin() as conn:
        for ws in (kept, gone):
            issue_ids = [
                str(i) for i in conn.scalars(text("SELECT id FROM issues WHERE workspace_id = :w"), {"w": ws})
            ]
            indexer.apply(conn, [Upsert(d) for d in read_documents(conn, "issue", issue_ids).values()])
    assert indexer.index.count(str(gone)).entities == 4

    cli = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "ai", "plan", "set", str(gone), "free"],
        env=env_for(settings) | {"LOG_LEVEL": "WARNING"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "plan free (was pro); vectors removal requested" in cli.stdout
    messages = read_topic(settings, settings.topic("embeddings"))
    assert [
        parse_event(m.value(), max_bytes=settings.event_max_bytes).data["entity_type"] for m in messages
    ] == ["workspace"]

    # The consumer's batch: the purge, and an upsert of the free workspace that must be dropped.
    events: list[Event] = [parse_event(m.value(), max_bytes=settings.event_max_bytes) for m in messages]
    with engine.connect() as conn:
        issue = str(conn.scalar(text("SELECT id FROM issues WHERE workspace_id = :w LIMIT 1"), {"w": gone}))
    events.append(
        new_event("plane.embed.v1", {"action": "upsert", "entity_type": "issue", "entity_id": issue})
    )
    producer = EventProducer(settings)
    with Session(engine) as session, session.begin():
        handler.handle(events, HandlerContext("embeddings", settings, producer, session))
    producer.close()
    assert indexer.index.count(str(gone)).entities == 0
    assert indexer.index.count(str(kept)).entities == 4
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT workspace_id, count(*) FROM plane_workers.indexed_documents GROUP BY 1")
        ).all()  # fmt: skip
    assert {(w, n) for w, n in left} == {(kept, 4)}

    # Pro again: queued, and the same (unchanged) issue versions can be indexed again.
    with engine.begin() as conn:
        change = plans.set_plan(conn, str(gone), "pro", "cli", datetime.now(UTC), MODEL)
        assert change.job_queued
        docs = read_documents(conn, "issue", [issue])
        tally = indexer.apply(conn, [Upsert(d) for d in docs.values()])
    assert tally.embedded == 1, tally
