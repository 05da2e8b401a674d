"""ai-docs-sync against a loopback GitHub (shared/testing/github.py: commits, trees, compare, raw)
through the safe HTTP client, real PostgreSQL and the embedded broker: a first run feeds in full,
an unchanged run makes one API call, a change fetches only what changed (added, modified,
renamed; removed and renamed-away deleted), a spent rate limit is recorded and honoured, and the
token goes to GitHub but never into the logs."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared import registry
from shared.cron.runtime import run_job
from shared.embedded.stack import env_for
from shared.events import parse_event
from shared.settings import Settings
from shared.testing.github import FakeGitHub
from shared.testing.topics import read_topic

JOB = registry.job("ai-docs-sync")
SOURCE = "makeplane/docs@master:docs/"
TOKEN = "ghp_test_token_never_logged_123456"
FILES = {
    "docs/intro.mdx": "# Intro\n\nPlane is a project tool.",
    "docs/cycles.mdx": "# Cycles\n\nTime-boxed work.",
    "docs/notes.txt": "release notes",
    "docs/old-name.mdx": "# Modules\n\nGroups of issues.",
    "docs/logo.png": "not text",
    "blog/post.mdx": "outside the prefix",
}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub()
    yield server
    server.close()


@pytest.fixture
def docs_settings(settings: Settings, github: FakeGitHub) -> Settings:
    return replace(
        settings,
        ai_docs_repositories=(SOURCE,),
        ai_docs_github_api_url=github.url,
        ai_docs_github_raw_url=github.url,
        ai_docs_allowed_ips=("127.0.0.1/32",),
        github_token=TOKEN,
    )


def sync(settings: Settings, at: datetime) -> tuple[int, dict[str, int]]:
    code, ctx = run_job(JOB, settings, scheduled_for=at)
    assert ctx is not None
    return code, dict(ctx.counts)


def events(settings: Settings) -> list[dict[str, Any]]:
    topic = settings.topic("embeddings")
    return [
        parse_event(m.value(), max_bytes=settings.event_max_bytes).data for m in read_topic(settings, topic)
    ]


def state(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text("SELECT last_sha, files, last_error, retry_after FROM plane_workers.docs_sync_state")
            ).one()
        )


def test_full_feed_then_unchanged_then_only_the_changes(
    docs_settings: Settings, github: FakeGitHub, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = github.commit(FILES)
    at = datetime.now(UTC).replace(microsecond=0)
    assert sync(docs_settings, at) == (0, {"documents": 4})
    sent = events(docs_settings)
    assert sorted((e["action"], e["entity_id"]) for e in sent) == [
        ("upsert", f"makeplane/docs:docs/{name}")
        for name in ("cycles.mdx", "intro.mdx", "notes.txt", "old-name.mdx")
    ]
    assert {e["text"] for e in sent} >= {"# Intro\n\nPlane is a project tool.", "release notes"}
    assert all(e["entity_type"] == "doc" and e["workspace_id"] is None for e in sent)
    assert state(engine)[:3] == (first, 4, None)
    raw = [p for p in github.requests if not p.startswith("/repos/")]
    assert sorted(raw) == sorted(
        f"/makeplane/docs/{first}/docs/{n}" for n in ("cycles.mdx", "intro.mdx", "notes.txt", "old-name.mdx")
    )
    assert set(github.authorizations) == {f"Bearer {TOKEN}"}, "the token goes to GitHub"
    assert TOKEN not in caplog.text, "and never into a log"

    github.requests.clear()
    assert sync(docs_settings, at + timedelta(days=1)) == (0, {})
    assert github.requests == ["/repos/makeplane/docs/commits/master"], "unchanged: one API call, no fetch"

    changed = {k: v for k, v in FILES.items() if k != "docs/notes.txt"}  # removed
    changed["docs/cycles.mdx"] = "# Cycles\n\nNow with burn-down charts."  # modified
    changed["docs/modules.mdx"] = changed.pop("docs/old-name.mdx")  # renamed
    changed["docs/pages.mdx"] = "# Pages\n\nWrite docs next to issues."  # added
    changed["docs/logo.png"] = "another image"  # filtered out
    second = github.commit(changed)
    github.requests.clear()
    assert sync(docs_settings, at + timedelta(days=2)) == (0, {"deleted": 2, "documents": 3})
    new = [e for e in events(docs_settings) if e["reason"].endswith(second[:12])]
    assert sorted((e["action"], e["entity_id"].split(":", 1)[1]) for e in new) == [
        ("delete", "docs/notes.txt"),
        ("delete", "docs/old-name.mdx"),
        ("upsert", "docs/cycles.mdx"),
        ("upsert", "docs/modules.mdx"),
        ("upsert", "docs/pages.mdx"),
    ]
    assert github.requests[:2] == [
        "/repos/makeplane/docs/commits/master",
        f"/repos/makeplane/docs/compare/{first}...{second}",
    ]
    assert sorted(github.requests[2:]) == sorted(
        f"/makeplane/docs/{second}/docs/{n}" for n in ("cycles.mdx", "modules.mdx", "pages.mdx")
    )
    assert state(engine)[0] == second


def test_a_spent_rate_limit_is_recorded_and_honoured(
    docs_settings: Settings, github: FakeGitHub, engine: Engine
) -> None:
    github.commit(FILES)
    at = datetime.now(UTC).replace(microsecond=0)
    reset = int((at + timedelta(hours=2)).timestamp())
    github.rate_limited_until = reset
    assert sync(docs_settings, at) == (0, {"rate_limited": 1}), "a clear outcome, exit 0: no retry loop"
    last_sha, _files, error, retry_after = state(engine)
    assert last_sha is None and "rate limited (403) until" in error
    assert retry_after == datetime.fromtimestamp(reset, UTC)
    assert events(docs_settings) == []

    github.requests.clear()
    assert sync(docs_settings, at + timedelta(hours=1)) == (0, {})
    assert github.requests == [], "nothing asked before the reset"

    github.rate_limited_until = None
    assert sync(docs_settings, at + timedelta(hours=3)) == (0, {"documents": 4})
    assert state(engine)[2:] == (None, None)


def test_a_missing_repository_fails_the_run_with_one_line(
    docs_settings: Settings, github: FakeGitHub, engine: Engine
) -> None:
    github.commit(FILES)
    s = replace(docs_settings, ai_docs_repositories=("makeplane/nope", SOURCE))
    code, counts = sync(s, datetime.now(UTC))
    assert code == 1 and counts == {"documents": 4}, "the other repository is still synced"
    with engine.connect() as conn:
        error = conn.scalar(
            text("SELECT last_error FROM plane_workers.docs_sync_state WHERE source LIKE '%nope%'")
        )
    assert error == f"GET {github.url}/repos/makeplane/nope/commits/HEAD: HTTP 404"


def test_feed_docs_feeds_everything_again(docs_settings: Settings, github: FakeGitHub) -> None:
    github.commit(FILES)
    assert sync(docs_settings, datetime.now(UTC))[0] == 0
    env = env_for(docs_settings) | {"LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "ai", "feed-docs"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"documents": 4' in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert len(events(docs_settings)) == 8
