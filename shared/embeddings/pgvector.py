"""The vector index on PostgreSQL with pgvector: the embedded default, and enough for small installs.

Two tables per index (one index per model, `index.index_name`), created by `ensure()` rather than
by a migration: their vector column has the model's dimension, and an install that indexes into
OpenSearch must migrate without the pgvector extension.

- `<name>_entities`: one row per entity, its external version and whether it is deleted (a
  tombstone). Every write goes through this row: `INSERT .. ON CONFLICT DO UPDATE .. WHERE
  version < excluded.version` takes the row lock and compares against the latest committed
  version, so concurrent writers cannot regress an entity, and only the winner replaces chunks.
- `<name>_chunks`: the chunk texts with their vectors (HNSW, cosine) and a generated tsvector (GIN)
  for the keyword half of hybrid search.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.db.base import STATE_SCHEMA
from shared.db.errors import unavailable
from shared.embeddings.index import (
    Candidate,
    Deletion,
    EntityKey,
    EntityState,
    EntityVectors,
    Hit,
    IndexCount,
    IndexUnavailable,
    Outcome,
    StoredChunk,
    check_entity,
    fuse,
    keyword_terms,
    newest_per_key,
)

# pgvector's HNSW indexes `vector` up to 2,000 dimensions (halfvec to 4,000).
MAX_HNSW_DIMENSION = 2000


@functools.cache
def _text_format(dimension: int) -> str:
    # %.9g: the shortest fixed precision that gives every float32 back exactly.
    return "[" + ",".join(["%.9g"] * dimension) + "]"


class FastVector(Vector):
    """pgvector's column type, with a numpy row written as text by one `%` formatting instead of
    str() per element: ~0.1 ms instead of ~1 ms per 384-dimensional row, which was a tenth of the
    consumer's time on CPU. Anything else goes through pgvector's own conversion."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        inner = super().bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, np.ndarray) and value.ndim == 1:
                return _text_format(value.shape[0]) % tuple(value.tolist())
            return inner(value)

        return process


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class PgVectorIndex:
    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        dimension: int,
        text_search_config: str = "english",
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        ef_search: int = 100,
        candidates: int = 50,
        schema: str = STATE_SCHEMA,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"index name {name!r}: lower-case letters, digits and _, at most 41")
        if not 1 <= dimension <= MAX_HNSW_DIMENSION:
            raise ValueError(f"dimension {dimension}: pgvector's HNSW takes 1..{MAX_HNSW_DIMENSION}")
        if not re.fullmatch(r"[a-z_]+", text_search_config):
            raise ValueError(f"text search configuration {text_search_config!r}")
        self.engine, self.name, self.dimension, self.schema = engine, name, dimension, schema
        # 'english' by default: ts_rank has no IDF (BM25's answer to common words), so with the
        # 'simple' configuration "the", "a", "for" in a query rank a document like content words
        # do. Text in other languages still matches word for word, only without stemming; the
        # configuration is fixed per index (the tsvector column is generated with it).
        self.text_search_config = text_search_config
        self.ef_search, self.candidates = ef_search, candidates
        self._iterative_scan: bool | None = None
        meta = MetaData(schema=schema)
        self.entities = Table(
            f"{name}_entities",
            meta,
            Column("entity_type", String(40), primary_key=True),
            Column("entity_id", String(1024), primary_key=True),
            Column("workspace_id", UUID(as_uuid=False)),
            Column("project_id", UUID(as_uuid=False)),
            Column("version", BigInteger, nullable=False),
            Column("deleted", Boolean, nullable=False),
            Column("chunk_count", Integer, nullable=False),
            Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
            Index(f"{name}_entities_ws", "workspace_id", "entity_type"),
        )
        self.chunks_table = Table(
            f"{name}_chunks",
            meta,
            Column("entity_type", String(40), primary_key=True),
            Column("entity_id", String(1024), primary_key=True),
            Column("chunk_index", Integer, primary_key=True),
            Column("workspace_id", UUID(as_uuid=False)),
            Column("project_id", UUID(as_uuid=False)),
            Column("version", BigInteger, nullable=False),
            Column("text", Text, nullable=False),
            Column("embedding", FastVector(dimension), nullable=False),
            Column(
                "tsv",
                TSVECTOR,
                Computed(f"to_tsvector('{text_search_config}'::regconfig, text)", persisted=True),
            ),
            Index(f"{name}_chunks_ws", "workspace_id", "entity_type"),
            Index(
                f"{name}_chunks_hnsw",
                "embedding",
                postgresql_using="hnsw",
                postgresql_with={"m": hnsw_m, "ef_construction": hnsw_ef_construction},
                postgresql_ops={"embedding": "vector_cosine_ops"},
            ),
            Index(f"{name}_chunks_tsv", "tsv", postgresql_using="gin"),
        )
        self._metadata = meta

    # -- schema ------------------------------------------------------------------------------

    def ensure(self) -> None:
        with self._errors(), self.engine.begin() as conn:
            # Pods starting together: one creates, the others wait and find everything there.
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"vector-index:{self.name}"}
            )
            # Only when missing: CREATE EXTENSION needs a superuser (pgvector is not a trusted
            # extension), while using one an administrator created does not.
            if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first() is None:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            self._metadata.create_all(conn)
            typmod = conn.execute(
                text(
                    "SELECT atttypmod FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
                    "AND attname = 'embedding'"
                ),
                {"t": f'"{self.schema}"."{self.chunks_table.name}"'},
            ).scalar_one()
            if typmod != self.dimension:
                raise ValueError(
                    f"{self.chunks_table.name} holds {typmod}-dimensional vectors, not {self.dimension}"
                )
            self._iterative_scan = self._supports_iterative_scan(conn)

    def drop(self) -> None:
        """Remove this index's tables (a retired model's, once its successor is complete)."""
        with self._errors(), self.engine.begin() as conn:
            self._metadata.drop_all(conn)

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, entities: Sequence[EntityVectors]) -> list[Outcome]:
        for item in entities:
            check_entity(item, self.dimension)
        outcomes = [Outcome.STALE] * len(entities)
        # Newest per entity, in key order: concurrent batches then lock rows in one order and
        # cannot deadlock.
        winners = sorted(newest_per_key(entities).values(), key=lambda i: _sort_key(entities[i]))
        if not winners:
            return outcomes
        e = self.entities
        rows = [
            {
                "entity_type": entities[i].entity_type,
                "entity_id": entities[i].entity_id,
                "workspace_id": entities[i].workspace_id,
                "project_id": entities[i].project_id,
                "version": entities[i].version,
                "deleted": False,
                "chunk_count": len(entities[i].chunks),
            }
            for i in winners
        ]
        stmt = pg_insert(e).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[e.c.entity_type, e.c.entity_id],
            set_={
                "workspace_id": stmt.excluded.workspace_id,
                "project_id": stmt.excluded.project_id,
                "version": stmt.excluded.version,
                "deleted": false(),
                "chunk_count": stmt.excluded.chunk_count,
                "updated_at": func.now(),
            },
            where=e.c.version < stmt.excluded.version,
        ).returning(e.c.entity_type, e.c.entity_id)
        with self._errors(), self.engine.begin() as conn:
            applied = {EntityKey(t, i) for t, i in conn.execute(stmt)}
            if applied:
                self._delete_chunks(conn, applied)
                chunk_rows = [
                    _chunk_row(entities[i], n)
                    for i in winners
                    if entities[i].key in applied
                    for n in range(len(entities[i].chunks))
                ]
                if chunk_rows:
                    conn.execute(self.chunks_table.insert(), chunk_rows)
        for i in winners:
            if entities[i].key in applied:
                outcomes[i] = Outcome.APPLIED
        return outcomes

    def delete(self, deletions: Sequence[Deletion]) -> list[Outcome]:
        for item in deletions:
            if item.version is not None and item.version < 0:
                raise ValueError(f"{item.key}: a version cannot be negative")
        outcomes = [Outcome.STALE] * len(deletions)
        winners = sorted(newest_per_key(deletions).values(), key=lambda i: _sort_key(deletions[i]))
        if not winners:
            return outcomes
        e = self.entities
        applied: set[EntityKey] = set()
        with self._errors(), self.engine.begin() as conn:
            # Two statements (versioned, unversioned) would lock rows out of key order: lock the
            # existing ones in key order first, as a concurrent upsert batch does.
            pairs = [(deletions[i].entity_type, deletions[i].entity_id) for i in winners]
            conn.execute(
                select(e.c.entity_type)
                .where(tuple_(e.c.entity_type, e.c.entity_id).in_(pairs))
                .order_by(e.c.entity_type, e.c.entity_id)
                .with_for_update()
            ).all()
            for versioned in (True, False):
                group = [deletions[i] for i in winners if (deletions[i].version is not None) == versioned]
                if not group:
                    continue
                rows = [
                    {
                        "entity_type": d.entity_type,
                        "entity_id": d.entity_id,
                        "version": d.version or 0,
                        "deleted": True,
                        "chunk_count": 0,
                    }
                    for d in group
                ]
                stmt = pg_insert(e).values(rows)
                update: dict[str, Any] = {"deleted": true(), "chunk_count": 0, "updated_at": func.now()}
                if versioned:
                    update["version"] = stmt.excluded.version
                stmt = stmt.on_conflict_do_update(
                    index_elements=[e.c.entity_type, e.c.entity_id],
                    set_=update,
                    # Unversioned: always, and the stored version stays as the floor.
                    where=(e.c.version < stmt.excluded.version) if versioned else None,
                ).returning(e.c.entity_type, e.c.entity_id)
                applied |= {EntityKey(t, i) for t, i in conn.execute(stmt)}
            if applied:
                self._delete_chunks(conn, applied)
        for i in winners:
            if deletions[i].key in applied:
                outcomes[i] = Outcome.APPLIED
        return outcomes

    def purge_workspace(self, workspace_id: str) -> int:
        e, c = self.entities, self.chunks_table
        with self._errors(), self.engine.begin() as conn:
            conn.execute(c.delete().where(c.c.workspace_id == workspace_id))
            return conn.execute(e.delete().where(e.c.workspace_id == workspace_id)).rowcount

    def _delete_chunks(self, conn: Any, keys: set[EntityKey]) -> None:
        c = self.chunks_table
        pairs = sorted((k.entity_type, k.entity_id) for k in keys)
        conn.execute(c.delete().where(tuple_(c.c.entity_type, c.c.entity_id).in_(pairs)))

    # -- reads -------------------------------------------------------------------------------

    def lookup(self, keys: Sequence[EntityKey]) -> dict[EntityKey, EntityState]:
        if not keys:
            return {}
        e = self.entities
        pairs = sorted({(k.entity_type, k.entity_id) for k in keys})
        query = select(e.c.entity_type, e.c.entity_id, e.c.version, e.c.deleted, e.c.chunk_count).where(
            tuple_(e.c.entity_type, e.c.entity_id).in_(pairs)
        )
        with self._errors(), self.engine.connect() as conn:
            return {EntityKey(t, i): EntityState(v, d, n) for t, i, v, d, n in conn.execute(query)}

    def chunks(self, key: EntityKey) -> list[StoredChunk]:
        c = self.chunks_table
        query = (
            select(c.c.chunk_index, c.c.version, c.c.workspace_id, c.c.project_id, c.c.text)
            .where(c.c.entity_type == key.entity_type, c.c.entity_id == key.entity_id)
            .order_by(c.c.chunk_index)
        )
        with self._errors(), self.engine.connect() as conn:
            return [StoredChunk(*row) for row in conn.execute(query)]

    def count(self, workspace_id: str | None) -> IndexCount:
        e, c = self.entities, self.chunks_table
        ws_e = e.c.workspace_id.is_(None) if workspace_id is None else e.c.workspace_id == workspace_id
        ws_c = c.c.workspace_id.is_(None) if workspace_id is None else c.c.workspace_id == workspace_id
        entities = select(func.count()).select_from(e).where(ws_e, e.c.deleted.is_(False)).scalar_subquery()
        chunks = select(func.count()).select_from(c).where(ws_c).scalar_subquery()
        with self._errors(), self.engine.connect() as conn:
            n_entities, n_chunks = conn.execute(select(entities, chunks)).one()
        return IndexCount(int(n_entities), int(n_chunks))

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
        if k < 1:
            return []
        c = self.chunks_table
        # Each half collapses to entities, so it reads several chunks per wanted hit.
        pool = max(self.candidates, 4 * k)
        where = [c.c.workspace_id == workspace_id]
        if include_global:
            where = [(c.c.workspace_id == workspace_id) | c.c.workspace_id.is_(None)]
        if entity_types:
            where.append(c.c.entity_type.in_(list(entity_types)))
        columns = [
            c.c.entity_type,
            c.c.entity_id,
            c.c.workspace_id,
            c.c.project_id,
            c.c.version,
            c.c.chunk_index,
            c.c.text,
        ]
        vector_half: list[Candidate] = []
        keyword_half: list[Candidate] = []
        with self._errors(), self.engine.begin() as conn:
            if query_vector is not None:
                q = np.asarray(query_vector, dtype=np.float32)
                if q.shape != (self.dimension,):
                    raise ValueError(f"query vector {q.shape}, expected ({self.dimension},)")
                distance = c.c.embedding.cosine_distance(q)
                # The HNSW scan yields ef_search rows before the filters; the iterative scan
                # (pgvector 0.8) keeps going until the workspace's rows fill the pool.
                conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, pool)}"))
                if self._iterative_scan is None:
                    self._iterative_scan = self._supports_iterative_scan(conn)
                if self._iterative_scan:
                    conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
                rows = conn.execute(
                    select(*columns, distance.label("d")).where(*where).order_by(distance).limit(pool)
                )
                # relaxed_order: nearly sorted; sort exactly.
                ordered = sorted(rows, key=lambda r: (r.d, r.entity_type, r.entity_id, r.chunk_index))
                vector_half = [_candidate(r, 1.0 - float(r.d)) for r in ordered]
            terms = keyword_terms(query_text)
            if terms:
                tsquery = func.to_tsquery(text(f"'{self.text_search_config}'::regconfig"), " | ".join(terms))
                rank = func.ts_rank_cd(c.c.tsv, tsquery)
                rows = conn.execute(
                    select(*columns, rank.label("r"))
                    .where(c.c.tsv.op("@@")(tsquery), *where)
                    .order_by(rank.desc(), c.c.entity_type, c.c.entity_id, c.c.chunk_index)
                    .limit(pool)
                )
                keyword_half = [_candidate(r, float(r.r)) for r in rows]
        return fuse(vector_half, keyword_half, k)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _supports_iterative_scan(conn: Any) -> bool:
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
        parts = tuple(int(p) for p in re.findall(r"\d+", version or "0")[:2])
        return parts >= (0, 8)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A database that cannot be reached is an index that cannot be reached (R25: retried
        with backoff, never poison); every other error stays what it is."""
        try:
            yield
        except sa_exc.SQLAlchemyError as exc:
            if unavailable(exc):
                raise IndexUnavailable(f"pgvector index {self.name}: {type(exc).__name__}") from exc
            raise


def _sort_key(item: EntityVectors | Deletion) -> tuple[str, str]:
    return (item.entity_type, item.entity_id)


def _chunk_row(item: EntityVectors, n: int) -> dict[str, Any]:
    chunk = item.chunks[n]
    return {
        "entity_type": item.entity_type,
        "entity_id": item.entity_id,
        "chunk_index": n,
        "workspace_id": item.workspace_id,
        "project_id": item.project_id,
        "version": item.version,
        "text": chunk.text,
        "embedding": np.asarray(item.vectors[n], dtype=np.float32),
    }


def _candidate(row: Any, score: float) -> Candidate:
    return Candidate(
        row.entity_type,
        row.entity_id,
        row.workspace_id,
        row.project_id,
        row.version,
        row.chunk_index,
        row.text,
        score,
    )
