"""The OpenSearch adapter's requests and the reading of their answers, apart from any client:
index templates, _bulk action lines with external versions, the search bodies of both halves of
hybrid search and of the settle query, and what a _bulk or _msearch answer means (shared by
shared/embeddings/opensearch.py and its offline tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.embeddings.index import EntityKey, EntityState, EntityVectors, IndexUnavailable

SETTLE_PAGE = 1000
_SOURCE = ["entity_type", "entity_id", "workspace_id", "project_id", "version", "chunk_index", "text"]
_KEYWORD = {"type": "keyword"}


class IndexRejected(RuntimeError):
    """OpenSearch refused a request for what it is (a mapping violation, a bad query): retrying
    the same request cannot help, unlike IndexUnavailable."""

    def __init__(self, message: str, status: int | str | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def unavailable_status(status: object) -> bool:
    """Statuses that say the index cannot serve now, whatever the request: auth (a wrong or
    rotated password is fixed by an operator, not by dead-lettering every event), timeouts,
    back-pressure (429) and every 5xx."""
    return isinstance(status, int) and (status in (401, 403, 408, 429) or status >= 500)


def doc_id(entity_type: str, entity_id: str) -> str:
    """The entity document's _id (OpenSearch takes at most 512 bytes): readable when short."""
    plain = f"{entity_type}:{entity_id}"
    if len(plain.encode()) <= 400:
        return plain
    return f"{entity_type}:sha256:{hashlib.sha256(entity_id.encode()).hexdigest()}"


def chunk_id(entity_type: str, entity_id: str, chunk_index: int) -> str:
    return f"{doc_id(entity_type, entity_id)}#{chunk_index}"


# -- request bodies ---------------------------------------------------------------------------


# What entity documents and chunks both carry: the entity's key, its scope and its external version.
_ENTITY_FIELDS: dict[str, Any] = {
    "entity_type": _KEYWORD,
    "entity_id": _KEYWORD,
    "workspace_id": _KEYWORD,
    "project_id": _KEYWORD,
    "version": {"type": "long"},
}


def entities_template(name: str) -> dict[str, Any]:
    mappings = {
        "dynamic": "strict",
        "properties": {
            **_ENTITY_FIELDS,
            "deleted": {"type": "boolean"},
            "chunk_count": {"type": "integer"},
        },
    }
    return {"index_patterns": [name], "priority": 200, "template": {"mappings": mappings}}


def chunks_template(
    name: str, dimension: int, *, engine: str, m: int, ef_construction: int, analyzer: str
) -> dict[str, Any]:
    embedding = {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": engine,
            "parameters": {"m": m, "ef_construction": ef_construction},
        },
    }
    mappings = {
        "dynamic": "strict",
        # The vectors live in the k-NN structure; keeping them in _source too would double the
        # index for nothing (a re-index re-embeds).
        "_source": {"excludes": ["embedding"]},
        "properties": {
            **_ENTITY_FIELDS,
            "chunk_index": {"type": "integer"},
            # 'english' as pgvector's default: stemming, and stop words out of the query.
            "text": {"type": "text", "analyzer": analyzer},
            "embedding": embedding,
        },
    }
    return {
        "index_patterns": [name],
        "priority": 200,
        "template": {"settings": {"index": {"knn": True}}, "mappings": mappings},
    }


def entity_action(index: str, item: EntityVectors) -> list[dict[str, Any]]:
    """The gate: the entity document at the item's version, external (only if newer)."""
    meta = {"_index": index, "_id": doc_id(item.entity_type, item.entity_id)}
    meta |= {"version": item.version, "version_type": "external"}
    source = {
        "entity_type": item.entity_type,
        "entity_id": item.entity_id,
        "workspace_id": item.workspace_id,
        "project_id": item.project_id,
        "version": item.version,
        "deleted": False,
        "chunk_count": len(item.chunks),
    }
    return [{"index": meta}, source]


