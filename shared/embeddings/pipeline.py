"""Documents into the index, shared by the `embeddings` consumer and the `ai vectorize` backfill.

One call takes a batch of changes (upserts of Documents, removals of entities) and:
1. keeps the newest change per entity (what applying them in order would leave);
2. checks each against `indexed_documents` for this model: not newer than what was indexed is
   stale (R25, nothing done); an upsert whose content hash equals the indexed one is unchanged:
   its recorded version moves forward, nothing is embedded (so a later, older event is still
   recognised as older, although the index itself keeps the version it was embedded at);
3. chunks the rest with the model's tokenizer, embeds every chunk of the batch in one
   length-sorted `Embedder.encode`, and writes the index, whose own external versions guard
   against a concurrent writer (another pod, a backfill);
4. records what was indexed in `indexed_documents`, in the caller's transaction, each row only
   moving forward (`WHERE source_version < excluded`), rows in key order (no lock-order deadlock
   between concurrent batches).

Index writes are not part of the caller's transaction. If that transaction rolls back after the
index was written, doing the batch again finds the index at the same version (STALE, a success)
and writes the rows then: the pair converges, and the index never regresses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import Connection, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.db.ai_state import IndexedDocument
from shared.embeddings.chunking import Chunk, Chunker, Document
from shared.embeddings.index import Deletion, EntityKey, EntityVectors, Outcome, VectorIndex

DELETED_HASH = ""  # never a sha256: a deleted entity's text always counts as changed


class Encoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str], token_counts: Sequence[int] | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Upsert:
    document: Document

    @property
    def key(self) -> EntityKey:
        return EntityKey(self.document.entity_type, self.document.entity_id)

    @property
    def version(self) -> int:
        return self.document.version


@dataclass(frozen=True)
class Remove:
    """Every chunk of an entity goes. `version` None: unconditionally (the source says the entity
    is gone, e.g. it vanished before it could be embedded), keeping the recorded version."""

    key: EntityKey
    version: int | None = None


Change = Upsert | Remove


@dataclass
class Tally:
    embedded: int = 0  # documents whose chunks were (re)embedded and written
    chunks: int = 0
    unchanged: int = 0  # same text and model as indexed: version recorded, nothing embedded
    stale: int = 0  # not newer than what was indexed (or superseded within the batch)
    deleted: int = 0
    encode_s: float = 0.0
    index_s: float = 0.0

    def add(self, other: Tally) -> None:
        for name in ("embedded", "chunks", "unchanged", "stale", "deleted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.encode_s += other.encode_s
        self.index_s += other.index_s

    def as_dict(self) -> dict[str, int]:
        return {
            "embedded": self.embedded,
            "chunks": self.chunks,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "deleted": self.deleted,
        }


def newest(changes: Sequence[Change]) -> list[Change]:
    """The change per entity that applying them all in order leaves: an unconditional removal
    beats everything, else the highest version (the first of equals: a repeat is not newer)."""
    best: dict[EntityKey, Change] = {}
    for change in changes:
        held = best.get(change.key)
        if held is None or _rank(change) > _rank(held):
            best[change.key] = change
    return list(best.values())


def _rank(change: Change) -> float:
    return float("inf") if change.version is None else float(change.version)


class Indexer:
    def __init__(self, encoder: Encoder, chunker: Chunker, index: VectorIndex) -> None:
        self.encoder, self.chunker, self.index = encoder, chunker, index
        self.model_name = encoder.name

    def apply(self, conn: Connection, changes: Sequence[Change]) -> Tally:
        tally = Tally()
        chosen = newest(changes)
        tally.stale += len(changes) - len(chosen)
        recorded = self._recorded(conn, [c.key for c in chosen])
        upserts: list[tuple[Document, str]] = []
        unchanged: list[tuple[Document, str, int]] = []
        removals: list[Remove] = []
        for change in chosen:
            row = recorded.get(change.key)
            if change.version is not None and row is not None and row[0] >= change.version:
                tally.stale += 1
            elif isinstance(change, Remove):
                removals.append(change)
            else:
                digest = change.document.content_hash(self.chunker.profile)
                if row is not None and row[1] == digest:
                    unchanged.append((change.document, digest, row[2]))
                else:
                    upserts.append((change.document, digest))
        rows: list[dict[str, object]] = []
        if upserts:
            rows += self._embed_and_write(upserts, tally)
        for document, digest, chunk_count in unchanged:
            rows.append(_row(self.model_name, document, digest, chunk_count))
            tally.unchanged += 1
        if removals:
            rows += self._remove(conn, removals, recorded, tally)
        self._record(conn, rows)
        return tally

    def _embed_and_write(self, upserts: list[tuple[Document, str]], tally: Tally) -> list[dict[str, object]]:
        documents = [d for d, _ in upserts]
        per_document = self.chunker.split_many(documents)
        flat: list[Chunk] = [c for chunks in per_document for c in chunks]
        started = time.perf_counter()
        vectors = self.encoder.encode([c.text for c in flat], [c.token_count for c in flat])
        tally.encode_s += time.perf_counter() - started
        entities, start = [], 0
        for document, chunks in zip(documents, per_document, strict=True):
            entities.append(EntityVectors.of(document, chunks, vectors[start : start + len(chunks)]))
            start += len(chunks)
        started = time.perf_counter()
        outcomes = self.index.upsert(entities)
        tally.index_s += time.perf_counter() - started
        rows = []
        for (document, digest), chunks, outcome in zip(upserts, per_document, outcomes, strict=True):
            # STALE here: the index already holds this version (a batch done again after its
            # transaction rolled back) or a newer one (another writer, whose row then wins).
            rows.append(_row(self.model_name, document, digest, len(chunks)))
            if outcome is Outcome.APPLIED:
                tally.embedded += 1
                tally.chunks += len(chunks)
            else:
                tally.stale += 1
        return rows

    def _remove(
        self,
        conn: Connection,
        removals: list[Remove],
        recorded: dict[EntityKey, tuple[int, str, int]],
        tally: Tally,
    ) -> list[dict[str, object]]:
        started = time.perf_counter()
        self.index.delete([Deletion(r.key.entity_type, r.key.entity_id, r.version) for r in removals])
        tally.index_s += time.perf_counter() - started
        rows = []
        for removal in removals:
            held = recorded.get(removal.key)
            version = removal.version if removal.version is not None else (held[0] if held else 0)
            rows.append(
                {
                    "model_name": self.model_name,
                    "entity_type": removal.key.entity_type,
                    "entity_id": removal.key.entity_id,
                    "workspace_id": None,
                    "project_id": None,
                    "source_version": version,
                    "content_hash": DELETED_HASH,
                    "chunk_count": 0,
                    "unconditional": removal.version is None,
                }
            )
            tally.deleted += 1
        return rows

    def _recorded(self, conn: Connection, keys: list[EntityKey]) -> dict[EntityKey, tuple[int, str, int]]:
        if not keys:
            return {}
        t = IndexedDocument.__table__
        pairs = sorted({(k.entity_type, k.entity_id) for k in keys})
        query = select(
            t.c.entity_type, t.c.entity_id, t.c.source_version, t.c.content_hash, t.c.chunk_count
        ).where(t.c.model_name == self.model_name, tuple_(t.c.entity_type, t.c.entity_id).in_(pairs))
        return {EntityKey(et, ei): (v, h, n) for et, ei, v, h, n in conn.execute(query)}

    def _record(self, conn: Connection, rows: list[dict[str, object]]) -> None:
        if not rows:
            return
        t = IndexedDocument.__table__
        rows.sort(key=lambda r: (str(r["entity_type"]), str(r["entity_id"])))
        for unconditional in (False, True):
            group = [
                {k: v for k, v in r.items() if k != "unconditional"}
                for r in rows
                if r.get("unconditional", False) == unconditional
            ]
            if not group:
                continue
            stmt = pg_insert(t).values(group)
            keep_workspace = {
                # A removal row carries no place: the entity's last known one stays.
                "workspace_id": func.coalesce(stmt.excluded.workspace_id, t.c.workspace_id),
                "project_id": func.coalesce(stmt.excluded.project_id, t.c.project_id),
            }
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.model_name, t.c.entity_type, t.c.entity_id],
                set_={
                    **keep_workspace,
                    "source_version": func.greatest(t.c.source_version, stmt.excluded.source_version),
                    "content_hash": stmt.excluded.content_hash,
                    "chunk_count": stmt.excluded.chunk_count,
                    "indexed_at": func.now(),
                },
                where=None if unconditional else t.c.source_version < stmt.excluded.source_version,
            )
            conn.execute(stmt)


def _row(model_name: str, document: Document, digest: str, chunk_count: int) -> dict[str, object]:
    return {
        "model_name": model_name,
        "entity_type": document.entity_type,
        "entity_id": document.entity_id,
        "workspace_id": _uuid(document.workspace_id),
        "project_id": _uuid(document.project_id),
        "source_version": document.version,
        "content_hash": digest,
        "chunk_count": chunk_count,
    }


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)
