"""The OpenSearch adapter over real HTTP, through opensearch-py, against loopback servers.

Every test here is a stand-in: no OpenSearch can run on the build machines (no Docker, no k-NN
native libraries), so the servers answer with OpenSearch-shaped JSON as its REST API documents
it. The contract suite (test_vector_index_contract.py) runs against a real one when OPENSEARCH_URL
is set. Two kinds:
- recorded answers (a bulk with a 409 item, a 503, auth refused) and misbehaving peers (nothing
  listening, a server that never answers): the HTTP layer and the error mapping;
- the contract's versioning, delete and count cases against `StandIn`
  (tests/integration/opensearch_standin.py), which keeps documents with OpenSearch's external
  versioning: the adapter's sequencing of gate, chunks and settle.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest

from shared import registry
from shared.embeddings.chunking import ISSUE
from shared.embeddings.index import (
    Deletion,
    EntityKey,
    EntityState,
    IndexCount,
    IndexUnavailable,
    Outcome,
    index_name,
)
from shared.embeddings.model import DEFAULT_MODEL
from shared.embeddings.opensearch import OpenSearchIndex, client_for
from shared.embeddings.opensearch_requests import chunk_actions, entity_action
from tests.helpers import consumer_thread, dead_letters, processed, wait_until
from tests.integration.http_servers import HttpServer, RawServer, read_request_head, send
from tests.integration.opensearch_standin import StandIn
from tests.integration.test_embeddings_consumer import chat, embed, produce
from tests.integration.test_vector_index_contract import (  # noqa: F401  (fixture and suites)
    DIM,
    WS_A,
    TestDeleteAndCount,
    TestR25ExternalVersions,
    entity,
    index,
)
from tests.reliability.test_database_outage import offsets

NAME = index_name("http-model", DIM)
ENTITIES, CHUNKS = f"{NAME}_entities", f"{NAME}_chunks"


def json_route(status: int, answer: object):  # type: ignore[no-untyped-def]
    body = json.dumps(answer).encode()
    return lambda h: send(h, status, body, {"Content-Type": "application/json"})


def ndjson(raw: bytes) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.close()


@pytest.fixture
def adapter(standin: StandIn) -> tuple:  # type: ignore[type-arg]
    """The contract suites' adapter fixture, here: the OpenSearch adapter on a StandIn (a stand-in:
    no OpenSearch can run here), and one on a port nothing listens on."""

    def make(dim: int) -> OpenSearchIndex:
        made = OpenSearchIndex(client_for(standin.url), name=index_name("contract-model", dim), dimension=dim)
        made.ensure()
        return made

    def unreachable(dim: int) -> OpenSearchIndex:
        return OpenSearchIndex(
            client_for("http://127.0.0.1:9", timeout_s=2), name="ai_unreachable", dimension=dim
        )

    return make, unreachable


class TestRecordedAnswers:
    def test_a_bulk_with_one_409_item_and_one_success(self):
        """Stand-in (no OpenSearch can run here): the gate answers one created, one version
        conflict; the conflict is STALE, a success, and only the winner's chunks are written."""
        gate_answer = {
            "took": 3,
            "errors": True,
            "items": [
                {
                    "index": {
                        "_index": ENTITIES,
                        "_id": "issue:won",
                        "_version": 5,
                        "result": "created",
                        "status": 201,
                    }
                },
                {
                    "index": {
                        "_index": ENTITIES,
                        "_id": "issue:lost",
                        "status": 409,
                        "error": {
                            "type": "version_conflict_engine_exception",
                            "reason": "[issue:lost]: version conflict, current version [9] is higher "
                            "or equal to the one provided [5]",
                            "index": ENTITIES,
                        },
                    }
                },
            ],
        }
        bulks: list[list[dict]] = []  # type: ignore[type-arg]

        def bulk(h: BaseHTTPRequestHandler) -> None:
            lines = ndjson(h.body)  # type: ignore[attr-defined]
            bulks.append(lines)
            if len(bulks) == 1:
                return json_route(200, gate_answer)(h)
            items = [{"index": {"_id": m["index"]["_id"], "status": 201}} for m in lines[0::2]]
            json_route(200, {"took": 1, "errors": False, "items": items})(h)

        stored = {  # what the entity documents hold once the gate has run
            "issue:won": {"entity_type": "issue", "entity_id": "won", "version": 5, "chunk_count": 2},
            "issue:lost": {"entity_type": "issue", "entity_id": "lost", "version": 9, "chunk_count": 1},
        }

        def mget(h: BaseHTTPRequestHandler) -> None:
            ids = json.loads(h.body)["ids"]  # type: ignore[attr-defined]
            docs = [
                {"_index": ENTITIES, "_id": i, "found": True, "_source": stored[i] | {"deleted": False}}
                for i in ids
            ]
            json_route(200, {"docs": docs})(h)

        routes = {
            "/_bulk": bulk,
            f"/{ENTITIES}/_mget": mget,
            f"/{CHUNKS}/_search": json_route(200, {"hits": {"total": {"value": 0}, "hits": []}}),
        }
        server = HttpServer(routes=routes)
        try:
            os_index = OpenSearchIndex(client_for(server.url("")), name=NAME, dimension=DIM)
            outcomes = os_index.upsert([entity("won", 5, 2), entity("lost", 5, 3)])
        finally:
            server.close()
        assert outcomes == [Outcome.APPLIED, Outcome.STALE]
        gate, chunks = bulks
        assert [line["index"]["version_type"] for line in gate[0::2]] == ["external", "external"]
        assert [line["index"]["version"] for line in gate[0::2]] == [5, 5]
        # The loser's newer version (9) is not repaired: only the winner's two chunks go out.
        assert [line["index"]["_id"] for line in chunks[0::2]] == ["issue:won#0", "issue:won#1"]
        assert all(len(line["embedding"]) == DIM for line in chunks[1::2])
        bulk_paths = [r.path for r in server.requests if r.path.startswith("/_bulk")]
        assert bulk_paths and all("refresh=true" in p for p in bulk_paths)

    def test_a_503_is_index_unavailable(self):
        """Stand-in (no OpenSearch can run here): a cluster that answers 503 for writes and
        searches is down, not a bad event."""
        down = {
            "error": {
                "root_cause": [
                    {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE]"}
                ],
                "type": "cluster_block_exception",
                "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
            },
            "status": 503,
        }
        routes = {"/_bulk": json_route(503, down), "/_msearch": json_route(503, down)}
        server = HttpServer(routes=routes)
        try:
            os_index = OpenSearchIndex(client_for(server.url("")), name=NAME, dimension=DIM)
            with pytest.raises(IndexUnavailable, match="HTTP 503 cluster_block_exception"):
                os_index.upsert([entity("a", 1, 1)])
            with pytest.raises(IndexUnavailable):
                os_index.count(WS_A)
            with pytest.raises(IndexUnavailable):
                os_index.search(WS_A, np.ones(DIM, dtype=np.float32), "words")
        finally:
            server.close()
        # No retries of the client's own: the consumer's hold does the waiting.
        assert len([r for r in server.requests if r.path.startswith("/_bulk")]) == 1

    def test_refused_credentials_are_unavailable_and_never_shown(self, caplog: pytest.LogCaptureFixture):
        """Stand-in (no OpenSearch can run here): the security plugin's 401. A wrong password is
        an operator's to fix: held like an outage, and the password appears nowhere."""
        denied = {"error": {"type": "security_exception", "reason": "Unauthorized"}, "status": 401}
        server = HttpServer(routes={f"/{ENTITIES}/_mget": json_route(401, denied)})
        caplog.set_level(logging.DEBUG)
        try:
            client = client_for(server.url(""), username="plane", password="hunter2-secret")
            os_index = OpenSearchIndex(client, name=NAME, dimension=DIM)
            with pytest.raises(IndexUnavailable) as raised:
                os_index.lookup([EntityKey(ISSUE, "x")])
        finally:
            server.close()
        headers = {k.lower(): v for k, v in server.requests[0].headers.items()}
        assert headers["authorization"].startswith("Basic ")
        assert "hunter2-secret" not in str(raised.value)
        assert "hunter2-secret" not in caplog.text

    def test_connection_refused_is_index_unavailable(self):
        """Stand-in (no OpenSearch can run here): a port nothing listens on, as a stopped node."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        os_index = OpenSearchIndex(
            client_for(f"http://127.0.0.1:{port}", timeout_s=2), name=NAME, dimension=DIM
        )
        started = time.monotonic()
        with pytest.raises(IndexUnavailable, match="ConnectionError"):
            os_index.delete([Deletion(ISSUE, "x", 3)])
        with pytest.raises(IndexUnavailable):
            os_index.ensure()
        assert time.monotonic() - started < 5

    def test_a_hanging_server_times_out_as_configured(self):
        """Stand-in (no OpenSearch can run here): a node that accepts and never answers (a GC
        pause, a partition). The client's timeout holds, and it is IndexUnavailable."""

        def hang(conn: socket.socket) -> None:
            read_request_head(conn)
            time.sleep(10)

        server = RawServer(hang)
        try:
            os_index = OpenSearchIndex(client_for(server.url(""), timeout_s=0.5), name=NAME, dimension=DIM)
            started = time.monotonic()
            with pytest.raises(IndexUnavailable, match="ConnectionTimeout"):
                os_index.count(WS_A)
            elapsed = time.monotonic() - started
        finally:
            server.close()
        assert 0.4 < elapsed < 3, elapsed
        assert server.accepted == 1  # tried once: no retries of the client's own


