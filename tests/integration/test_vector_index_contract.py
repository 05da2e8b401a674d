"""The VectorIndex contract, one suite for every adapter.

pgvector runs on the embedded PostgreSQL (a fresh database per test). OpenSearch runs whenever
OPENSEARCH_URL names a server; no server can run on the build machines, so it is skipped otherwise
(its versioning, delete and count suites also run against a loopback stand-in with
OpenSearch's external versioning: test_opensearch_http.py).
Versioning tests use random unit vectors (what they check does not depend on meaning); the search
tests embed a small corpus with the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text

from shared.embeddings.chunking import (
    ISSUE,
    PAGE,
    Chunk,
    Chunker,
    Document,
    doc_file_document,
    issue_document,
)
from shared.embeddings.index import (
    Deletion,
    EntityKey,
    EntityState,
    EntityVectors,
    IndexCount,
    IndexUnavailable,
    Outcome,
    VectorIndex,
    index_name,
)
from shared.embeddings.model import Embedder
from shared.embeddings.pgvector import PgVectorIndex
from tests.integration.test_embedder import default_embedder

DIM = 384
WS_A, WS_B = str(uuid.uuid4()), str(uuid.uuid4())
PROJECT = str(uuid.uuid4())
RNG = np.random.default_rng(16)

# name -> (index on a fresh store, index on a store that cannot be reached)
Factory = Callable[[int], VectorIndex]


def _pgvector(engine: Engine) -> tuple[Factory, Factory]:
    def make(dim: int) -> VectorIndex:
        index = PgVectorIndex(engine, name=index_name("contract-model", dim), dimension=dim)
        index.ensure()
        return index

    def unreachable(dim: int) -> VectorIndex:
        # A port nothing listens on: connection refused, as when the server is down.
        dead = create_engine(
            "postgresql+psycopg2://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
        )
        return PgVectorIndex(dead, name="ai_unreachable", dimension=dim)

    return make, unreachable


def _opensearch() -> Iterator[tuple[Factory, Factory]]:
    """A real OpenSearch (with the k-NN plugin) named by OPENSEARCH_URL, and OPENSEARCH_USERNAME /
    OPENSEARCH_PASSWORD. Each test gets indices of its own, dropped afterwards."""
    url = os.environ.get("OPENSEARCH_URL", "")
    if not url:
        pytest.skip(
            "OPENSEARCH_URL is not set: no OpenSearch server can run here; set it to run this suite there"
        )
    from shared.embeddings.opensearch import OpenSearchIndex, client_for

    client = client_for(
        url,
        username=os.environ.get("OPENSEARCH_USERNAME", ""),
        password=os.environ.get("OPENSEARCH_PASSWORD", ""),
        timeout_s=30,
    )
    model = f"contract-model-{uuid.uuid4().hex[:8]}"
    made: list[OpenSearchIndex] = []

    def make(dim: int) -> VectorIndex:
        index = OpenSearchIndex(client, name=index_name(model, dim), dimension=dim)
        index.ensure()
        made.append(index)
        return index

    def unreachable(dim: int) -> VectorIndex:
        return OpenSearchIndex(
            client_for("http://127.0.0.1:9", timeout_s=2), name="ai_unreachable", dimension=dim
        )

    yield make, unreachable
    for index in made:
        index.drop()


@pytest.fixture(params=["pgvector", "opensearch"])
def adapter(request: pytest.FixtureRequest) -> Iterator[tuple[Factory, Factory]]:
    if request.param == "opensearch":
        yield from _opensearch()
    else:
        yield _pgvector(request.getfixturevalue("engine"))


@pytest.fixture
def index(adapter: tuple[Factory, Factory]) -> VectorIndex:
    return adapter[0](DIM)


def unit(n: int, dim: int = DIM) -> np.ndarray:
    v = RNG.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def entity(
    entity_id: str,
    version: int,
    n_chunks: int,
    *,
    workspace: str | None = WS_A,
    kind: str = ISSUE,
    label: str = "",
) -> EntityVectors:
    chunks = [
        Chunk(
            kind,
            entity_id,
            workspace,
            PROJECT,
            version,
            i,
            f"{label or entity_id} v{version} part {i}",
            8,
            0,
            0,
        )
        for i in range(n_chunks)
    ]
    return EntityVectors(kind, entity_id, workspace, PROJECT, version, chunks, unit(n_chunks))


def state(index: VectorIndex, entity_id: str, kind: str = ISSUE) -> EntityState | None:
    return index.lookup([EntityKey(kind, entity_id)]).get(EntityKey(kind, entity_id))


def texts_of(index: VectorIndex, entity_id: str, kind: str = ISSUE) -> list[str]:
    return [c.text for c in index.chunks(EntityKey(kind, entity_id))]


class TestR25ExternalVersions:
    def test_v1_v3_v2_v3_then_delete(self, index: VectorIndex):
        assert index.upsert([entity("w1", 1, 3)]) == [Outcome.APPLIED]
        assert index.upsert([entity("w1", 3, 2)]) == [Outcome.APPLIED]
        # v2 arrives late: older than v3, ignored as a success (OpenSearch's 409).
        assert index.upsert([entity("w1", 2, 4)]) == [Outcome.STALE]
        # v3 again (a replay): the same version is a no-op success.
        assert index.upsert([entity("w1", 3, 5)]) == [Outcome.STALE]
        assert state(index, "w1") == EntityState(3, False, 2)
        assert index.count(WS_A) == IndexCount(1, 2)
        assert texts_of(index, "w1") == ["w1 v3 part 0", "w1 v3 part 1"]
        assert {c.version for c in index.chunks(EntityKey(ISSUE, "w1"))} == {3}
        assert index.delete([Deletion(ISSUE, "w1", 4)]) == [Outcome.APPLIED]
        assert state(index, "w1") == EntityState(4, True, 0)
        assert texts_of(index, "w1") == []
        assert index.count(WS_A) == IndexCount(0, 0)
        # The tombstone holds: a late v3 does not bring it back; a newer version does.
        assert index.upsert([entity("w1", 3, 2)]) == [Outcome.STALE]
        assert index.search(WS_A, unit(1)[0], "w1", k=10) == []
        assert index.upsert([entity("w1", 5, 1)]) == [Outcome.APPLIED]
        assert state(index, "w1") == EntityState(5, False, 1)

    def test_a_delete_that_preceded_v3_leaves_v3(self, index: VectorIndex):
        index.upsert([entity("w2", 1, 2)])
        assert index.delete([Deletion(ISSUE, "w2", 2)]) == [Outcome.APPLIED]
        assert index.upsert([entity("w2", 3, 1)]) == [Outcome.APPLIED]
        assert state(index, "w2") == EntityState(3, False, 1)
        # An older delete, or the same one replayed, changes nothing.
        assert index.delete([Deletion(ISSUE, "w2", 2), Deletion(ISSUE, "w2", 3)]) == [
            Outcome.STALE,
            Outcome.STALE,
        ]
        assert index.count(WS_A) == IndexCount(1, 1)

    def test_a_delete_before_any_upsert_keeps_older_versions_out(self, index: VectorIndex):
        assert index.delete([Deletion(ISSUE, "w3", 10)]) == [Outcome.APPLIED]
        assert index.upsert([entity("w3", 9, 2)]) == [Outcome.STALE]
        assert index.count(WS_A) == IndexCount(0, 0)

    def test_within_one_batch_the_newest_version_of_an_entity_wins(self, index: VectorIndex):
        batch = [entity("w4", 5, 1), entity("w4", 7, 3), entity("other", 1, 1), entity("w4", 6, 2)]
        assert index.upsert(batch) == [Outcome.STALE, Outcome.APPLIED, Outcome.APPLIED, Outcome.STALE]
        assert state(index, "w4") == EntityState(7, False, 3)

    def test_concurrent_writers_never_regress_a_version(self, index: VectorIndex):
        versions = list(range(1, 41))
        RNG.shuffle(versions)
        errors: list[BaseException] = []

        def write(vs: Sequence[int]) -> None:
            try:
                for v in vs:
                    if v % 5 == 0 and v != 40:  # deletes race the upserts too
                        index.delete([Deletion(ISSUE, "hot", v), Deletion(ISSUE, f"never-{v}")])
                    index.upsert([entity("hot", v, 1 + v % 4), entity(f"cold-{v}", 1, 1)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(versions[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert state(index, "hot") == EntityState(40, False, 1 + 40 % 4)
        # Only v40's chunks: no loser's chunks interleaved.
        assert texts_of(index, "hot") == [f"hot v40 part {i}" for i in range(1 + 40 % 4)]
        assert index.count(WS_A) == IndexCount(41, 1 + 40 % 4 + 40)


class TestDeleteAndCount:
    def test_delete_removes_every_chunk_of_that_entity_only(self, index: VectorIndex):
        index.upsert([entity("big", 1, 7), entity("keep", 1, 2)])
        assert index.count(WS_A) == IndexCount(2, 9)
        # Unversioned: unconditional, and the stored version stays the floor.
        assert index.delete([Deletion(ISSUE, "big")]) == [Outcome.APPLIED]
        assert index.count(WS_A) == IndexCount(1, 2)
        assert texts_of(index, "big") == [] and len(texts_of(index, "keep")) == 2
        assert {h.entity_id for h in index.search(WS_A, unit(1)[0], "big keep part", k=10)} == {"keep"}
        assert index.upsert([entity("big", 1, 3)]) == [Outcome.STALE]
        assert index.upsert([entity("big", 2, 3)]) == [Outcome.APPLIED]

    def test_deleting_what_was_never_indexed_is_fine(self, index: VectorIndex):
        assert (
            index.delete([Deletion(ISSUE, "ghost"), Deletion(PAGE, "ghost-page", 3)]) == [Outcome.APPLIED] * 2
        )
        assert index.count(WS_A) == IndexCount(0, 0)
        assert index.upsert([]) == [] and index.delete([]) == []

    def test_counts_are_per_workspace_and_global_documents_apart(self, index: VectorIndex):
        index.upsert(
            [
                entity("a1", 1, 2),
                entity("a2", 1, 1, kind=PAGE),
                entity("b1", 1, 4, workspace=WS_B),
                entity("docs/ai.md", 1, 3, workspace=None, kind="doc"),
                entity("empty", 1, 0),  # no text, no chunks: indexed all the same
            ]
        )
        assert index.count(WS_A) == IndexCount(3, 3)
        assert index.count(WS_B) == IndexCount(1, 4)
        assert index.count(None) == IndexCount(1, 3)
        assert index.count(str(uuid.uuid4())) == IndexCount(0, 0)
        index.delete([Deletion(ISSUE, "b1", 2)])
        assert index.count(WS_B) == IndexCount(0, 0)
        assert index.count(WS_A) == IndexCount(3, 3)

    def test_vectors_must_fit_the_index(self, index: VectorIndex):
        bad = entity("bad", 1, 2)
        with pytest.raises(ValueError):
            index.upsert([EntityVectors(ISSUE, "bad", WS_A, PROJECT, 1, bad.chunks, unit(2, DIM - 1))])
        with pytest.raises(ValueError):
            index.upsert([EntityVectors(ISSUE, "bad", WS_A, PROJECT, -1, [], unit(0))])
        assert state(index, "bad") is None

    def test_ensure_is_idempotent_and_safe_to_race(
        self, adapter: tuple[Factory, Factory], index: VectorIndex
    ):
        index.upsert([entity("survivor", 1, 2)])
        errors: list[BaseException] = []

        def again() -> None:
            try:
                adapter[0](DIM)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=again) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert index.count(WS_A) == IndexCount(1, 2)

    def test_an_unreachable_store_is_index_unavailable(self, adapter: tuple[Factory, Factory]):
        down = adapter[1](DIM)
        with pytest.raises(IndexUnavailable):
            down.upsert([entity("x", 1, 1)])
        with pytest.raises(IndexUnavailable):
            down.count(WS_A)


# A small real corpus: each planted document is the intended neighbour of one query, among
# distractors on nearby topics, and a near-copy sits in another workspace.
CORPUS = {
    "login-oauth": "Login fails with a 500 error after the Google OAuth redirect returns to Plane",
    "export-s3": "CSV export of a large project never finishes; the S3 upload times out",
    "dark-mode": "Dark mode: kanban card colours are unreadable on the board view",
    "shortcuts": "Add keyboard shortcuts for creating issues and switching cycles",
    "webhook-retry": "Webhooks are not retried when the receiver answers 503",
    "email-digest": "Email notifications arrive twice for the same comment",
    "cycle-burndown": "Cycle burndown chart shows the wrong total of estimate points",
    "slack-link": "Slack integration does not unfurl links to issues",
    "mobile-crash": "The iOS app crashes when opening an issue with many attachments",
    "search-slow": "Workspace search takes ten seconds on projects with many issues",
    "timezone": "Due dates shift by one day for users in UTC-8",
    "labels-bulk": "Bulk editing labels removes existing labels from the issues",
}
QUERIES = {
    "users cannot sign in, server error once authentication with Google completes": "login-oauth",
    "exporting the project to a spreadsheet hangs forever": "export-s3",
    "the phone application closes itself when I open a ticket with files": "mobile-crash",
    "deadline appears a day early for people on the US west coast": "timezone",
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return default_embedder()


@pytest.fixture
def corpus_index(index: VectorIndex, embedder: Embedder) -> VectorIndex:
    chunker: Chunker = embedder.chunker()
    docs: list[Document] = [
        issue_document(
            issue_id=key,
            workspace_id=WS_A,
            project_id=PROJECT,
            version=1,
            name=key,
            description_stripped=body,
        )
        for key, body in CORPUS.items()
    ]
    # The same login text in another workspace: it must never show up in WS_A's results.
    docs.append(
        issue_document(
            issue_id="b-login",
            workspace_id=WS_B,
            project_id=PROJECT,
            version=1,
            name="login",
            description_stripped=CORPUS["login-oauth"],
        )
    )
    docs.append(
        doc_file_document(path="docs/ai/setup.md", version=1, text="Configure Plane AI with OPENSEARCH_URL")
    )
    writes = []
    for document, chunks in zip(docs, chunker.split_many(docs), strict=True):
        vectors = embedder.encode([c.text for c in chunks], [c.token_count for c in chunks])
        writes.append(EntityVectors.of(document, chunks, vectors))
    assert set(index.upsert(writes)) == {Outcome.APPLIED}
    return index


class TestSearch:
    @pytest.mark.parametrize(("query", "planted"), list(QUERIES.items()))
    def test_the_planted_neighbour_comes_first(
        self, corpus_index: VectorIndex, embedder: Embedder, query: str, planted: str
    ):
        hits = corpus_index.search(WS_A, embedder.encode([query])[0], query, k=5)
        assert hits[0].entity_id == planted, [h.entity_id for h in hits]
        assert hits[0].vector_rank == 1
        assert all(h.workspace_id in (WS_A, None) for h in hits)
        assert "b-login" not in {h.entity_id for h in hits}
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len({h.key for h in hits}) == len(hits), "one hit per entity"

    def test_the_keyword_half_finds_an_exact_term(self, corpus_index: VectorIndex, embedder: Embedder):
        query = "OPENSEARCH_URL"
        hits = corpus_index.search(WS_A, None, query, k=3)
        assert [h.entity_id for h in hits] == ["docs/ai/setup.md"]
        assert hits[0].keyword_rank == 1 and hits[0].vector_rank is None
        # Fused with the vector half, the exact term still wins.
        fused = corpus_index.search(WS_A, embedder.encode([query])[0], query, k=3)
        assert fused[0].entity_id == "docs/ai/setup.md" and fused[0].keyword_rank == 1

    def test_filters_by_entity_type_and_global_documents(self, corpus_index: VectorIndex, embedder: Embedder):
        vector = embedder.encode(["configure the AI search server"])[0]
        assert {
            h.entity_type for h in corpus_index.search(WS_A, vector, None, k=20, entity_types=["doc"])
        } == {"doc"}
        without = corpus_index.search(WS_A, vector, None, k=20, include_global=False)
        assert without and all(h.workspace_id == WS_A for h in without)
        assert corpus_index.search(WS_B, vector, None, k=20, entity_types=[PAGE]) == []
        assert [h.entity_id for h in corpus_index.search(WS_B, vector, None, k=20, include_global=False)] == [
            "b-login"
        ]

    def test_query_syntax_is_only_words(self, corpus_index: VectorIndex):
        hits = corpus_index.search(WS_A, None, "webhooks & | ! ( 503 :* '", k=3)
        assert hits[0].entity_id == "webhook-retry"
        assert corpus_index.search(WS_A, None, "&|!()", k=3) == []


class TestPgVectorSpecifics:
    """What only the pgvector adapter promises: its tables, index kinds and dimension guard."""

    @pytest.fixture
    def pg(self, engine: Engine) -> Iterator[PgVectorIndex]:
        index = PgVectorIndex(engine, name=index_name("contract-model", DIM), dimension=DIM)
        index.ensure()
        yield index

    def test_hnsw_and_gin_indexes_exist(self, pg: PgVectorIndex, engine: Engine):
        with engine.connect() as conn:
            defs = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'plane_workers' AND tablename = :t"),
                {"t": pg.chunks_table.name},
            ).scalars()
            joined = "\n".join(defs)
        assert "USING hnsw (embedding vector_cosine_ops)" in joined
        assert "USING gin (tsv)" in joined

    def test_another_dimension_under_the_same_name_is_refused(self, pg: PgVectorIndex, engine: Engine):
        with pytest.raises(ValueError, match="384-dimensional"):
            PgVectorIndex(engine, name=pg.name, dimension=768).ensure()

    def test_drop_removes_the_tables(self, pg: PgVectorIndex, engine: Engine):
        pg.upsert([entity("gone", 1, 1)])
        pg.drop()
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT to_regclass(:t)"), {"t": f"plane_workers.{pg.chunks_table.name}"}
                ).scalar()
                is None
            )

    def test_a_small_workspace_is_found_through_the_hnsw_index(self, pg: PgVectorIndex, engine: Engine):
        # 15 of 415 rows are WS_A's. HNSW yields its ef_search nearest rows before the workspace
        # filter, so without pgvector's iterative scan most of WS_A would be missing. (For a
        # workspace this small the planner rightly prefers the workspace index and an exact sort;
        # the test takes that index and sequential scans away to hold it to the HNSW path.)
        others = [entity(f"b{i}", 1, 1, workspace=WS_B) for i in range(400)]
        mine = [entity(f"a{i}", 1, 1) for i in range(15)]
        pg.upsert(others + mine)
        with engine.connect() as conn:
            conn.execute(text(f"DROP INDEX plane_workers.{pg.chunks_table.name}_ws"))
            conn.execute(text(f"ANALYZE plane_workers.{pg.chunks_table.name}"))
            conn.commit()
        with engine.connect() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar()
            conn.execute(text(f'ALTER DATABASE "{name}" SET enable_seqscan = off'))
            conn.execute(text(f'ALTER DATABASE "{name}" SET enable_bitmapscan = off'))
            conn.commit()
        engine.dispose()  # new connections take the settings
        target = mine[7].vectors[0] + 0.01 * unit(1)[0]
        hits = pg.search(WS_A, target / np.linalg.norm(target), None, k=20, include_global=False)
        assert hits[0].entity_id == "a7"
        assert len(hits) == 15


class TestAIState:
    """Migration 0006 against shared/db/ai_state.py (the rows the consumer and backfill keep)."""

    TABLES = {"vectorization_jobs", "workspace_ai_settings", "indexed_documents"}

    def test_the_models_match_the_migration(self, engine: Engine):
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        import shared.db.ai_state  # noqa: F401  (registers the models on StateBase)
        from shared.db.base import StateBase

        def ours(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
            table = obj if type_ == "table" else getattr(obj, "table", None)
            return table is None or (table.schema == "plane_workers" and table.name in self.TABLES)

        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_schemas": True, "include_object": ours, "compare_type": True}
            )
            diffs = compare_metadata(context, StateBase.metadata)
        assert diffs == []

    def test_one_active_job_per_workspace_and_model_and_known_statuses(self, engine: Engine):
        from sqlalchemy.exc import IntegrityError
        from sqlalchemy.orm import Session

        from shared.db.ai_state import JobStatus, VectorizationJob

        ws = uuid.uuid4()
        with Session(engine) as session:
            session.add(VectorizationJob(workspace_id=ws, model_name="m", status=JobStatus.SUCCESS))
            session.add(VectorizationJob(workspace_id=ws, model_name="m", status=JobStatus.QUEUED))
            session.add(VectorizationJob(workspace_id=ws, model_name="other", status=JobStatus.RUNNING))
            session.commit()
            session.add(VectorizationJob(workspace_id=ws, model_name="m", status=JobStatus.RUNNING))
            with pytest.raises(IntegrityError, match="vectorization_jobs_one_active_idx"):
                session.commit()
            session.rollback()
            session.add(VectorizationJob(workspace_id=ws, model_name="m", status="paused"))
            with pytest.raises(IntegrityError, match="vectorization_jobs_status_check"):
                session.commit()

    def test_downgrade_and_upgrade_again(self, database_url: str, engine: Engine):
        from alembic import command

        from shared.db.migrate import alembic_config, upgrade

        command.downgrade(alembic_config(database_url), "0005")
        with engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT count(*) FROM pg_tables "
                    "WHERE schemaname = 'plane_workers' AND tablename = ANY(:t)"
                ),
                {"t": sorted(self.TABLES)},
            ).scalar()
        assert left == 0
        upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM plane_workers.indexed_documents")).scalar() == 0
