"""The `embeddings` consumer on the embedded stack: tansu, PostgreSQL with pgvector, the real
all-MiniLM-L6-v2 on CPU. Events go through Kafka into the consumer's batch handler (in this
process, shared.kafka.runtime as a pod runs it) and are checked in the index's own tables."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, update

from services.embeddings import handler
from shared import registry
from shared.db.ai_state import IndexedDocument
from shared.db.plane import Issue
from shared.embeddings.chunking import Document
from shared.embeddings.index import IndexUnavailable, external_version, index_name
from shared.embeddings.model import DEFAULT_MODEL
from shared.embeddings.pgvector import PgVectorIndex
from shared.embeddings.pipeline import Indexer, Upsert
from shared.events import new_event
from shared.events.producer import EventProducer
from shared.kafka.handler import DependencyUnavailable, HandlerContext
from shared.settings import Settings
from tests.helpers import consumer_thread, dead_letters, processed, seed, wait_until

SPEC = registry.consumer("embeddings")
WS = str(uuid.uuid4())
INDEX = index_name(DEFAULT_MODEL, 384)


def embed(action: str, entity_type: str, entity_id: str, version: object = None, **extra: object):  # type: ignore[no-untyped-def]
    data = {"action": action, "entity_type": entity_type, "entity_id": entity_id, **extra}
    if version is not None:
        data["version"] = str(version)
    return new_event("plane.embed.v1", data)


def produce(settings: Settings, *events) -> None:  # type: ignore[no-untyped-def]
    producer = EventProducer(settings)
    producer.send_many(SPEC.topic, [(e.data["entity_id"], e) for e in events])
    producer.close()


def entity(engine: Engine, entity_type: str, entity_id: str, index: str = INDEX) -> tuple | None:  # type: ignore[type-arg]
    """(version, deleted, [chunk texts]) as the index holds it; None: never seen."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                f"SELECT version, deleted FROM plane_workers.{index}_entities "
                "WHERE entity_type = :t AND entity_id = :i"
            ),
            {"t": entity_type, "i": entity_id},
        ).first()
        if row is None:
            return None
        chunks = conn.execute(
            text(
                f"SELECT text FROM plane_workers.{index}_chunks WHERE entity_type = :t AND entity_id = :i "
                "ORDER BY chunk_index"
            ),
            {"t": entity_type, "i": entity_id},
        ).scalars()
        return (row.version, row.deleted, list(chunks))


def recorded(engine: Engine, entity_id: str, model: str = DEFAULT_MODEL) -> tuple[int, int] | None:
    """(source_version, chunk_count) in indexed_documents."""
    t = IndexedDocument.__table__
    with engine.connect() as conn:
        row = conn.execute(t.select().where(t.c.model_name == model, t.c.entity_id == entity_id)).first()
    return None if row is None else (row.source_version, row.chunk_count)


def chat(entity_id: str, version: int, words: str):  # type: ignore[no-untyped-def]
    return embed("upsert", "external", entity_id, version, workspace_id=WS, text=words)


def test_r25_older_versions_never_overwrite_newer_ones_and_delete_removes_every_chunk(settings, engine):
    """R25 in full, one event per batch (each waits for the previous): v1, v3, v2, v3 again,
    then a delete at v4, and a late v2 after it."""
    key = f"chat-{uuid.uuid4()}"
    long_text = " ".join(f"word{i}" for i in range(700))  # several chunks
    steps = [
        (chat(key, 1, "first draft of the release notes"), (1, False, ["first draft of the release notes"])),
        (chat(key, 3, long_text), None),
        (chat(key, 2, "an older edit that arrived late"), None),
        (chat(key, 3, long_text), None),
        (embed("delete", "external", key, 4), (4, True, [])),
        (chat(key, 2, "an older edit that arrived late"), (4, True, [])),
    ]
    with consumer_thread(SPEC, settings):
        for n, (event, expected) in enumerate(steps, start=1):
            produce(settings, event)
            wait_until(lambda n=n: processed(engine, SPEC.name) == n, 120)
            state = entity(engine, "external", key)
            if expected is not None:
                assert state == expected, (n, state)
            elif n in (2, 3, 4):
                version, deleted, chunks = state  # type: ignore[misc]
                assert (version, deleted) == (3, False) and len(chunks) >= 3, (n, version, len(chunks))
                assert " ".join(chunks).startswith("word0 word1") and "word699" in chunks[-1]
    assert recorded(engine, key) == (4, 0)
    assert dead_letters(settings, SPEC.topic) == []