def tombstone_action(
    index: str, key: EntityKey, version: int, version_type: str, held: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A deleted entity's document: `external` (a versioned delete, only if newer) or
    `external_gte` at the stored version (an unversioned one, keeping that version as the floor).
    It keeps the workspace and project of the document it replaces (`held`), so that a purge of
    the workspace forgets its tombstones too."""
    meta = {"_index": index, "_id": doc_id(key.entity_type, key.entity_id)}
    meta |= {"version": version, "version_type": version_type}
    source = {
        "entity_type": key.entity_type,
        "entity_id": key.entity_id,
        "workspace_id": (held or {}).get("workspace_id"),
        "project_id": (held or {}).get("project_id"),
        "version": version,
        "deleted": True,
        "chunk_count": 0,
    }
    return [{"index": meta}, source]


def chunk_actions(index: str, item: EntityVectors) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    vectors = np.asarray(item.vectors, dtype=np.float32)
    for n, chunk in enumerate(item.chunks):
        meta = {"_index": index, "_id": chunk_id(item.entity_type, item.entity_id, n)}
        lines.append({"index": meta | {"version": item.version, "version_type": "external"}})
        lines.append(
            {
                "entity_type": item.entity_type,
                "entity_id": item.entity_id,
                "workspace_id": item.workspace_id,
                "project_id": item.project_id,
                "version": item.version,
                "chunk_index": n,
                "text": chunk.text,
                "embedding": vectors[n].tolist(),
            }
        )
    return lines


def scope_filters(
    workspace_id: str, include_global: bool, entity_types: Sequence[str] | None
) -> list[dict[str, Any]]:
    workspace: dict[str, Any] = {"term": {"workspace_id": workspace_id}}
    if include_global:  # the global documentation has no workspace
        no_workspace = {"bool": {"must_not": [{"exists": {"field": "workspace_id"}}]}}
        workspace = {"bool": {"should": [workspace, no_workspace], "minimum_should_match": 1}}
    filters = [workspace]
    if entity_types:
        filters.append({"terms": {"entity_type": list(entity_types)}})
    return filters


def vector_query(vector: np.ndarray, pool: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
    # A filter inside the knn clause is k-NN's efficient filtering (lucene, faiss): the pool is
    # filled with the workspace's own neighbours, not cut down from the index's nearest.
    knn = {"vector": vector.tolist(), "k": pool, "filter": {"bool": {"filter": filters}}}
    return {"size": pool, "_source": _SOURCE, "query": {"knn": {"embedding": knn}}}


def keyword_query(terms: list[str], pool: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
    # A match query of the words, OR-ed: BM25, and no query syntax whatever the user typed.
    return {
        "size": pool,
        "_source": _SOURCE,
        "track_scores": True,
        "query": {"bool": {"must": [{"match": {"text": {"query": " ".join(terms)}}}], "filter": filters}},
        "sort": [{"_score": "desc"}, {"entity_type": "asc"}, {"entity_id": "asc"}, {"chunk_index": "asc"}],
    }


def stale_chunks_query(states: dict[EntityKey, EntityState]) -> dict[str, Any]:
    """Chunks these states do not own: older versions, and for a live entity also indices past
    its chunk count at its own version (a crashed writer's leftovers); a deleted one owns none."""
    clauses = []
    for key, state in states.items():
        entity = [{"term": {"entity_type": key.entity_type}}, {"term": {"entity_id": key.entity_id}}]
        if state.deleted:
            clauses.append({"bool": {"filter": [*entity, {"range": {"version": {"lte": state.version}}}]}})
            continue
        older = {"range": {"version": {"lt": state.version}}}
        extra = {
            "bool": {
                "filter": [
                    {"term": {"version": state.version}},
                    {"range": {"chunk_index": {"gte": state.chunk_count}}},
                ]
            }
        }
        clauses.append({"bool": {"filter": entity, "should": [older, extra], "minimum_should_match": 1}})
    return {
        "size": SETTLE_PAGE,
        "_source": ["entity_type", "entity_id", "version", "chunk_index"],
        "query": {"bool": {"should": clauses, "minimum_should_match": 1}},
    }


def item_statuses(response: dict[str, Any], ok: tuple[int, ...] = (409,)) -> list[int]:
    """One HTTP status per item of a _bulk answer. `ok`: statuses that are outcomes, not errors
    (409: a version conflict, STALE; 404: a delete of what is already gone). Any other failed item
    raises: IndexUnavailable when one of them is back-pressure or a server fault (the batch is
    tried again whole), else IndexRejected."""
    statuses: list[int] = []
    failed: list[tuple[int, str]] = []
    for item in response.get("items", []):
        ((_op, result),) = item.items()
        status = int(result.get("status", 500))
        statuses.append(status)
        if not (200 <= status < 300 or status in ok):
            error = result.get("error")
            kind = error.get("type", "error") if isinstance(error, dict) else str(error or "error")
            failed.append((status, kind))
    if failed:
        summary = ", ".join(f"{s} {k}" for s, k in sorted(set(failed))[:5])
        message = f"{len(failed)} of {len(statuses)} bulk items failed: {summary}"
        if any(unavailable_status(s) for s, _ in failed):
            raise IndexUnavailable(message)
        raise IndexRejected(message)
    return statuses


def hits_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The hits of one msearch answer; its own error raised as the whole request's would be."""
    if "error" in response:
        status = response.get("status", 500)
        error = response["error"]
        kind = error.get("type", "error") if isinstance(error, dict) else str(error)
        raise (IndexUnavailable if unavailable_status(status) else IndexRejected)(f"search: {status} {kind}")
    return response["hits"]["hits"]
