"""`plane-workers ai vectorize | search | status` as an operator runs them: separate processes on
the embedded PostgreSQL with pgvector and the real all-MiniLM-L6-v2 on CPU."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from shared.db.ai_state import VectorizationJob
from shared.embedded.stack import env_for
from shared.embeddings.index import index_name
from shared.embeddings.model import DEFAULT_MODEL
from shared.settings import Settings
from shared.testing import plane_factory as make
from shared.testing.plane_rows import insert_one
from tests.helpers import wait_until

INDEX = index_name(DEFAULT_MODEL, 384)
CLI = [sys.executable, "-m", "shared.cli.main", "ai"]


def ai(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env_for(settings) | {"EMBEDDING_DEVICE": "cpu", "LOG_LEVEL": "WARNING"} | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def seed_workspace(engine: Engine, texts: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """A workspace with one project and an issue per (name, description); (workspace, ids)."""
    _users, issues = make.project_with_issues(engine, 0, n_users=1, texts=texts)
    return str(issues[0].workspace_id), [str(i.id) for i in issues]


def seed_pages(engine: Engine, workspace: str, n: int) -> list[str]:
    """n live pages of the workspace, every other one linked to its project, and one soft-deleted
    page that must not be indexed; the live pages' ids."""
    with engine.begin() as conn:
        owner, project = conn.execute(
            text("SELECT created_by_id, id FROM projects WHERE workspace_id = :w LIMIT 1"), {"w": workspace}
        ).one()
        ids = []
        for i in range(n + 1):
            page = insert_one(
                conn, "pages", name=f"Runbook {i}", description_stripped=f"steps of runbook {i}",
                owned_by_id=owner, workspace_id=workspace,
                deleted_at=datetime.now(UTC) if i == n else None,
            )  # fmt: skip
            if i % 2:
                insert_one(conn, "project_pages", page_id=page, project_id=project, workspace_id=workspace)
            if i < n:
                ids.append(str(page))
    return ids


def job(engine: Engine, workspace: str) -> VectorizationJob | None:
    with Session(engine) as session:
        return session.scalars(
            select(VectorizationJob)
            .where(VectorizationJob.workspace_id == uuid.UUID(workspace))
            .order_by(VectorizationJob.created_at.desc())
        ).first()


def live_in_index(engine: Engine, workspace: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text(
                f"SELECT count(*) FROM plane_workers.{INDEX}_entities WHERE workspace_id = :w AND NOT deleted"
            ),
            {"w": workspace},
        ).scalar_one()