class TestStandInSpecifics:
    """What the contract suites do not show: a batch done again after a failure half-way
    completes its chunks, and leftovers at the current version are removed (stand-in: no
    OpenSearch can run here)."""

    def test_a_half_written_entity_is_completed_when_the_batch_comes_again(self, adapter):  # type: ignore[no-untyped-def]
        made = adapter[0](DIM)
        item = entity("half", 4, 3)
        made._bulk(entity_action(made.entities_index, item))
        assert made.chunks(EntityKey(ISSUE, "half")) == []  # the gate passed, the chunks never came
        assert made.upsert([item]) == [Outcome.STALE]
        assert [c.text for c in made.chunks(EntityKey(ISSUE, "half"))] == [
            f"half v4 part {i}" for i in range(3)
        ]
        assert made.count(WS_A) == IndexCount(1, 3)

    def test_leftover_chunks_at_the_current_version_are_settled(self, adapter):  # type: ignore[no-untyped-def]
        made = adapter[0](DIM)
        made.upsert([entity("left", 2, 1)])
        # A crashed writer's chunk #1 at the same version, beyond the entity's chunk count.
        extra = entity("left", 2, 2)
        lines = chunk_actions(made.chunks_index, extra)
        made._bulk(lines[2:])
        assert made.count(WS_A) == IndexCount(1, 2)
        assert made.upsert([entity("left", 2, 1)]) == [Outcome.STALE]
        assert made.count(WS_A) == IndexCount(1, 1)
        assert made.lookup([EntityKey(ISSUE, "left")])[EntityKey(ISSUE, "left")] == EntityState(2, False, 1)

    def test_another_dimension_under_the_same_name_is_refused_and_changes_nothing(self, adapter, standin):  # type: ignore[no-untyped-def]
        made = adapter[0](DIM)
        with pytest.raises(ValueError, match=f"knn_vector {DIM}-dimensional vectors, not knn_vector 768"):
            OpenSearchIndex(client_for(standin.url), name=made.name, dimension=768).ensure()
        template = standin.store.templates[made.chunks_index]["template"]
        assert template["mappings"]["properties"]["embedding"]["dimension"] == DIM

    def test_an_index_deleted_by_hand_comes_back_with_its_mapping(self, adapter, standin):  # type: ignore[no-untyped-def]
        made = adapter[0](DIM)
        made.upsert([entity("lost", 1, 2)])
        for name in (made.entities_index, made.chunks_index):
            del standin.store.indices[name], standin.store.mappings[name]
        assert made.lookup([EntityKey(ISSUE, "lost")]) == {}  # nothing held, not an error
        assert made.chunks(EntityKey(ISSUE, "lost")) == []
        assert made.upsert([entity("lost", 1, 2)]) == [Outcome.APPLIED]
        embedding = standin.store.mappings[made.chunks_index]["properties"]["embedding"]
        assert (embedding["type"], embedding["dimension"]) == ("knn_vector", DIM)
        assert made.count(WS_A) == IndexCount(1, 2)


