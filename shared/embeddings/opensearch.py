"""The vector index on OpenSearch with the k-NN plugin (opensearch-py): Plane AI's production index.

Two indices per index name (one per model, `index.index_name`), each with an index template of
the same name, so that an index deleted by hand and re-created by a write gets its mapping back
rather than a dynamic one (a `knn_vector` mapped as a float array would silently stop k-NN):

- `<name>_entities`: one document per entity, its external version and whether it is deleted (a
  tombstone document, not an OpenSearch delete: those forget their version after
  `index.gc_deletes`, 60 s, and a late older upsert could then bring the entity back). Every write
  goes through it first with `version_type=external`: OpenSearch accepts it only when newer than
  the stored version, else answers 409, which is STALE (a success). Only the winner writes chunks.
- `<name>_chunks`: one document per chunk, `knn_vector` (HNSW, cosine) for the vector half and
  BM25 on `text` for the keyword half of hybrid search, fused with the port's RRF (`index.fuse`,
  by entity, as pgvector does; OpenSearch's own hybrid query fuses chunks, not entities).

Chunks carry their entity's version, written with the same external version, so a slow, older
writer can never overwrite a newer chunk. Chunks an entity no longer has (a shorter text, a
delete) are removed by `_settle`: after its own writes each call refreshes, re-reads every
entity's current state and deletes, by id and with external versions, the chunks that state
does not own. Whatever interleaving of writers, the last one to settle sees every older chunk.
A batch that failed half-way and is done again finds its entity documents at the same version
(409) and completes their chunks (`repair`), since the pipeline then records them as indexed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc

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
from shared.embeddings.opensearch_requests import (
    SETTLE_PAGE,
    IndexRejected,
    chunk_actions,
    chunk_id,
    chunks_template,
    doc_id,
    entities_template,
    entity_action,
    hits_of,
    item_statuses,
    keyword_query,
    scope_filters,
    stale_chunks_query,
    tombstone_action,
    unavailable_status,
    vector_query,
)

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["IndexRejected", "OpenSearchIndex", "client_for"]

MAX_KNN_DIMENSION = 16_000  # the k-NN plugin's limit for knn_vector
BULK_ACTIONS = 500  # documents per _bulk request: a long text's vectors stay a few MB a request
SETTLE_GROUP = 200  # entities per settle query (3 clauses each, under the default 1,024)
UNVERSIONED_TRIES = 5


def client_for(url: str, *, username: str = "", password: str = "", timeout_s: float = 10.0) -> OpenSearch:
    """A client for one OpenSearch URL. No retries of its own: an outage is the consumer's to
    wait out (it holds the batch and tries again), and a timeout is one timeout."""
    return OpenSearch(
        hosts=[url],
        http_auth=(username, password) if username else None,
        timeout=timeout_s,
        max_retries=0,
        retry_on_timeout=False,
    )


class OpenSearchIndex:
    def __init__(
        self,
        client: OpenSearch,
        *,
        name: str,
        dimension: int,
        engine: str = "lucene",
        analyzer: str = "english",
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        candidates: int = 50,
    ) -> None:
        if not 1 <= dimension <= MAX_KNN_DIMENSION:
            raise ValueError(f"dimension {dimension}: knn_vector takes 1..{MAX_KNN_DIMENSION}")
        if engine not in ("lucene", "faiss"):
            raise ValueError(f"k-NN engine {engine!r}: lucene or faiss (both filter efficiently)")
        self.client, self.name, self.dimension, self.engine = client, name, dimension, engine
        self.entities_index, self.chunks_index = f"{name}_entities", f"{name}_chunks"
        self.candidates = candidates
        self.templates = {
            self.entities_index: entities_template(self.entities_index),
            self.chunks_index: chunks_template(
                self.chunks_index,
                dimension,
                engine=engine,
                m=hnsw_m,
                ef_construction=hnsw_ef_construction,
                analyzer=analyzer,
            ),
        }

    @classmethod
    def from_settings(cls, settings: Settings, *, name: str, dimension: int) -> OpenSearchIndex:
        client = client_for(
            settings.opensearch_url.strip(),
            username=settings.opensearch_username,
            password=settings.opensearch_password,
            timeout_s=settings.opensearch_timeout_s,
        )
        return cls(client, name=name, dimension=dimension)

    # -- schema ------------------------------------------------------------------------------

    def ensure(self) -> None:
        indices = self.client.indices
        for index, template in self.templates.items():
            try:  # pods starting together: one creates, the others find it there
                self._call(indices.create, index=index, body=template["template"])
            except IndexRejected as exc:
                if exc.kind != "resource_already_exists_exception":
                    raise
        mapping = self._call(indices.get_mapping, index=self.chunks_index)
        properties = mapping[self.chunks_index]["mappings"].get("properties", {})
        embedding = properties.get("embedding", {})
        if embedding.get("type") != "knn_vector" or embedding.get("dimension") != self.dimension:
            found = f"{embedding.get('type', 'no')} {embedding.get('dimension', '?')}-dimensional"
            raise ValueError(f"{self.chunks_index} holds {found} vectors, not knn_vector {self.dimension}")
        # Only for indices that are what they should be: the templates re-create them as such if
        # one is deleted by hand while writers run (a write would otherwise map it dynamically).
        for index, template in self.templates.items():
            self._call(indices.put_index_template, name=index, body=template)

    def drop(self) -> None:
        """Remove this index's indices and templates (a retired model's, or a test's)."""
        for index in self.templates:
            for call, kwargs in (
                (self.client.indices.delete, {"index": index}),
                (self.client.indices.delete_index_template, {"name": index}),
            ):
                try:
                    self._call(call, **kwargs)
                except IndexRejected as exc:
                    if exc.status != 404:
                        raise

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, entities: Sequence[EntityVectors]) -> list[Outcome]:
        for item in entities:
            check_entity(item, self.dimension)
        outcomes = [Outcome.STALE] * len(entities)
        winners = list(newest_per_key(entities).values())
        if not winners:
            return outcomes
        gate = [line for i in winners for line in entity_action(self.entities_index, entities[i])]
        statuses = self._bulk(gate)
        write = [i for i, status in zip(winners, statuses, strict=True) if status != 409]
        for i in write:
            outcomes[i] = Outcome.APPLIED
        stale = [i for i in winners if outcomes[i] is Outcome.STALE]
        if stale:
            held = self.lookup([entities[i].key for i in stale])
            write += [i for i in stale if held.get(entities[i].key) == _state_of(entities[i])]  # repair
        chunks = [line for i in write for line in chunk_actions(self.chunks_index, entities[i])]
        if chunks:
            self._bulk(chunks)
        self._settle([entities[i].key for i in winners])
        return outcomes

    def delete(self, deletions: Sequence[Deletion]) -> list[Outcome]:
        for item in deletions:
            if item.version is not None and item.version < 0:
                raise ValueError(f"{item.key}: a version cannot be negative")
        outcomes = [Outcome.STALE] * len(deletions)
        winners = list(newest_per_key(deletions).values())
        if not winners:
            return outcomes
        held = self._sources([deletions[i].key for i in winners])
        versioned = [i for i in winners if deletions[i].version is not None]
        if versioned:
            lines = [
                line
                for i in versioned
                for line in tombstone_action(
                    self.entities_index,
                    deletions[i].key,
                    deletions[i].version or 0,
                    "external",
                    held.get(deletions[i].key),
                )
            ]
            for i, status in zip(versioned, self._bulk(lines), strict=True):
                if status != 409:
                    outcomes[i] = Outcome.APPLIED
        unversioned = [i for i in winners if deletions[i].version is None]
        if unversioned:
            self._delete_unversioned([deletions[i].key for i in unversioned], held)
            for i in unversioned:
                outcomes[i] = Outcome.APPLIED
        self._settle([deletions[i].key for i in winners])
        return outcomes

    def _delete_unversioned(self, keys: list[EntityKey], held: dict[EntityKey, dict[str, Any]]) -> None:
        """Tombstones at each entity's stored version (0 if never seen), `external_gte`: the same
        version overwrites, and a newer one written meanwhile (409) is read and deleted in turn."""
        pending = keys
        for _ in range(UNVERSIONED_TRIES):
            lines = [
                line
                for key in pending
                for line in tombstone_action(
                    self.entities_index,
                    key,
                    int(held[key]["version"]) if key in held else 0,
                    "external_gte",
                    held.get(key),
                )
            ]
            statuses = self._bulk(lines)
            pending = [key for key, status in zip(pending, statuses, strict=True) if status == 409]
            if not pending:
                return
            held = self._sources(pending)
        raise IndexUnavailable(f"{len(pending)} entities kept changing while being deleted: try again")

    def purge_workspace(self, workspace_id: str) -> int:
        """Every entity document (tombstones too) and chunk of the workspace, by query. The
        deletes are OpenSearch's own, so for `index.gc_deletes` (60 s) an id keeps a version one
        above what it held: the same version written again within that minute is a 409."""
        query = {"query": {"term": {"workspace_id": workspace_id}}}
        params = {"conflicts": "proceed", "refresh": "true"}
        self._call(self.client.delete_by_query, index=self.chunks_index, body=query, params=params)
        done = self._call(self.client.delete_by_query, index=self.entities_index, body=query, params=params)
        return int(done.get("deleted", 0))

    def _settle(self, keys: list[EntityKey]) -> None:
        """Delete the chunks the entities' current states do not own (see the module docstring).
        Runs after this call's own writes were refreshed, so its search sees them; a delete is
        external at the state's version: a chunk rewritten since (at that version or newer)
        stays. Older chunks go with `external`; leftovers at the state's own version, which no
        writer at that version still owns, with `external_gte`."""
        for start in range(0, len(keys), SETTLE_GROUP):
            states = self.lookup(keys[start : start + SETTLE_GROUP])
            if not states:
                continue
            body = stale_chunks_query(states)
            for _ in range(1000):  # each page deletes what it found; a page short of full ends it
                hits = hits_of(self._call(self.client.search, index=self.chunks_index, body=body))
                lines = []
                for hit in hits:
                    source = hit["_source"]
                    state = states[EntityKey(source["entity_type"], source["entity_id"])]
                    kind = "external" if source["version"] < state.version else "external_gte"
                    meta = {"_index": self.chunks_index, "_id": hit["_id"], "version": state.version}
                    lines.append({"delete": meta | {"version_type": kind}})
                if not lines:
                    break
                statuses = self._bulk(lines, ok=(404, 409))
                if len(hits) < SETTLE_PAGE or all(s in (404, 409) for s in statuses):
                    break

    def _bulk(self, lines: list[dict[str, Any]], ok: tuple[int, ...] = (409,)) -> list[int]:
        """_bulk in requests of BULK_ACTIONS documents, refreshed before it returns (the settle
        search and the reads after a write must see it). Statuses per item, in order."""
        per_action = 1 if lines and "delete" in lines[0] else 2
        step = BULK_ACTIONS * per_action
        statuses: list[int] = []
        for start in range(0, len(lines), step):
            response = self._call(
                self.client.bulk, body=lines[start : start + step], params={"refresh": "true"}
            )
            statuses += item_statuses(response, ok)
        return statuses

    # -- reads -------------------------------------------------------------------------------

    def lookup(self, keys: Sequence[EntityKey]) -> dict[EntityKey, EntityState]:
        return {
            key: EntityState(int(s["version"]), bool(s["deleted"]), int(s["chunk_count"]))
            for key, s in self._sources(keys).items()
        }

    def _sources(self, keys: Sequence[EntityKey]) -> dict[EntityKey, dict[str, Any]]:
        """The entity documents of these keys, real-time (not waiting for a refresh)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        docs = self._mget(self.entities_index, [doc_id(k.entity_type, k.entity_id) for k in unique])
        return {key: source for key, source in zip(unique, docs, strict=True) if source is not None}

    def _mget(self, index: str, ids: list[str]) -> list[dict[str, Any] | None]:
        """Real-time gets: each document's _source, None where there is none. An index deleted by
        hand holds nothing (the next write re-creates it from its template)."""
        try:
            response = self._call(self.client.mget, index=index, body={"ids": ids})
        except IndexRejected as exc:
            if exc.kind == "index_not_found_exception":
                return [None] * len(ids)
            raise
        found: list[dict[str, Any] | None] = []
        for doc in response["docs"]:
            if "error" in doc:
                raise IndexRejected(f"mget {doc['_id']}: {doc['error']}")
            found.append(doc["_source"] if doc.get("found") else None)
        return found

    def chunks(self, key: EntityKey) -> list[StoredChunk]:
        # Real-time gets, not a search: what the last write left, refreshed or not.
        state = self.lookup([key]).get(key)
        if state is None or state.deleted or state.chunk_count == 0:
            return []
        ids = [chunk_id(key.entity_type, key.entity_id, n) for n in range(state.chunk_count)]
        found = []
        for s in self._mget(self.chunks_index, ids):
            if s is not None and s["version"] == state.version:
                found.append(
                    StoredChunk(s["chunk_index"], s["version"], s["workspace_id"], s["project_id"], s["text"])
                )
        return sorted(found, key=lambda c: c.chunk_index)

    def count(self, workspace_id: str | None) -> IndexCount:
        workspace: dict[str, Any] = (
            {"bool": {"must_not": [{"exists": {"field": "workspace_id"}}]}}
            if workspace_id is None
            else {"term": {"workspace_id": workspace_id}}
        )
        live = {"bool": {"filter": [workspace, {"term": {"deleted": False}}]}}
        entities, chunks = self._msearch(
            [
                (self.entities_index, {"size": 0, "track_total_hits": True, "query": live}),
                (self.chunks_index, {"size": 0, "track_total_hits": True, "query": workspace}),
            ]
        )
        return IndexCount(entities["hits"]["total"]["value"], chunks["hits"]["total"]["value"])

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
        pool = max(self.candidates, 4 * k)  # each half collapses to entities
        filters = scope_filters(workspace_id, include_global, entity_types)
        bodies: list[tuple[str, dict[str, Any]]] = []
        if query_vector is not None:
            q = np.asarray(query_vector, dtype=np.float32)
            if q.shape != (self.dimension,):
                raise ValueError(f"query vector {q.shape}, expected ({self.dimension},)")
            bodies.append((self.chunks_index, vector_query(q, pool, filters)))
        terms = keyword_terms(query_text)
        if terms:
            bodies.append((self.chunks_index, keyword_query(terms, pool, filters)))
        if not bodies:
            return []
        answers = iter(self._msearch(bodies))  # both halves in one round trip
        vector_half: list[Candidate] = []
        keyword_half: list[Candidate] = []
        if query_vector is not None:
            scored = [_candidate(h, self._cosine(h["_score"])) for h in hits_of(next(answers))]
            vector_half = sorted(scored, key=lambda c: (-c.score, c.entity_type, c.entity_id, c.chunk_index))
        if terms:
            keyword_half = [_candidate(h, float(h["_score"])) for h in hits_of(next(answers))]
        return fuse(vector_half, keyword_half, k)

    def _cosine(self, score: float) -> float:
        # k-NN's cosinesimil scores: lucene (1 + cos) / 2, faiss 1 + cos (documented per engine).
        return 2.0 * score - 1.0 if self.engine == "lucene" else score - 1.0

    def _msearch(self, bodies: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for index, body in bodies:
            lines += [{"index": index}, body]
        responses = self._call(self.client.msearch, body=lines)["responses"]
        for response in responses:
            hits_of(response)  # raises its error, if any
        return responses

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        with self._errors():
            return method(**kwargs)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A server that cannot be reached, times out, is overloaded or refuses our credentials is
        an index that cannot be reached (R25: retried with backoff, never poison). Messages name
        the status and error type only: never a URL (it may hold credentials) or a header."""
        try:
            yield
        except os_exc.ConnectionError as exc:  # refused, reset, DNS, TLS, timeouts
            raise IndexUnavailable(f"opensearch index {self.name}: {type(exc).__name__}") from exc
        except os_exc.TransportError as exc:
            status = exc.status_code
            kind = _error_type(exc)
            message = f"opensearch index {self.name}: HTTP {status} {kind}"
            if unavailable_status(status):
                raise IndexUnavailable(message) from exc
            raise IndexRejected(message, status, kind) from exc


def _error_type(exc: os_exc.TransportError) -> str:
    info = exc.info
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        return str(info["error"].get("type", exc.error))
    return str(exc.error)


def _state_of(item: EntityVectors) -> EntityState:
    return EntityState(item.version, False, len(item.chunks))


def _candidate(hit: dict[str, Any], score: float) -> Candidate:
    s = hit["_source"]
    return Candidate(
        s["entity_type"],
        s["entity_id"],
        s.get("workspace_id"),
        s.get("project_id"),
        s["version"],
        s["chunk_index"],
        s["text"],
        score,
    )
