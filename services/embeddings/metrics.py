"""The embeddings consumer's own series (on the process's /metrics, shared.metrics.REGISTRY)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import REGISTRY

DOCUMENTS = Counter(
    "plane_workers_embedding_documents_total",
    "Documents the embeddings consumer handled, by outcome (embedded, unchanged, stale, deleted).",
    ["outcome"],
    registry=REGISTRY,
)
CHUNKS = Counter(
    "plane_workers_embedding_chunks_total",
    "Chunks embedded and written to the vector index.",
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "plane_workers_embedding_stage_seconds",
    "Time per batch in each stage (read: Plane's rows, encode: the model, index: the vector index).",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
