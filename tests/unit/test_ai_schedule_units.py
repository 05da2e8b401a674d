"""Plane AI's schedule without servers: the model name the base image computes equals the one the
model loader records, the jobs import without numpy or torch (the base image has neither), and
AI_DOCS_REPOSITORIES entries parse or fail with the setting's name."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from shared import registry
from shared.embeddings import names
from shared.embeddings.docs_github import DocsSource, parse_sources
from shared.embeddings.model import DEFAULT_MODEL, resolve_model
from shared.settings import Settings

BASE = Settings.from_env({})


@pytest.mark.parametrize("spec", ["", DEFAULT_MODEL, "all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5", "dir"])
@pytest.mark.parametrize("name", ["", "my-model"])
def test_the_model_name_is_the_loaders(spec: str, name: str, tmp_path: Path) -> None:
    if spec == "dir":
        spec = str(tmp_path / "e5-small")
        Path(spec).mkdir()
    settings = replace(BASE, embedding_model=spec, embedding_model_name=name)
    assert names.model_name(settings) == resolve_model(spec, name).name
    assert names.DEFAULT_MODEL == DEFAULT_MODEL


def test_every_job_and_base_image_consumer_imports_without_numpy_or_torch() -> None:
    """The base image has neither: only the embeddings consumer (the GPU image) may need them."""
    entrypoints = [j.entrypoint for j in registry.JOBS]
    entrypoints += [c.handler or c.strategy or "" for c in registry.CONSUMERS if c.name != "embeddings"]
    modules = sorted({e.partition(":")[0] for e in entrypoints} | {"shared.cli.ai_schedule"})
    code = "import sys\nsys.modules['numpy'] = sys.modules['torch'] = None\n" + "".join(
        f"import {m}\n" for m in modules
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_docs_sources_parse() -> None:
    assert parse_sources(["makeplane/docs@master:docs/", "owner/repo", "o/r:/guides"]) == [
        DocsSource("makeplane", "docs", "master", "docs/"),
        DocsSource("owner", "repo", None, ""),
        DocsSource("o", "r", None, "guides"),
    ]
    assert DocsSource("o", "r", None, "").key == "o/r@HEAD:"
    with pytest.raises(ValueError, match=re.escape("AI_DOCS_REPOSITORIES entry 'https://github.com/o/r'")):
        parse_sources(["https://github.com/o/r"])


def test_the_seeds_switch_name_is_read_when_ours_is_unset() -> None:
    assert Settings.from_env({"CELERY_VECTOR_SYNC_ENABLED": "0"}).ai_vector_sync_enabled is False
    both = {"CELERY_VECTOR_SYNC_ENABLED": "0", "AI_VECTOR_SYNC_ENABLED": "1"}
    assert Settings.from_env(both).ai_vector_sync_enabled is True
    assert Settings.from_env({}).ai_vector_sync_enabled is True
