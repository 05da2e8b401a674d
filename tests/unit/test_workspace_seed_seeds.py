"""workspace-seed's seed files, lock key and small helpers, without a database."""

from __future__ import annotations

import hashlib
import struct
import uuid

import pytest

from services.workspace_seed.handler import _slug, _strip_tags, advisory_key, seed

NAMES = ("projects", "states", "labels", "cycles", "modules", "issues", "views", "pages")


def test_plane_lock_key_is_sha256_first_8_bytes_signed_big_endian() -> None:
    project = uuid.UUID("00000000-0000-4000-8000-000000000000")
    assert advisory_key(str(project)) == -2630007758062060198
    for _ in range(50):
        value = str(uuid.uuid4())
        expected = struct.unpack(">q", hashlib.sha256(value.encode()).digest()[:8])[0]
        assert advisory_key(value) == expected


def test_seed_files_have_plane_counts() -> None:
    counts = {name: len(seed(name)) for name in NAMES}
    assert counts == {
        "projects": 1,
        "states": 5,
        "labels": 2,
        "cycles": 2,
        "modules": 3,
        "issues": 7,
        "views": 1,
        "pages": 2,
    }


@pytest.mark.parametrize("name", NAMES)
def test_seed_ids_are_unique_and_point_at_the_seeded_project(name: str) -> None:
    rows = seed(name)
    assert len({row["id"] for row in rows}) == len(rows)
    projects = {row["id"] for row in seed("projects")}
    if name != "projects":
        assert {row["project_id"] for row in rows} <= projects


def test_issue_references_resolve() -> None:
    states = {row["id"] for row in seed("states")}
    labels = {row["id"] for row in seed("labels")}
    cycles = {row["id"] for row in seed("cycles")}
    modules = {row["id"] for row in seed("modules")}
    for issue in seed("issues"):
        assert issue["state_id"] in states
        assert set(issue["labels"]) <= labels
        assert issue["cycle_id"] in cycles
        assert set(issue["module_ids"]) <= modules
    assert sum(len(i["labels"]) for i in seed("issues")) == 3
    assert sum(len(i["module_ids"]) for i in seed("issues")) == 11


def test_exactly_one_default_state_and_plane_groups() -> None:
    states = seed("states")
    assert [s["name"] for s in states if s["default"]] == ["Backlog"]
    assert [s["group"] for s in states] == ["backlog", "unstarted", "started", "completed", "cancelled"]
    assert [c["type"] for c in seed("cycles")] == ["CURRENT", "UPCOMING"]


def test_slug_and_strip_tags_as_django_does() -> None:
    assert _slug("In Progress") == "in-progress"
    assert _slug("Todo!") == "todo"
    assert _strip_tags('<p class="x">Hello <b>you</b></p>') == "Hello you"
    assert _strip_tags("") == ""
