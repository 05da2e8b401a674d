"""Which vector index a process writes: EMBEDDING_INDEX, else OpenSearch when OPENSEARCH_URL is set.

pgvector keeps its tables in DATABASE_URL's database (the consumer's own engine); OpenSearch is
reached over OPENSEARCH_URL with OPENSEARCH_USERNAME / OPENSEARCH_PASSWORD. The adapters are
imported only when chosen: an install on one needs nothing of the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.logs import redact_url

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from shared.embeddings.index import VectorIndex
    from shared.settings import Settings

PGVECTOR, OPENSEARCH = "pgvector", "opensearch"


class IndexConfigError(ValueError):
    """EMBEDDING_INDEX and OPENSEARCH_URL do not name a usable index (one line, naming them)."""


def index_backend(settings: Settings) -> str:
    choice = settings.embedding_index.strip().lower()
    url = settings.opensearch_url.strip()
    if not choice:
        return OPENSEARCH if url else PGVECTOR
    if choice not in (PGVECTOR, OPENSEARCH):
        raise IndexConfigError(f"EMBEDDING_INDEX={settings.embedding_index!r}: pgvector or opensearch")
    if choice == OPENSEARCH and not url:
        raise IndexConfigError("EMBEDDING_INDEX=opensearch: OPENSEARCH_URL is not set")
    return choice


def open_index(settings: Settings, engine: Engine, *, name: str, dimension: int) -> VectorIndex:
    """The chosen adapter for one index (not yet `ensure`d)."""
    if index_backend(settings) == OPENSEARCH:
        from shared.embeddings.opensearch import OpenSearchIndex

        return OpenSearchIndex.from_settings(settings, name=name, dimension=dimension)
    from shared.embeddings.pgvector import PgVectorIndex

    return PgVectorIndex(engine, name=name, dimension=dimension)


def index_setting(settings: Settings) -> str:
    """`OPENSEARCH_URL=...` or `DATABASE_URL=...`, passwords redacted: where the index is, for
    error lines."""
    try:
        backend = index_backend(settings)
    except IndexConfigError:
        backend = PGVECTOR
    if backend == OPENSEARCH:
        return f"OPENSEARCH_URL={redact_url(settings.opensearch_url.strip())}"
    return f"DATABASE_URL={redact_url(settings.database_url)}"