def test_the_consumer_writes_opensearch_when_opensearch_url_is_set_and_holds_through_a_503(
    settings, engine, standin: StandIn
):  # type: ignore[no-untyped-def]
    """The `embeddings` consumer end to end (tansu, PostgreSQL, the real model) with OPENSEARCH_URL
    naming a StandIn (a stand-in: no OpenSearch can run here): R25's v1, v3, v2, v3, delete land
    in OpenSearch's documents, and a cluster answering 503 for 8 s holds the batch (no retry
    tier, no dead letter) until it answers again."""
    spec = registry.consumer("embeddings")
    on_opensearch = replace(settings, opensearch_url=standin.url)
    name = index_name(DEFAULT_MODEL, 384)
    entities = f"{name}_entities"

    def held(entity_id: str) -> tuple | None:  # type: ignore[type-arg]
        doc = standin.store.indices.get(entities, {}).get(f"external:{entity_id}")
        if doc is None or doc.source is None:
            return None
        return doc.source["version"], doc.source["deleted"], doc.source["chunk_count"]

    with consumer_thread(spec, on_opensearch):
        produce(on_opensearch, chat("c", 1, "one"))
        wait_until(lambda: processed(engine, spec.name) == 1, 120)  # committed, not only written
        assert held("c") == (1, False, 1)
        standin.down = True
        produce(on_opensearch, chat("c", 3, "three"), chat("c", 2, "two, late"))
        time.sleep(8)
        assert held("c") == (1, False, 1)
        assert processed(engine, spec.name) == 1
        standin.down = False
        produce(
            on_opensearch, chat("c", 3, "three"), embed("delete", "external", "c", 4), chat("c", 2, "two")
        )
        wait_until(lambda: processed(engine, spec.name) == 6, 120)
    assert held("c") == (4, True, 0)
    chunks = standin.store.live(f"{name}_chunks")
    assert not [c for c in chunks.values() if c["entity_id"] == "c"]
    assert not any(sum(offsets(on_opensearch, t).values()) for t in spec.retry_topics)
    assert dead_letters(on_opensearch, spec.topic) == []