def test_a_backfill_killed_half_way_resumes_from_its_checkpoint_and_ends_with_none_missing(settings, engine):
    n, n_pages = 300, 40
    ws, _ids = seed_workspace(
        engine, [(f"Issue {i}", f"task number {i} of the migration plan") for i in range(n)]
    )
    seed_pages(engine, ws, n_pages)
    slow = env_for(settings) | {
        "EMBEDDING_DEVICE": "cpu",
        "LOG_LEVEL": "WARNING",
        "JOB_BATCH_PAUSE_MS": "150",
    }
    first = subprocess.Popen(
        [*CLI, "vectorize", ws, "--page-size", "10", "--lease-seconds", "600"],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = wait_until(
            lambda: (j := job(engine, ws)) and j.checkpoint and j.counts.get("read", 0) >= 60 and j, 180, 0.05
        )
    finally:
        first.send_signal(signal.SIGKILL)
        _out, err = first.communicate(timeout=30)
    assert running.status == "running"
    killed = job(engine, ws)
    assert killed is not None and killed.status == "running" and killed.attempts == 1
    read_before = killed.counts["read"]
    assert 60 <= read_before < n, read_before
    assert killed.checkpoint["type"] == "issue"  # killed in the issues; the pages come after them
    assert f"/{n + n_pages} documents (" in err and "/s, ETA" in err, err  # progress on stderr

    # The dead run's lease still holds: a second run leaves the job alone (exit 0, said why).
    busy = ai(settings, "vectorize", ws)
    assert busy.returncode == 0 and "running elsewhere" in busy.stderr, busy.stderr
    assert job(engine, ws).attempts == 1
    # The lease lapses (here by moving its end into the past, not by waiting ten minutes).
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE plane_workers.vectorization_jobs SET lease_expires_at = now() - interval '1 second'")
        )
    resumed = ai(settings, "vectorize", ws, "--page-size", "50")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after" in resumed.stdout and ": success:" in resumed.stdout, resumed.stdout
    done = job(engine, ws)
    assert done is not None and done.status == "success" and done.finished_at is not None
    assert done.counts["missing"] == 0 and done.attempts == 2
    # It started at the checkpoint: every issue read once over both runs, none found unchanged
    # (a restart from the first page would have found the first run's issues unchanged).
    assert done.counts["read"] == n + n_pages and done.counts.get("unchanged", 0) == 0, done.counts
    assert done.checkpoint["type"] == "page"
    assert live_in_index(engine, ws) == n + n_pages  # not the soft-deleted page

    status = ai(settings, "status", ws, "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["jobs"][0]["status"] == "success"
    assert shown["indexed"] == [
        {"model": DEFAULT_MODEL, "entity_type": "issue", "documents": n, "chunks": n},
        {"model": DEFAULT_MODEL, "entity_type": "page", "documents": n_pages, "chunks": n_pages},
    ]


CORPUS = [
    ("Dark mode for the kanban board", "Users want a dark colour theme on the board view"),
    ("Export issues to CSV", "Download every issue of a project as a spreadsheet file"),
    ("SSO with Okta", "Sign in through SAML single sign-on with the company identity provider"),
    ("Slack notifications", "Post a message to a Slack channel when an issue changes state"),
    ("Keyboard shortcuts", "Create issues and move between views without the mouse"),
    ("Checkout fails on Safari", "Paying with a credit card returns a 500 error in Safari 17"),
    ("Cycle burndown chart", "Show remaining work per day for the active cycle"),
    ("Rename labels in bulk", "Select several labels and change their names at once"),
    ("Webhook retries", "Deliveries that fail should be retried with backoff"),
    ("Mobile app crashes on launch", "The iOS app closes right after the splash screen on older iPhones"),
]


def test_search_returns_the_planted_neighbour_first(settings, engine):
    ws, ids = seed_workspace(engine, CORPUS)
    vectorized = ai(settings, "vectorize", ws)
    assert vectorized.returncode == 0, vectorized.stderr
    # The query shares no content word with its neighbour (issue 6, checkout on Safari).
    found = ai(
        settings, "search", "payment broken in Apple's browser", "--workspace", ws, "-k", "3", "--json"
    )
    assert found.returncode == 0, found.stderr
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert hits[0]["entity_id"] == ids[5], hits
    assert [h["rank"] for h in hits] == [1, 2, 3]
    plain = ai(settings, "search", "sign in with SAML", "--workspace", ws, "--type", "issue", "-k", "1")
    assert plain.returncode == 0 and ids[2] in plain.stdout.splitlines()[0], plain.stdout


def test_errors_are_one_line_with_the_setting_and_an_exit_code(settings):
    bad_ws = ai(settings, "search", "x", "--workspace", "nope")
    assert (bad_ws.returncode, bad_ws.stderr.strip()) == (
        2,
        "plane-workers ai search: --workspace='nope': not a workspace id (a UUID)",
    )
    bad_model = ai(settings, "vectorize", str(uuid.uuid4()), EMBEDDING_MODEL="/nonexistent/model")
    assert bad_model.returncode == 2 and "Traceback" not in bad_model.stderr
    assert (
        "EMBEDDING_MODEL=/nonexistent/model" in bad_model.stderr
        and len(bad_model.stderr.strip().splitlines()) == 1
    )
    down = ai(settings, "status", DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    assert down.returncode == 3 and "DATABASE_URL=" in down.stderr and "Traceback" not in down.stderr, (
        down.stderr
    )
