"""The OpenSearch adapter's pure parts, offline: request bodies (templates, _bulk lines with external
versions, both halves of hybrid search, the settle query), the reading of _bulk and _msearch
answers, the mapping of client errors to IndexUnavailable, and the choice of backend.

No OpenSearch can run here; the answers below have the shape OpenSearch documents for them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from opensearchpy import exceptions as os_exc

from shared.embeddings.backends import (
    OPENSEARCH,
    PGVECTOR,
    IndexConfigError,
    index_backend,
    index_setting,
    open_index,
)
from shared.embeddings.chunking import Chunk
from shared.embeddings.index import EntityKey, EntityState, EntityVectors, IndexUnavailable
from shared.embeddings.opensearch import OpenSearchIndex, client_for
from shared.embeddings.opensearch_requests import (
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
from shared.settings import Settings, shown_values

WS = "0b4c5d6e-0000-4000-8000-000000000001"
INDEX = "ai_test_4_abcdef12"


def item(entity_id: str = "e1", version: int = 7, n: int = 2, dim: int = 4) -> EntityVectors:
    chunks = [Chunk("issue", entity_id, WS, None, version, i, f"text {i}", 3, 0, 0) for i in range(n)]
    vectors = np.arange(n * dim, dtype=np.float32).reshape(n, dim) / 10
    return EntityVectors("issue", entity_id, WS, None, version, chunks, vectors)


class TestIdsAndTemplates:
    def test_ids_are_readable_and_bounded(self):
        assert doc_id("issue", "abc") == "issue:abc"
        assert chunk_id("issue", "abc", 3) == "issue:abc#3"
        long = doc_id("external", "x" * 1000)
        assert long.startswith("external:sha256:") and len(long.encode()) < 512
        assert long != doc_id("external", "x" * 999)

    def test_chunks_template_has_an_hnsw_knn_vector_of_the_models_dimension(self):
        body = chunks_template(
            f"{INDEX}_chunks", 384, engine="lucene", m=16, ef_construction=64, analyzer="english"
        )
        assert body["index_patterns"] == [f"{INDEX}_chunks"]
        template = body["template"]
        assert template["settings"] == {"index": {"knn": True}}
        mappings = template["mappings"]
        assert mappings["dynamic"] == "strict"
        assert mappings["_source"] == {"excludes": ["embedding"]}
        embedding = mappings["properties"]["embedding"]
        assert embedding == {
            "type": "knn_vector",
            "dimension": 384,
            "method": {
                "name": "hnsw",
                "space_type": "cosinesimil",
                "engine": "lucene",
                "parameters": {"m": 16, "ef_construction": 64},
            },
        }
        assert mappings["properties"]["text"] == {"type": "text", "analyzer": "english"}
        assert mappings["properties"]["version"] == {"type": "long"}

    def test_entities_template_is_strict_and_versioned(self):
        mappings = entities_template(f"{INDEX}_entities")["template"]["mappings"]
        assert mappings["dynamic"] == "strict"
        assert set(mappings["properties"]) == {
            "entity_type",
            "entity_id",
            "workspace_id",
            "project_id",
            "version",
            "deleted",
            "chunk_count",
        }

    def test_the_adapter_refuses_what_knn_cannot_hold(self):
        client = client_for("http://127.0.0.1:9")
        with pytest.raises(ValueError, match="dimension"):
            OpenSearchIndex(client, name=INDEX, dimension=0)
        with pytest.raises(ValueError, match="engine"):
            OpenSearchIndex(client, name=INDEX, dimension=4, engine="nmslib")


class TestBulkLines:
    def test_the_gate_is_the_entity_document_with_an_external_version(self):
        meta, source = entity_action(f"{INDEX}_entities", item())
        assert meta == {
            "index": {
                "_index": f"{INDEX}_entities",
                "_id": "issue:e1",
                "version": 7,
                "version_type": "external",
            }
        }
        assert source == {
            "entity_type": "issue",
            "entity_id": "e1",
            "workspace_id": WS,
            "project_id": None,
            "version": 7,
            "deleted": False,
            "chunk_count": 2,
        }

    def test_chunks_carry_the_entity_version_and_their_vectors(self):
        lines = chunk_actions(f"{INDEX}_chunks", item(n=2))
        assert [line["index"]["_id"] for line in lines[0::2]] == ["issue:e1#0", "issue:e1#1"]
        assert {line["index"]["version_type"] for line in lines[0::2]} == {"external"}
        assert {line["index"]["version"] for line in lines[0::2]} == {7}
        assert lines[3]["chunk_index"] == 1 and lines[3]["text"] == "text 1"
        assert lines[3]["embedding"] == pytest.approx([0.4, 0.5, 0.6, 0.7])
        json.dumps(lines)  # what the client sends: plain JSON, no numpy left

    def test_tombstones_keep_the_place_and_take_the_version_type_given(self):
        held = {"workspace_id": WS, "project_id": "p"}
        meta, source = tombstone_action(f"{INDEX}_entities", EntityKey("page", "x"), 9, "external_gte", held)
        assert meta["index"] == {
            "_index": f"{INDEX}_entities",
            "_id": "page:x",
            "version": 9,
            "version_type": "external_gte",
        }
        assert source["deleted"] is True and source["chunk_count"] == 0 and source["version"] == 9
        assert (source["workspace_id"], source["project_id"]) == (WS, "p")
        assert tombstone_action("i", EntityKey("page", "y"), 0, "external")[1]["workspace_id"] is None


class TestSearchBodies:
    def test_scope_takes_the_workspace_and_the_global_documentation(self):
        assert scope_filters(WS, False, None) == [{"term": {"workspace_id": WS}}]
        scoped = scope_filters(WS, True, ["doc", "page"])
        should = scoped[0]["bool"]["should"]
        assert should[0] == {"term": {"workspace_id": WS}}
        assert should[1] == {"bool": {"must_not": [{"exists": {"field": "workspace_id"}}]}}
        assert scoped[1] == {"terms": {"entity_type": ["doc", "page"]}}

    def test_the_vector_half_is_a_filtered_knn_query(self):
        filters = scope_filters(WS, False, None)
        body = vector_query(np.array([0.5, 0.25], dtype=np.float32), 40, filters)
        knn = body["query"]["knn"]["embedding"]
        assert knn == {"vector": [0.5, 0.25], "k": 40, "filter": {"bool": {"filter": filters}}}
        assert body["size"] == 40 and "embedding" not in body["_source"]

    def test_the_keyword_half_is_a_match_of_words_sorted_deterministically(self):
        body = keyword_query(["webhooks", "503"], 50, [])
        assert body["query"]["bool"]["must"] == [{"match": {"text": {"query": "webhooks 503"}}}]
        assert body["sort"][0] == {"_score": "desc"}
        assert [next(iter(s)) for s in body["sort"][1:]] == ["entity_type", "entity_id", "chunk_index"]

    def test_the_settle_query_selects_what_each_state_does_not_own(self):
        live, gone = EntityKey("issue", "a"), EntityKey("issue", "b")
        body = stale_chunks_query({live: EntityState(5, False, 2), gone: EntityState(8, True, 0)})
        live_clause, gone_clause = body["query"]["bool"]["should"]
        older, extra = live_clause["bool"]["should"]
        assert older == {"range": {"version": {"lt": 5}}}
        assert extra["bool"]["filter"] == [
            {"term": {"version": 5}},
            {"range": {"chunk_index": {"gte": 2}}},
        ]
        assert {"range": {"version": {"lte": 8}}} in gone_clause["bool"]["filter"]
        assert {"term": {"entity_id": "b"}} in gone_clause["bool"]["filter"]


class TestAnswers:
    def test_a_409_item_is_an_outcome_and_a_success_is_a_success(self):
        answer = {
            "errors": True,
            "items": [
                {"index": {"_id": "issue:a", "status": 201, "result": "created", "_version": 3}},
                {
                    "index": {
                        "_id": "issue:b",
                        "status": 409,
                        "error": {
                            "type": "version_conflict_engine_exception",
                            "reason": "[issue:b]: version conflict, current version [4] is higher or "
                            "equal to the one provided [2]",
                        },
                    }
                },
            ],
        }
        assert item_statuses(answer) == [201, 409]

    def test_a_rejected_item_raises_and_a_overloaded_one_is_unavailable(self):
        mapping = {
            "index": {"_id": "x", "status": 400, "error": {"type": "strict_dynamic_mapping_exception"}}
        }
        busy = {"index": {"_id": "y", "status": 429, "error": {"type": "es_rejected_execution_exception"}}}
        ok = {"index": {"_id": "z", "status": 200}}
        with pytest.raises(IndexRejected, match="strict_dynamic_mapping_exception"):
            item_statuses({"errors": True, "items": [ok, mapping]})
        with pytest.raises(IndexUnavailable, match="429 es_rejected_execution_exception"):
            item_statuses({"errors": True, "items": [mapping, busy]})
        gone = {"delete": {"_id": "w", "status": 404, "result": "not_found"}}
        with pytest.raises(IndexRejected):
            item_statuses({"items": [gone]})
        assert item_statuses({"items": [gone]}, ok=(404, 409)) == [404]

    def test_an_msearch_response_error_is_raised(self):
        assert hits_of({"hits": {"hits": [{"_id": "a"}]}, "status": 200}) == [{"_id": "a"}]
        with pytest.raises(IndexUnavailable):
            hits_of({"error": {"type": "search_phase_execution_exception"}, "status": 503})
        with pytest.raises(IndexRejected, match="parsing_exception"):
            hits_of({"error": {"type": "parsing_exception"}, "status": 400})

    @pytest.mark.parametrize(
        ("status", "down"),
        [
            (200, False),
            (400, False),
            (404, False),
            (401, True),
            (403, True),
            (429, True),
            (500, True),
            (503, True),
        ],
    )
    def test_which_statuses_mean_down(self, status: int, down: bool):
        assert unavailable_status(status) is down
        assert unavailable_status("N/A") is False

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (os_exc.ConnectionError("N/A", "refused", OSError()), IndexUnavailable),
            (os_exc.ConnectionTimeout("TIMEOUT", "read timed out", OSError()), IndexUnavailable),
            (
                os_exc.TransportError(503, "unavailable", {"error": {"type": "cluster_block_exception"}}),
                IndexUnavailable,
            ),
            (os_exc.AuthenticationException(401, "security_exception", {}), IndexUnavailable),
            (os_exc.RequestError(400, "mapper_parsing_exception", {}), IndexRejected),
        ],
    )
    def test_client_errors_map_to_the_port(self, error: Exception, expected: type[Exception]):
        index = OpenSearchIndex(client_for("http://127.0.0.1:9"), name=INDEX, dimension=4)

        def fail(**_: object) -> None:
            raise error

        with pytest.raises(expected) as raised:
            index._call(fail)
        assert raised.value.__cause__ is error


class TestBackendChoice:
    base = Settings.from_env({})

    def test_default_is_pgvector_and_an_opensearch_url_chooses_opensearch(self):
        assert index_backend(self.base) == PGVECTOR
        with_url = replace(self.base, opensearch_url="https://search:9200")
        assert index_backend(with_url) == OPENSEARCH
        assert index_backend(replace(with_url, embedding_index="pgvector")) == PGVECTOR
        assert index_backend(replace(with_url, embedding_index=" OpenSearch ")) == OPENSEARCH

    def test_a_bad_choice_is_one_line_naming_the_setting(self):
        with pytest.raises(IndexConfigError, match="EMBEDDING_INDEX='elastic': pgvector or opensearch"):
            index_backend(replace(self.base, embedding_index="elastic"))
        with pytest.raises(IndexConfigError, match="OPENSEARCH_URL is not set"):
            index_backend(replace(self.base, embedding_index="opensearch"))

    def test_the_password_is_secret_everywhere_it_could_show(self):
        settings = Settings.from_env(
            {
                "OPENSEARCH_URL": "https://admin:in-url-pass@search:9200",
                "OPENSEARCH_USERNAME": "plane",
                "OPENSEARCH_PASSWORD": "hunter2-secret",
            }
        )
        assert "hunter2-secret" not in repr(settings)
        shown = shown_values(settings)
        assert shown["OPENSEARCH_PASSWORD"] != "hunter2-secret"
        assert "in-url-pass" not in shown["OPENSEARCH_URL"]
        assert index_setting(settings).startswith("OPENSEARCH_URL=https://admin:")
        assert "in-url-pass" not in index_setting(settings)
        index = open_index(settings, None, name=INDEX, dimension=4)  # type: ignore[arg-type]
        assert isinstance(index, OpenSearchIndex)
        assert "hunter2-secret" not in repr(index.client)

    def test_the_chart_schema_takes_the_choice_but_never_the_password(self):
        chart = Path(__file__).parents[2] / "charts/plane-workers"
        schema = json.loads((chart / "values.schema.json").read_text())
        config = schema["$defs"]["config"]["properties"]
        assert {"EMBEDDING_INDEX", "OPENSEARCH_URL", "OPENSEARCH_USERNAME", "OPENSEARCH_TIMEOUT_S"} <= set(
            config
        )
        assert "OPENSEARCH_PASSWORD" not in config
        assert config["EMBEDDING_INDEX"]["enum"] == ["", "pgvector", "opensearch"]
