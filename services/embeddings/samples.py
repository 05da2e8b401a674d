"""Conformance samples for `embeddings`: issues read from Plane's table, and inline documents.

Every third event is an `external` entity (Plane AI's chats carry their own text); the rest are
upserts of seeded issues. The effects read the vector index itself (the pgvector adapter's
entities and chunks tables of the default model) and `indexed_documents`: per entity its version,
whether it is live, its chunk rows and what was recorded. Processing an event twice cannot show
as a duplicate row (chunks are replaced per entity), so the effects also show each chunk's
version: an older event processed after a newer one would regress it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc

from shared.conformance import ConsumerSamples, SampleWorld
from shared.embeddings.index import external_version, index_name
from shared.embeddings.model import DEFAULT_MODEL
from shared.events import new_event
from shared.testing import plane_factory as make

EVENT_TYPE = "plane.embed.v1"
DIMENSION = 384  # all-MiniLM-L6-v2, the default model the consumer loads
ENV = {"EMBEDDING_DEVICE": "cpu", "EMBEDDING_CPU_THREADS": "1"}


def cases(world: SampleWorld) -> ConsumerSamples:
    size = world.scaled(2)  # an encode each, and every restart loads the model
    n_external = size // 3
    _users, issues = make.project_with_issues(world.engine, max(size - n_external, 1))
    events, expected = [], []
    for issue in issues:
        data = {
            "action": "upsert",
            "entity_type": "issue",
            "entity_id": str(issue.id),
            "workspace_id": str(issue.workspace_id),
            "project_id": str(issue.project_id),
            "version": issue.updated_at.isoformat(),
            "reason": "conformance",
        }
        events.append((str(issue.id), new_event(EVENT_TYPE, data)))
        expected.append(("issue", str(issue.id), external_version(issue.updated_at), True, 1, 1))
    workspace = str(issues[0].workspace_id)
    for n in range(n_external):
        entity_id = f"chat-{uuid.UUID(int=world.rng.getrandbits(128))}"
        data = {
            "action": "upsert",
            "entity_type": "external",
            "entity_id": entity_id,
            "workspace_id": workspace,
            "version": str(1000 + n),
            "text": f"conversation {n} about the release checklist and the {n}th deploy",
        }
        events.append((entity_id, new_event(EVENT_TYPE, data)))
        expected.append(("external", entity_id, 1000 + n, True, 1, 1))
    return ConsumerSamples(
        events=events,
        effects=lambda: indexed(world.engine),
        expected=sorted(expected),
        env=ENV,
    )


def indexed(engine: Engine) -> list[tuple[str, str, int, bool, int, int]]:
    """(type, id, version, live, chunk rows at that version, indexed_documents rows) per entity."""
    name = index_name(DEFAULT_MODEL, DIMENSION)
    query = text(
        f"""
        SELECT e.entity_type, e.entity_id, e.version, NOT e.deleted,
               (SELECT count(*) FROM plane_workers.{name}_chunks c
                WHERE c.entity_type = e.entity_type AND c.entity_id = e.entity_id
                  AND c.version = e.version),
               (SELECT count(*) FROM plane_workers.indexed_documents d
                WHERE d.model_name = :model AND d.entity_type = e.entity_type
                  AND d.entity_id = e.entity_id AND d.source_version = e.version)
        FROM plane_workers.{name}_entities e
        """
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"model": DEFAULT_MODEL}).all()
    except sa_exc.ProgrammingError:  # the consumer has not created the index yet
        return []
    return sorted((t, i, int(v), bool(live), int(c), int(d)) for t, i, v, live, c, d in rows)
