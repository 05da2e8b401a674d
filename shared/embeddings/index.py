"""The vector index port: what the embedding consumer, the backfill and search need from an index.

Two adapters hold to it (and to one contract suite, tests/integration/test_vector_index_contract.py):
pgvector (shared/embeddings/pgvector.py, the embedded default) and OpenSearch (production).

Versions are external (R25; OpenSearch's `version_type=external`): every write carries the source's
version, a non-negative integer (`external_version`), and an entity's stored version only grows.
A write whose version is not newer than the stored one is `STALE`: a success that changes nothing,
like OpenSearch's 409, so a replay or a late, older event is never retried and never regresses the
index. A versioned delete leaves a tombstone at its version, so an older upsert that arrives after
it cannot bring the entity back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np

from shared.embeddings.chunking import Chunk, ChunkFields, Document

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.; OpenSearch's default too)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IndexUnavailable(Exception):
    """The index cannot be reached or is not accepting writes: retry with backoff, never
    dead-letter (R25). Raised `from` the adapter's own error."""


class Outcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # not newer than what the index holds: ignored, and still a success


@dataclass(frozen=True)
class EntityKey:
    entity_type: str
    entity_id: str


class Keyed:
    """`key`: the EntityKey of an `entity_type` and `entity_id`."""

    entity_type: str
    entity_id: str

    @property
    def key(self) -> EntityKey:
        return EntityKey(self.entity_type, self.entity_id)


