"""The embeddings consumer's checks in /health and `ai health` (the seed's health_check): the
model loaded (its name, dimension, backend), the device it runs on, and the vector index reachable
(one cheap lookup). The database's, with its circuit breaker, come from shared/consumer_health.py.
"""

from __future__ import annotations

from typing import Any

from services.embeddings import handler
from shared.settings import Settings

# An entity no index holds: looking it up reads nothing but proves the index answers.
PROBE_ID = "00000000-0000-0000-0000-000000000000"


def checks(settings: Settings) -> dict[str, Any]:
    from shared.consumer_health import bounded
    from shared.embeddings.backends import index_backend
    from shared.embeddings.config import EmbeddingSettings
    from shared.embeddings.index import EntityKey

    view = EmbeddingSettings.of(settings)
    if handler._embedder.cache_info().currsize == 0:  # warm_up has not finished: do not load here
        waiting = {"ok": False, "error": "the model is still loading (warm-up)"}
        return {"model": {"loaded": False, **waiting}, "index": waiting, "device": None}
    embedder = handler._embedder(view)
    model = {
        "ok": True,
        "loaded": True,
        "name": embedder.name,
        "dimension": embedder.dimension,
        "backend": embedder.backend,
    }
    index: dict[str, Any] = {"ok": True, "backend": index_backend(settings)}

    def probe() -> None:
        from shared.db.engine import get_engine

        indexer = handler.indexer(settings, get_engine(settings.database_url))
        index["name"] = indexer.index.name
        indexer.index.lookup([EntityKey("issue", PROBE_ID)])

    if (error := bounded(probe)) is not None:
        index |= {"ok": False, "error": error}
    return {"model": model, "index": index, "device": embedder.device}
