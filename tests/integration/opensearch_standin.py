"""A stand-in for OpenSearch on a loopback HTTP server (tests/integration/http_servers.py), because
no OpenSearch can run on the build machines (no Docker; the k-NN plugin's native libraries are not
to be had). It serves the subset of the REST API the adapter calls, with OpenSearch's documented
semantics where R25 depends on them:

- external versioning: `version_type=external` writes only when newer than the stored version
  (409 otherwise), `external_gte` when not older; a delete keeps a tombstone at its version; an
  internal delete (`_delete_by_query`) leaves one at the stored version plus one;
- `_bulk` per-item statuses (201/200, 409, 404), `_mget` real-time, `_msearch` per-response;
- queries: bool (filter/must/should/must_not, minimum_should_match), term, terms, range, exists,
  match (any word), knn (exact cosine over the filtered documents).

What it does not model: refresh (writes are visible at once, so a missing refresh goes
unnoticed here), gc_deletes (tombstones never expire), BM25 (a match scores by words in common),
shards. It checks versioning and the adapter's requests and sequencing, not search quality.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from tests.integration.http_servers import HttpServer, send

_WORD = re.compile(r"\w+")


@dataclass
class Doc:
    version: int
    source: dict[str, Any] | None  # None: a tombstone


@dataclass
class Store:
    indices: dict[str, dict[str, Doc]] = field(default_factory=dict)
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[str] = field(default_factory=list)

    def live(self, index: str) -> dict[str, dict[str, Any]]:
        return {i: d.source for i, d in self.indices.get(index, {}).items() if d.source is not None}


def _error(status: int, kind: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "error": {"type": kind, "reason": kind, "root_cause": [{"type": kind, "reason": kind}]},
        "status": status,
    }


class StandIn:
    """`url` serves the API; `store` is its state (tests may read it)."""

    def __init__(self) -> None:
        self.store = Store()
        self.down = False  # True: every request answers 503, as a cluster that lost its quorum
        self.server = HttpServer(routes=_Router(self))
        self.url = self.server.url("")

    def close(self) -> None:
        self.server.close()

    # -- writes ------------------------------------------------------------------------------

    def create(self, index: str, body: dict[str, Any]) -> None:
        """An index from an explicit body, else from the template whose pattern names it (as a
        write to a missing index creates one), else with an empty (dynamic) mapping."""
        template = next((t for t in self.store.templates.values() if index in t["index_patterns"]), None)
        mappings = body.get("mappings") or (template["template"]["mappings"] if template else {})
        self.store.indices[index], self.store.mappings[index] = {}, mappings

    def write(self, index: str, doc_id: str, source: dict[str, Any] | None, meta: dict[str, Any]) -> int:
        if index not in self.store.indices:
            self.create(index, {})
        docs = self.store.indices[index]
        held = docs.get(doc_id)
        kind = meta.get("version_type", "internal")
        if kind in ("external", "external_gte"):
            version = int(meta["version"])
            if held is not None and (
                version < held.version or (kind == "external" and version == held.version)
            ):
                return 409
        else:
            version = (held.version + 1) if held is not None else 1
        existed = held is not None and held.source is not None
        docs[doc_id] = Doc(version, source)
        if source is None:
            return 200 if existed else 404
        return 200 if existed else 201

    def bulk(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        items, i = [], 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            source = lines[i + 1] if op == "index" else None
            i += 2 if op == "index" else 1
            status = self.write(meta["_index"], meta["_id"], source, meta)
            result: dict[str, Any] = {"_index": meta["_index"], "_id": meta["_id"], "status": status}
            if status == 409:
                result["error"] = {"type": "version_conflict_engine_exception", "reason": "version conflict"}
            items.append({op: result})
        return {"took": 1, "errors": any("error" in next(iter(x.values())) for x in items), "items": items}

    # -- reads -------------------------------------------------------------------------------

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        docs = self.store.live(index)
        query = body.get("query", {"match_all": {}})
        size = int(body.get("size", 10))
        scored: list[tuple[float, str, dict[str, Any]]] = []
        if "knn" in query:
            ((_field, knn),) = query["knn"].items()
            q = np.asarray(knn["vector"], dtype=np.float32)
            for doc_id, s in docs.items():
                if "filter" in knn and not matches(s, knn["filter"]):
                    continue
                v = np.asarray(s["embedding"], dtype=np.float32)
                cos = float(q @ v / (np.linalg.norm(q) * np.linalg.norm(v)))
                scored.append(((1 + cos) / 2, doc_id, s))  # lucene's cosinesimil score
            scored.sort(key=lambda t: -t[0])
            scored = scored[: int(knn["k"])]
        else:
            for doc_id, s in docs.items():
                if matches(s, query):
                    scored.append((score(s, query), doc_id, s))
            scored.sort(
                key=lambda t: (
                    -t[0],
                    t[2].get("entity_type", ""),
                    t[2].get("entity_id", ""),
                    t[2].get("chunk_index", 0),
                )
            )
        includes = body.get("_source")
        hits = [
            {"_index": index, "_id": doc_id, "_score": sc, "_source": _pick(s, includes)}
            for sc, doc_id, s in scored[:size]
        ]
        return {"hits": {"total": {"value": len(scored), "relation": "eq"}, "hits": hits}}


def _pick(source: dict[str, Any], includes: Any) -> dict[str, Any]:
    shown = {k: v for k, v in source.items() if k != "embedding"}  # _source excludes it
    return {k: v for k, v in shown.items() if k in includes} if isinstance(includes, list) else shown


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        must = spec.get("filter", []) + spec.get("must", [])
        if not all(matches(doc, q) for q in must):
            return False
        if any(matches(doc, q) for q in spec.get("must_not", [])):
            return False
        should = spec.get("should", [])
        need = spec.get("minimum_should_match", 0 if must else 1)
        return not should or sum(matches(doc, q) for q in should) >= need
    if kind == "term":
        ((name, value),) = spec.items()
        return doc.get(name) == (value["value"] if isinstance(value, dict) else value)
    if kind == "terms":
        ((name, values),) = spec.items()
        return doc.get(name) in values
    if kind == "exists":
        return doc.get(spec["field"]) is not None
    if kind == "range":
        ((name, bounds),) = spec.items()
        value = doc.get(name)
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
        }
        return value is not None and all(ops[op](value, bound) for op, bound in bounds.items())
    if kind == "match":
        return score(doc, query) > 0
    raise ValueError(f"the stand-in does not know the {kind} query")


def score(doc: dict[str, Any], query: dict[str, Any]) -> float:
    ((kind, spec),) = query.items()
    if kind == "match":
        ((name, value),) = spec.items()
        words = set(_WORD.findall(str(value["query"] if isinstance(value, dict) else value).lower()))
        return float(len(words & set(_WORD.findall(str(doc.get(name, "")).lower()))))
    if kind == "bool":
        return sum(score(doc, q) for q in spec.get("must", []) + spec.get("should", []))
    return 0.0


class _Router(dict):  # type: ignore[type-arg]
    """HttpServer looks routes up by path; this answers every path, dispatching on the method."""

    def __init__(self, standin: StandIn) -> None:
        super().__init__()
        self.standin = standin

    def get(self, path: str, default: Any = None) -> Callable[[BaseHTTPRequestHandler], None]:  # type: ignore[override]
        return lambda request: self._serve(request, path)

    def _serve(self, request: BaseHTTPRequestHandler, path: str) -> None:
        raw: bytes = request.body  # type: ignore[attr-defined]
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        body = lines[0] if len(lines) == 1 else {}
        with self.standin.store.lock:
            self.standin.store.calls.append(f"{request.command} {path}")
            if self.standin.down:
                status, answer = _error(503, "cluster_block_exception")
            else:
                status, answer = self._answer(request.command, path.strip("/").split("/"), body, lines)
        send(request, status, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    def _answer(
        self, method: str, parts: list[str], body: dict[str, Any], lines: list[dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        s, store = self.standin, self.standin.store
        if parts == ["_bulk"]:
            return 200, s.bulk(lines)
        if parts == ["_msearch"]:
            pairs = zip(lines[0::2], lines[1::2], strict=True)
            return 200, {"responses": [s.search(head["index"], q) | {"status": 200} for head, q in pairs]}
        if parts[0] == "_index_template" and method == "PUT":
            store.templates[parts[1]] = body
            return 200, {"acknowledged": True}
        index = parts[0]
        if len(parts) == 1 and method == "PUT":
            if index in store.indices:
                return _error(400, "resource_already_exists_exception")
            s.create(index, body)
            return 200, {"acknowledged": True, "index": index}
        if index not in store.indices:
            return _error(404, "index_not_found_exception")
        action = parts[1] if len(parts) > 1 else ""
        if action == "_mapping":
            return 200, {index: {"mappings": store.mappings[index]}}
        if action == "_mget":
            docs = store.indices[index]
            found = []
            for doc_id in body["ids"]:
                held = docs.get(doc_id)
                if held is None or held.source is None:
                    found.append({"_index": index, "_id": doc_id, "found": False})
                else:
                    found.append(
                        {
                            "_index": index,
                            "_id": doc_id,
                            "_version": held.version,
                            "found": True,
                            "_source": _pick(held.source, None),
                        }
                    )
            return 200, {"docs": found}
        if action == "_search":
            return 200, s.search(index, body)
        if action == "_delete_by_query":
            gone = [i for i, src in store.live(index).items() if matches(src, body["query"])]
            for doc_id in gone:
                s.write(index, doc_id, None, {})
            return 200, {"deleted": len(gone), "version_conflicts": 0, "failures": []}
        return _error(400, "illegal_argument_exception")