@dataclass(frozen=True)
class EntityVectors(Keyed):
    """One entity's new state: its chunks and their vectors, all at one version."""

    entity_type: str
    entity_id: str
    workspace_id: str | None
    project_id: str | None
    version: int
    chunks: Sequence[Chunk]
    vectors: np.ndarray  # (len(chunks), dimension) float32

    @classmethod
    def of(cls, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> EntityVectors:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        return cls(
            document.entity_type,
            document.entity_id,
            document.workspace_id,
            document.project_id,
            document.version,
            chunks,
            vectors,
        )


@dataclass(frozen=True)
class Deletion(Keyed):
    """Remove every chunk of an entity. With a version: only if it is newer than the stored one,
    and remembered (a tombstone). Without: unconditionally, keeping the stored version as the
    floor that later upserts must exceed."""

    entity_type: str
    entity_id: str
    version: int | None = None


@dataclass(frozen=True)
class EntityState:
    version: int
    deleted: bool
    chunk_count: int


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as the index holds it (what a re-sync compares with the source)."""

    chunk_index: int
    version: int
    workspace_id: str | None
    project_id: str | None
    text: str


@dataclass(frozen=True)
class IndexCount:
    entities: int  # live entities (tombstones not counted)
    chunks: int


@dataclass(frozen=True)
class Candidate(ChunkFields, Keyed):
    """One chunk from one half of a hybrid search, best first within its half."""

    score: float  # the half's own score: cosine similarity, or the keyword rank


@dataclass(frozen=True)
class Hit(ChunkFields, Keyed):
    """One entity in a search result, shown by its best chunk."""

    score: float  # the fused (RRF) score
    vector_rank: int | None  # 1-based rank among the vector half's entities; None: not in it
    keyword_rank: int | None


@runtime_checkable
class VectorIndex(Protocol):
    name: str
    dimension: int

    def ensure(self) -> None:
        """Create what the index needs (idempotent; safe from several pods at once)."""

    def upsert(self, entities: Sequence[EntityVectors]) -> list[Outcome]:
        """Replace each entity's chunks, if its version is newer than the stored one. One outcome
        per input, in order; within one call the newest version of a repeated entity wins."""

    def delete(self, deletions: Sequence[Deletion]) -> list[Outcome]:
        """Remove every chunk of each entity (see Deletion for versions). One outcome per input."""

    def lookup(self, keys: Sequence[EntityKey]) -> dict[EntityKey, EntityState]:
        """What the index holds for these entities (tombstones included; absent: never seen)."""

    def chunks(self, key: EntityKey) -> list[StoredChunk]:
        """An entity's stored chunks, by chunk index (empty when deleted or never indexed)."""

    def search(
        self,
        workspace_id: str,
        query_vector: np.ndarray | None,
        query_text: str | None,
        *,
        k: int = 10,
        entity_types: Sequence[str] | None = None,
        include_global: bool = True,
    ) -> list[Hit]:
        """Hybrid search in one workspace (and the global documentation unless told not to):
        vector and keyword halves fused by RRF, one hit per entity, best first. Either half may
        be left out (None)."""

    def count(self, workspace_id: str | None) -> IndexCount:
        """Live entities and chunks of one workspace (None: the global documentation)."""

    def purge_workspace(self, workspace_id: str) -> int:
        """Forget every entity of a workspace, tombstones and versions included (a plan downgrade:
        an upgrade later must be able to index the same versions again). Returns how many."""


def external_version(value: int | str | datetime) -> int:
    """A source version as the integer external versioning compares: an int as it is, a time as
    microseconds since the epoch (Plane's `updated_at`; events carry it as ISO 8601 text)."""
    if isinstance(value, bool):
        raise TypeError("a version is an int, a datetime or ISO 8601 text, not a bool")
    if isinstance(value, int):
        version = value
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        version = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    else:
        text = value.strip()
        version = int(text) if text.isdigit() else external_version(datetime.fromisoformat(text))
    if version < 0:
        raise ValueError(f"a version cannot be negative: {value!r}")
    return version


def index_name(model_name: str, dimension: int) -> str:
    """One index per model: vectors of two models are never compared, and a new model fills its
    own index while the old one still answers. Short enough for PostgreSQL's 63-byte names with
    suffixes; the hash tells apart models whose names slug alike."""
    slug = re.sub(r"[^a-z0-9]+", "_", model_name.rsplit("/", 1)[-1].lower()).strip("_")[:20] or "model"
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    return f"ai_{slug}_{dimension}_{digest}"


def newest_per_key(items: Sequence[EntityVectors] | Sequence[Deletion]) -> dict[EntityKey, int]:
    """For each key, the position of its item with the highest version (the first of equals;
    an unversioned deletion beats any version)."""
    best: dict[EntityKey, int] = {}
    for i, item in enumerate(items):
        j = best.get(item.key)
        if j is None or _rank(item.version) > _rank(items[j].version):
            best[item.key] = i
    return best


def check_entity(item: EntityVectors, dimension: int) -> None:
    """What every adapter refuses before writing: a negative version, vectors of the wrong shape,
    chunks that are not this entity's 0..n-1 in order."""
    if item.version < 0:
        raise ValueError(f"{item.key}: a version cannot be negative")
    vectors = np.asarray(item.vectors)
    if len(item.chunks) and vectors.shape != (len(item.chunks), dimension):
        raise ValueError(f"{item.key}: vectors {vectors.shape}, expected ({len(item.chunks)}, {dimension})")
    for n, chunk in enumerate(item.chunks):
        if (chunk.entity_type, chunk.entity_id, chunk.chunk_index) != (item.entity_type, item.entity_id, n):
            raise ValueError(
                f"{item.key}: chunk {n} is {chunk.entity_type}/{chunk.entity_id}#{chunk.chunk_index}"
            )


def _rank(version: int | None) -> float:
    return float("inf") if version is None else float(version)


def fuse(vector: Sequence[Candidate], keyword: Sequence[Candidate], k: int, rrf_k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion over entities: each half ranks entities by their best chunk, an
    entity scores sum(1 / (rrf_k + rank)), and is shown by its best vector chunk, else its best
    keyword chunk. Ties go to the vector half's order."""
    ranks: dict[EntityKey, dict[str, int]] = {}
    shown: dict[EntityKey, Candidate] = {}
    for half, candidates in (("vector", vector), ("keyword", keyword)):
        rank = 0
        for candidate in candidates:
            seen = ranks.setdefault(candidate.key, {})
            if half in seen:
                continue
            rank += 1
            seen[half] = rank
            shown.setdefault(candidate.key, candidate)
    scored = sorted(
        ranks.items(),
        key=lambda item: (
            -sum(1.0 / (rrf_k + r) for r in item[1].values()),
            item[1].get("vector", 1 << 30),
            item[1].get("keyword", 1 << 30),
        ),
    )
    hits = []
    for key, seen in scored[:k]:
        c = shown[key]
        hits.append(
            Hit(
                c.entity_type,
                c.entity_id,
                c.workspace_id,
                c.project_id,
                c.version,
                c.chunk_index,
                c.text,
                sum(1.0 / (rrf_k + r) for r in seen.values()),
                seen.get("vector"),
                seen.get("keyword"),
            )
        )
    return hits


_WORD = re.compile(r"\w+", re.UNICODE)


def keyword_terms(text: str | None, limit: int = 32) -> list[str]:
    """The words of a query for the keyword half, OR-ed (as BM25's match query does): operators
    and punctuation typed by a user never become query syntax."""
    return _WORD.findall(text or "")[:limit]
