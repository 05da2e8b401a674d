"""Samples of Plane AI's scheduled jobs: reconcile, feed runner, plan sync, reaper, docs sync.

The index's own state is seeded as the embeddings consumer records it (`indexed_documents`, at
the issue's version); no consumer runs, so what the jobs send stays on the `embeddings` topic,
read back deduplicated by event id (sent at least once: a batch killed between the broker's
acknowledgement and the commit is sent again under the same id) and with the number of distinct
ids, so a duplicate under a new id shows.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text

from cronjobs import ai_reap_stuck_jobs as reaper
from cronjobs.samples._seed import PAUSE_ENV, ids, rows_to_act_on, scheduled_time, scope
from cronjobs.samples.issues import add_issues
from shared.conformance import JobSamples, SampleWorld
from shared.embeddings import live_sync
from shared.embeddings.names import DEFAULT_MODEL
from shared.events import parse_event
from shared.testing.github import FakeGitHub
from shared.testing.plane_rows import insert_one
from shared.testing.topics import read_topic

MODEL = DEFAULT_MODEL
# Effects read the topic to its end (~0.3 s): batches further apart, so a kill lands half-way.
SLOW = {"JOB_BATCH_PAUSE_MS": "500"}
VERSION = live_sync.VERSION_SQL.format(col="i.updated_at")
PAGE_VERSION = live_sync.VERSION_SQL.format(col="p.updated_at")
INDEXED_COLUMNS = (
    "model_name, entity_type, entity_id, workspace_id, project_id, source_version, content_hash, chunk_count"
)


def index_issues(conn: Connection, workspace: uuid.UUID, leave_out: int = 0) -> list[str]:
    """Record the workspace's issues as indexed at their versions, but for the first `leave_out`
    (by id), which are returned: the missing ones."""
    issue_ids = ids(conn, "SELECT id FROM issues WHERE workspace_id = :w", w=workspace)
    missing = issue_ids[:leave_out]
    _record_indexed(
        conn,
        f"""SELECT :model, 'issue', i.id::text, i.workspace_id, i.project_id, {VERSION}, 'seeded', 1
            FROM issues i WHERE i.workspace_id = :w AND NOT (i.id::text = ANY(:missing))""",
        {"w": workspace, "missing": missing},
    )
    return missing


def _record_indexed(conn: Connection, rows: str, params: dict[str, Any]) -> None:
    """indexed_documents rows, as the embeddings consumer records them, from the SELECT `rows`."""
    conn.execute(
        text(f"INSERT INTO plane_workers.indexed_documents ({INDEXED_COLUMNS}) {rows}"),
        {"model": MODEL, **params},
    )


def add_pages(conn: Connection, workspace: uuid.UUID, n: int) -> list[str]:
    """n live pages of the workspace (every other one linked to its project); their ids, sorted."""
    owner, project = conn.execute(
        text("SELECT created_by_id, id FROM projects WHERE workspace_id = :w LIMIT 1"), {"w": workspace}
    ).one()
    pages = []
    for i in range(n):
        page = insert_one(conn, "pages", name=f"page {i}", owned_by_id=owner, workspace_id=workspace)
        if i % 2:
            insert_one(conn, "project_pages", page_id=page, project_id=project, workspace_id=workspace)
        pages.append(str(page))
    return sorted(pages)


def index_pages(conn: Connection, pages: list[str]) -> None:
    """Record the pages as indexed at their versions (as the consumer would)."""
    _record_indexed(
        conn,
        f"""SELECT :model, 'page', p.id::text, p.workspace_id, NULL, {PAGE_VERSION}, 'seeded', 1
            FROM pages p WHERE p.id::text = ANY(:pages)""",
        {"pages": pages},
    )


def ai_workspace(
    conn: Connection, n_issues: int, *, plan: str = "pro", job: str | None = "success", leave_out: int = 0
) -> tuple[uuid.UUID, list[str]]:
    """A Plane workspace with issues, its plan row and its newest job; (workspace, missing ids)."""
    s = scope(conn)
    add_issues(conn, n_issues, s.params)
    if plan:
        conn.execute(
            text(
                "INSERT INTO plane_workers.workspace_ai_settings (workspace_id, plan, plan_source, "
                "plan_changed_at, live_sync_enabled) VALUES (:w, :plan, 'cli', now(), :live)"
            ),
            {"w": s.workspace, "plan": plan, "live": plan != "free"},
        )
    if job:
        conn.execute(
            text(
                "INSERT INTO plane_workers.vectorization_jobs (id, workspace_id, model_name, status) "
                "VALUES (gen_random_uuid(), :w, :model, :status)"
            ),
            {"w": s.workspace, "model": MODEL, "status": job},
        )
    return s.workspace, index_issues(conn, s.workspace, leave_out) if job == "success" else []


def embed_requests(world: SampleWorld) -> dict[str, Any]:
    """The embed events on the topic: (key, action, type, id) deduplicated by event id, and how
    many distinct event ids there are."""
    seen: dict[str, tuple[str, str, str, str]] = {}
    for message in read_topic(world.settings, world.settings.topic(live_sync.TOPIC)):
        event = parse_event(message.value(), max_bytes=world.settings.event_max_bytes)
        d = event.data
        seen[event.id] = ((message.key() or b"").decode(), d["action"], d["entity_type"], d["entity_id"])
    return {"requests": sorted(seen.values()), "event_ids": len(seen)}


def jobs(conn: Connection) -> list[tuple[str, str]]:
    rows = conn.execute(text("SELECT workspace_id::text, status FROM plane_workers.vectorization_jobs"))
    return sorted((w, s) for w, s in rows)


def ai_reconcile(world: SampleWorld) -> JobSamples:
    """Four workspaces in sync but for 10 missing issues each get an upsert per missing issue (one
    of them also a delete for an issue indexed but soft-deleted since, another an upsert for a
    missing page and a delete for a soft-deleted one); one with 60 missing gets a
    queued re-feed job and no events; a free one, one whose newest job failed, and one with live
    sync off are left alone."""
    requests, expected_jobs = [], []
    with world.engine.begin() as conn:
        for n in range(4):
            ws, missing = ai_workspace(conn, 30, leave_out=10)
            requests += [(i, "upsert", "issue", i) for i in missing]
            if n == 0:
                gone = ids(conn, "SELECT id FROM issues WHERE workspace_id = :w", w=ws)[-1]
                conn.execute(text("UPDATE issues SET deleted_at = now() WHERE id = :i"), {"i": gone})
                requests.append((gone, "delete", "issue", gone))
            if n == 1:  # pages: one indexed, one missing, one indexed but soft-deleted since
                indexed, page_missing, page_gone = add_pages(conn, ws, 3)
                index_pages(conn, [indexed, page_gone])
                conn.execute(text("UPDATE pages SET deleted_at = now() WHERE id = :i"), {"i": page_gone})
                requests += [
                    (page_missing, "upsert", "page", page_missing),
                    (page_gone, "delete", "page", page_gone),
                ]
            expected_jobs.append((str(ws), "success"))
        stale, _ = ai_workspace(conn, 70, leave_out=60)
        expected_jobs += [(str(stale), "success"), (str(stale), "queued")]
        for plan, job in (("free", "success"), ("pro", "failed")):
            ws, _ = ai_workspace(conn, 5, plan=plan, job=job, leave_out=5 if job == "success" else 0)
            expected_jobs.append((str(ws), job))
        off, _ = ai_workspace(conn, 5, leave_out=5)
        conn.execute(text("UPDATE plane_workers.workspace_ai_settings SET live_sync_enabled = false WHERE "
                          "workspace_id = :w"), {"w": off})  # fmt: skip
        expected_jobs.append((str(off), "success"))

    def effects() -> dict[str, Any]:
        with world.engine.connect() as conn:
            return {**embed_requests(world), "jobs": jobs(conn)}

    expected = {"requests": sorted(requests), "event_ids": len(requests), "jobs": sorted(expected_jobs)}
    return JobSamples(effects=effects, expected=expected, env=SLOW, scheduled_for=scheduled_time())


def ai_feed_jobs(world: SampleWorld) -> JobSamples:
    """Three workspaces with a queued job get an upsert per live issue and page (drafts and
    soft-deleted ones left out) and their jobs fed (running, waiting for the consumer); a workspace whose job
    succeeded gets nothing."""
    requests, expected_jobs = [], []
    with world.engine.begin() as conn:
        for n in range(3):
            ws, _missing = ai_workspace(conn, 200, job="queued")
            s = {"w": ws}
            live = ids(conn, "SELECT id FROM issues WHERE workspace_id = :w", **s)
            conn.execute(text("UPDATE issues SET is_draft = true WHERE id = :i"), {"i": live[0]})
            conn.execute(text("UPDATE issues SET deleted_at = now() WHERE id = :i"), {"i": live[1]})
            requests += [(i, "upsert", "issue", i) for i in live[2:]]
            if n == 0:  # and its pages after its issues, a soft-deleted one left out
                *pages, gone = add_pages(conn, ws, 4)
                conn.execute(text("UPDATE pages SET deleted_at = now() WHERE id = :i"), {"i": gone})
                requests += [(p, "upsert", "page", p) for p in pages]
            expected_jobs.append((str(ws), "running", True))
        done, _ = ai_workspace(conn, 10)
        expected_jobs.append((str(done), "success", False))

    def effects() -> dict[str, Any]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT workspace_id::text, status, checkpoint ? 'fed_at'"
                    " FROM plane_workers.vectorization_jobs"
                )
            )
            return {**embed_requests(world), "jobs": sorted((w, st, bool(f)) for w, st, f in rows)}

    expected = {"requests": sorted(requests), "event_ids": len(requests), "jobs": sorted(expected_jobs)}
    return JobSamples(effects=effects, expected=expected, env=SLOW, scheduled_for=scheduled_time())


def ai_workspace_plan_sync(world: SampleWorld) -> JobSamples:
    """AI_DEFAULT_PLAN=pro: three workspaces without a plan get it and a queued job. Two free ones
    that still have vectors get a purge request. A pro one without a job and one whose newest job
    failed are queued; one in sync but 60 issues behind is re-fed; one in sync is left alone."""
    purges, plans, expected_jobs = [], [], []
    with world.engine.begin() as conn:
        for _ in range(3):
            ws, _ = ai_workspace(conn, 2, plan="", job=None)
            plans.append((str(ws), "pro", "default"))
            expected_jobs.append((str(ws), "queued"))
        for _ in range(2):
            ws, _ = ai_workspace(conn, 3, plan="free", job="success")
            purges.append((str(ws), "delete", "workspace", str(ws)))
            plans.append((str(ws), "free", "cli"))
            expected_jobs.append((str(ws), "success"))
        for job in (None, "failed"):
            ws, _ = ai_workspace(conn, 2, job=job)
            plans.append((str(ws), "pro", "cli"))
            expected_jobs += [(str(ws), "queued")] + ([(str(ws), job)] if job else [])
        for behind in (60, 0):
            ws, _ = ai_workspace(conn, 70, leave_out=behind)
            plans.append((str(ws), "pro", "cli"))
            expected_jobs += [(str(ws), "success")] + ([(str(ws), "queued")] if behind else [])

    def effects() -> dict[str, Any]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT workspace_id::text, plan, plan_source FROM plane_workers.workspace_ai_settings")
            )
            return {**embed_requests(world), "plans": sorted(tuple(r) for r in rows), "jobs": jobs(conn)}

    expected = {"requests": sorted(purges), "event_ids": len(purges), "plans": sorted(plans),
                "jobs": sorted(expected_jobs)}  # fmt: skip
    env = {**SLOW, "AI_DEFAULT_PLAN": "pro"}
    return JobSamples(effects=effects, expected=expected, env=env, scheduled_for=scheduled_time())


def ai_reap_stuck_jobs(world: SampleWorld) -> JobSamples:
    """Jobs queued or running for more than AI_STUCK_JOB_DAYS fail with an error that says so;
    younger active ones, and old ones that already finished, stay as they are."""
    at, days = scheduled_time(), world.settings.ai_stuck_job_days
    insert = text(
        """
        INSERT INTO plane_workers.vectorization_jobs (id, workspace_id, model_name, status, created_at)
        SELECT gen_random_uuid(), gen_random_uuid(), :model, CASE WHEN g % 2 = 0 THEN :a ELSE :b END,
               CAST(:at AS timestamptz) - :days * interval '1 day'
        FROM generate_series(1, :n) g
        """
    )
    with world.engine.begin() as conn:
        p = {"model": MODEL, "at": at}
        n = rows_to_act_on(world, reaper.BATCH_SIZE)
        conn.execute(insert, {**p, "a": "queued", "b": "running", "days": days + 1, "n": n})
        stuck = set(ids(conn, "SELECT id FROM plane_workers.vectorization_jobs"))
        conn.execute(insert, {**p, "a": "queued", "b": "running", "days": days - 1, "n": 20})
        conn.execute(insert, {**p, "a": "success", "b": "failed", "days": days + 10, "n": 20})
        before = _job_states(conn)
    expected = sorted((i, "failed" if i in stuck else st, i in stuck) for i, st, _ in before)

    def effects() -> list[tuple[str, str, bool]]:
        with world.engine.connect() as conn:
            return _job_states(conn)

    return JobSamples(effects=effects, expected=expected, env=PAUSE_ENV, scheduled_for=at)


def _job_states(conn: Connection) -> list[tuple[str, str, bool]]:
    rows = conn.execute(
        text(
            "SELECT id::text, status, coalesce(error LIKE 'stuck: %', false)"
            " FROM plane_workers.vectorization_jobs"
        )
    )
    return sorted((i, s, bool(e)) for i, s, e in rows)


def ai_docs_sync(world: SampleWorld) -> JobSamples:
    """A documentation repository on a loopback GitHub (shared/testing/github.py, alive as long as
    the test process): a first run feeds every .mdx and .txt file under docs/ (not a .png, not
    a file outside docs/) as inline documents and stores the head commit."""
    github = FakeGitHub()
    files = {f"docs/page-{n:03}.mdx": f"# Page {n}\n\nHow to use feature {n} of Plane." for n in range(50)}
    files |= {f"docs/notes-{n}.txt": f"release note {n}" for n in range(10)}
    files |= {"docs/logo.png": "binary", "README.mdx": "# not under docs/"}
    sha = github.commit(files)
    source = "makeplane/docs@master:docs/"
    wanted = sorted(p for p in files if p.startswith("docs/") and p.endswith((".mdx", ".txt")))
    requests = [(f"makeplane/docs:{p}", "upsert", "doc", f"makeplane/docs:{p}") for p in wanted]

    def effects() -> dict[str, Any]:
        with world.engine.connect() as conn:
            state = conn.execute(
                text("SELECT source, last_sha, files FROM plane_workers.docs_sync_state")
            ).all()  # fmt: skip
        return {**embed_requests(world), "state": [tuple(r) for r in state]}

    expected = {"requests": requests, "event_ids": len(requests), "state": [(source, sha, len(wanted))]}
    env = {**SLOW, **github.env(), "AI_DOCS_REPOSITORIES": source}
    return JobSamples(effects=effects, expected=expected, env=env, scheduled_for=scheduled_time())