def test_r25_within_one_batch_the_newest_wins(settings, engine):
    key = f"chat-{uuid.uuid4()}"
    produce(settings, chat(key, 1, "one"), chat(key, 3, "three"), chat(key, 2, "two"), chat(key, 3, "three"))
    with consumer_thread(SPEC, settings):
        wait_until(lambda: processed(engine, SPEC.name) == 4, 120)
    assert entity(engine, "external", key) == (3, False, ["three"])


def test_issues_are_read_from_plane_unchanged_text_is_not_embedded_again(settings, engine):
    _users, issues = seed(engine, 2)
    issue = issues[0]
    v1 = external_version(issue.updated_at)
    # The event's version is not what is indexed: the row's updated_at is (text and version of
    # one row).
    with consumer_thread(SPEC, settings):
        produce(settings, embed("upsert", "issue", str(issue.id), "2020-01-01T00:00:00+00:00"))
        wait_until(lambda: processed(engine, SPEC.name) == 1, 120)
        assert entity(engine, "issue", str(issue.id)) == (v1, False, [f"{issue.name}\n\nissue 1"])

        # Touched, same text: the recorded version moves on, the index keeps its embedding.
        later = issue.updated_at + timedelta(seconds=5)
        with engine.begin() as conn:
            conn.execute(update(Issue).where(Issue.id == issue.id).values(updated_at=later))
        produce(settings, embed("upsert", "issue", str(issue.id)))
        wait_until(lambda: processed(engine, SPEC.name) == 2, 120)
        assert entity(engine, "issue", str(issue.id))[0] == v1  # type: ignore[index]
        assert recorded(engine, str(issue.id)) == (external_version(later), 1)

        # New text: embedded again, under the new version.
        newest = later + timedelta(seconds=5)
        with engine.begin() as conn:
            conn.execute(
                update(Issue)
                .where(Issue.id == issue.id)
                .values(updated_at=newest, description_stripped="checkout fails with a card declined error")
            )
        produce(settings, embed("upsert", "issue", str(issue.id)))
        wait_until(lambda: processed(engine, SPEC.name) == 3, 120)
    version, deleted, chunks = entity(engine, "issue", str(issue.id))  # type: ignore[misc]
    assert (version, deleted) == (external_version(newest), False)
    assert chunks == [f"{issue.name}\n\ncheckout fails with a card declined error"]


def test_a_model_change_embeds_everything_again_into_its_own_index(settings, engine):
    _users, issues = seed(engine, 3)
    events = [embed("upsert", "issue", str(i.id)) for i in issues]
    with consumer_thread(SPEC, settings):
        produce(settings, *events)
        wait_until(lambda: processed(engine, SPEC.name) == 3, 120)
    renamed = replace(settings, embedding_model_name="minilm-retrained")
    other = index_name("minilm-retrained", 384)
    with consumer_thread(SPEC, renamed):
        produce(renamed, *[embed("upsert", "issue", str(i.id)) for i in issues])
        wait_until(lambda: processed(engine, SPEC.name) == 6, 120)
    for issue in issues:
        v = external_version(issue.updated_at)
        assert entity(engine, "issue", str(issue.id), other)[:2] == (v, False)  # type: ignore[index]
        assert recorded(engine, str(issue.id), "minilm-retrained") == (v, 1)
        assert recorded(engine, str(issue.id)) == (v, 1)  # the old model's rows stay valid


