"""ai-docs-sync from a local git repository (air-gapped installs), a real one made here with the
`git` command: a first run feeds in full, an unchanged run sends nothing, a commit with added,
modified, removed and renamed files sends exactly those, history rewritten feeds in full again
(deleting what is gone), and a path that is no repository fails the run in one line."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from shared.embeddings.docs_github import DocsSource, parse_sources
from shared.settings import Settings
from tests.integration.test_ai_docs_sync import FILES, events, sync

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "docs",
        "GIT_AUTHOR_EMAIL": "docs@example.com",
        "GIT_COMMITTER_NAME": "docs",
        "GIT_COMMITTER_EMAIL": "docs@example.com",
        "HOME": str(repo.parent),
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    """The work tree becomes exactly `files`, committed; returns the commit's SHA."""
    for path in repo.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(repo).parts:
            path.unlink()
    for name, body in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(body)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def last_sha(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT last_sha FROM plane_workers.docs_sync_state"))


def test_parse_local_sources() -> None:
    assert parse_sources(["file:///srv/docs.git@main:docs/", "/srv/other/"]) == [
        DocsSource("", "", "main", "docs/", path="/srv/docs.git"),
        DocsSource("", "", None, "", path="/srv/other"),
    ]
    assert DocsSource("", "", "main", "docs/", path="/srv/docs.git").key == "file:///srv/docs.git@main:docs/"
    with pytest.raises(ValueError, match="file:///path/to/repo"):
        parse_sources(["file://relative/path"])


def test_local_repository_full_unchanged_changes_and_rewritten(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    repo = tmp_path / "docs"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "master")
    first = commit(repo, FILES, "first")
    source = f"file://{repo}@master:docs/"
    local = replace(settings, ai_docs_repositories=(source,))
    at = datetime.now(UTC).replace(microsecond=0)

    assert sync(local, at) == (0, {"documents": 4})
    sent = events(local)
    assert sorted((e["action"], e["entity_id"]) for e in sent) == [
        ("upsert", f"file://{repo}:docs/{name}")
        for name in ("cycles.mdx", "intro.mdx", "notes.txt", "old-name.mdx")
    ]
    assert {e["text"] for e in sent} >= {"# Intro\n\nPlane is a project tool.", "release notes"}
    assert last_sha(engine) == first

    assert sync(local, at + timedelta(days=1)) == (0, {})  # unchanged: nothing sent
    assert len(events(local)) == 4

    changed = {k: v for k, v in FILES.items() if k != "docs/notes.txt"}  # removed
    changed["docs/cycles.mdx"] = "# Cycles\n\nNow with burn-down charts."  # modified
    changed["docs/modules.mdx"] = changed.pop("docs/old-name.mdx")  # renamed (same content)
    changed["docs/pages.mdx"] = "# Pages\n\nWrite docs next to issues."  # added
    changed["blog/post.mdx"] = "outside the prefix, changed"  # filtered out
    second = commit(repo, changed, "second")
    assert sync(local, at + timedelta(days=2)) == (0, {"deleted": 2, "documents": 3})
    new = [e for e in events(local) if e["reason"].endswith(second[:12])]
    assert sorted((e["action"], e["entity_id"].split(":", 2)[2]) for e in new) == [
        ("delete", "docs/notes.txt"),
        ("delete", "docs/old-name.mdx"),
        ("upsert", "docs/cycles.mdx"),
        ("upsert", "docs/modules.mdx"),
        ("upsert", "docs/pages.mdx"),
    ]
    assert {e["text"] for e in new if e["entity_id"].endswith("cycles.mdx")} == {
        "# Cycles\n\nNow with burn-down charts."
    }
    assert last_sha(engine) == second

    # History rewritten (the last processed commit is no ancestor of the new head): a full feed.
    git(repo, "checkout", "-q", "--orphan", "rewritten")
    third = commit(repo, {"docs/intro.mdx": "# Intro, again"}, "rewritten")
    git(repo, "branch", "-q", "-f", "master", third)
    git(repo, "checkout", "-q", "master")
    code, counts = sync(local, at + timedelta(days=3))
    assert code == 0 and counts["documents"] == 1
    assert last_sha(engine) == third


def test_a_path_that_is_no_repository_fails_the_run_in_one_line(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    local = replace(settings, ai_docs_repositories=(f"file://{tmp_path}/missing",))
    code, _counts = sync(local, datetime.now(UTC))
    assert code == 1
    with engine.connect() as conn:
        error = conn.scalar(text("SELECT last_error FROM plane_workers.docs_sync_state"))
    assert error.startswith(f"file://{tmp_path}/missing@HEAD:: git rev-parse failed: ") and "\n" not in error
