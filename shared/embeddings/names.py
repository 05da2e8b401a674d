"""The embedding model's name without loading it: what jobs outside the GPU image need.

`indexed_documents` and `vectorization_jobs` are keyed by model name, and the scheduled jobs
(reconcile, plan sync, the feed runner) run in the base image, which has neither torch nor numpy.
This is model.resolve_model's naming rule (tests/unit/test_ai_names.py holds the two together).
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_ALIASES = frozenset({"", DEFAULT_MODEL, "all-MiniLM-L6-v2"})


def model_name(settings: Settings) -> str:
    """The name recorded with every indexed document of EMBEDDING_MODEL (EMBEDDING_MODEL_NAME)."""
    spec, name = settings.embedding_model.strip(), settings.embedding_model_name.strip()
    if name:
        return name
    if spec in DEFAULT_ALIASES:
        return DEFAULT_MODEL
    path = Path(spec).expanduser()
    return path.resolve().name if path.is_dir() else spec