def test_vanished_entities_are_removed_not_dead_lettered(settings, engine):
    _users, issues = seed(engine, 2)
    gone, draft = issues
    never = str(uuid.uuid4())
    with consumer_thread(SPEC, settings):
        produce(settings, embed("upsert", "issue", str(gone.id)))
        wait_until(lambda: processed(engine, SPEC.name) == 1, 120)
        assert entity(engine, "issue", str(gone.id))[2]  # type: ignore[index]
        with engine.begin() as conn:
            conn.execute(update(Issue).where(Issue.id == gone.id).values(deleted_at=datetime.now(UTC)))
            conn.execute(update(Issue).where(Issue.id == draft.id).values(is_draft=True))
        # Its soft-delete's upsert arrives with an older version than indexed: removed anyway,
        # since the row, not the event, says it is gone.
        produce(
            settings,
            embed("upsert", "issue", str(gone.id), "2001-01-01T00:00:00Z"),
            embed("upsert", "issue", str(draft.id)),
            embed("upsert", "page", never),
        )
        wait_until(lambda: processed(engine, SPEC.name) == 4, 120)
    v = external_version(gone.updated_at)
    assert entity(engine, "issue", str(gone.id)) == (v, True, [])
    assert entity(engine, "issue", str(draft.id)) == (0, True, [])
    assert entity(engine, "page", never) == (0, True, [])
    assert dead_letters(settings, SPEC.topic) == []


def test_malformed_embed_events_are_dead_lettered_and_the_rest_indexed(settings, engine):
    good = f"chat-{uuid.uuid4()}"
    bad = [
        embed("upsert", "external", "no-text", 1, workspace_id=WS),  # nothing to embed
        embed("upsert", "external", "no-version", workspace_id=WS, text="hello"),
        embed("upsert", "external", "no-workspace", 1, text="hello"),
        embed("upsert", "external", "bad-version", "yesterday", workspace_id=WS, text="x"),
        embed("upsert", "issue", "not-a-uuid"),
    ]
    producer = EventProducer(settings)
    schema_violation = embed("upsert", "issue", str(uuid.uuid4())).to_dict()
    schema_violation["data"]["action"] = "merge"
    producer.send_raw(settings.topic(SPEC.topic), json.dumps(schema_violation).encode(), key=b"x")
    producer.send_raw(settings.topic(SPEC.topic), b"\x00 not json", key=b"y")
    producer.close()
    produce(settings, *bad, chat(good, 7, "the one good event"))
    with consumer_thread(SPEC, settings):
        letters = wait_until(lambda: (d := dead_letters(settings, SPEC.topic)) and len(d) >= 7 and d, 120)
        wait_until(lambda: entity(engine, "external", good) is not None, 60)
    assert entity(engine, "external", good) == (7, False, ["the one good event"])
    classes = sorted(d["headers"]["error-class"] for d in letters)
    assert len(letters) == 7
    assert sum(c.startswith("InvalidEvent.") for c in classes) == 2, classes
    assert classes.count("shared.kafka.handler.PermanentError") == 5, classes


def test_an_index_outage_is_dependency_unavailable_not_poison(settings, engine):
    """The handler's one seam: the process's Indexer, here over a real pgvector adapter whose
    database port refuses connections (as a stopped server does)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    good = handler.indexer(settings, engine)
    dead = PgVectorIndex(
        create_engine("postgresql+psycopg2://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2}),
        name="ai_unreachable",
        dimension=384,
    )
    broken = Indexer(good.encoder, good.chunker, dead)
    doc = Document("external", "x", WS, None, 1, "hello")
    with Session(engine) as session, pytest.raises(IndexUnavailable):
        broken.apply(session.connection(), [Upsert(doc)])
    ctx = HandlerContext(SPEC.name, settings, None, None)  # type: ignore[arg-type]
    with Session(engine) as session:
        ctx.session = session
        original = handler.indexer
        handler.indexer = lambda *_: broken  # type: ignore[assignment]
        try:
            with pytest.raises(DependencyUnavailable):
                handler.handle([chat("x", 1, "hello")], ctx)
        finally:
            handler.indexer = original  # type: ignore[assignment]
