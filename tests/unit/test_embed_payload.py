"""plane.embed.v1 data into changes (services/embeddings/payload.py) and the newest-change rule
(shared/embeddings/pipeline.newest), without a model or a database."""

from __future__ import annotations

import uuid

import pytest

from services.embeddings.payload import parse
from shared.embeddings.chunking import Document
from shared.embeddings.index import EntityKey, external_version
from shared.embeddings.pipeline import Remove, Upsert, newest
from shared.events import new_event
from shared.kafka.handler import PermanentError

WS, ISSUE_ID = str(uuid.uuid4()), str(uuid.uuid4())


def event(**data: object):  # type: ignore[no-untyped-def]
    return new_event("plane.embed.v1", {"action": "upsert", **data})


def test_issues_are_read_from_plane_and_their_inline_text_ignored():
    request = parse(event(entity_type="issue", entity_id=ISSUE_ID, version="2026-01-02T03:04:05Z", text="x"))
    assert request.from_database and request.inline is None
    assert request.version == external_version("2026-01-02T03:04:05+00:00")


def test_inline_entities_carry_their_document():
    request = parse(
        event(entity_type="external", entity_id="chat-1", workspace_id=WS, version="7", text="hi")
    )
    assert not request.from_database
    assert request.inline == Document("external", "chat-1", WS, None, 7, "hi")
    docs = parse(event(entity_type="doc", entity_id="docs/setup.md", version="3", text="# Setup"))
    assert docs.inline is not None and docs.inline.workspace_id is None  # documentation is global


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"entity_type": "issue", "entity_id": "PROJ-12"}, "not a UUID"),
        ({"entity_type": "external", "entity_id": "c", "workspace_id": WS, "version": "1"}, "carry its text"),
        ({"entity_type": "external", "entity_id": "c", "workspace_id": WS, "text": "t"}, "carry its version"),
        ({"entity_type": "external", "entity_id": "c", "version": "1", "text": "t"}, "name its workspace"),
        (
            {"entity_type": "external", "entity_id": "c", "workspace_id": WS, "version": "soon", "text": "t"},
            "version",
        ),
    ],
)
def test_what_can_never_be_indexed_is_a_permanent_error(data: dict, reason: str):
    with pytest.raises(PermanentError, match=reason):
        parse(event(**data))


def test_a_delete_needs_neither_text_nor_version():
    request = parse(
        new_event("plane.embed.v1", {"action": "delete", "entity_type": "external", "entity_id": "c"})
    )
    assert (request.action, request.version, request.inline) == ("delete", None, None)


def doc(version: int, text: str = "t") -> Upsert:
    return Upsert(Document("external", "a", WS, None, version, text))


def test_newest_is_what_applying_in_order_leaves():
    key = EntityKey("external", "a")
    first_three = doc(3, "first")
    assert newest([doc(1), first_three, doc(2), doc(3, "second")]) == [first_three]  # a repeat is not newer
    assert newest([doc(1), Remove(key, 4), doc(2)]) == [Remove(key, 4)]
    assert newest([doc(9), Remove(key, None), doc(10)]) == [Remove(key, None)]  # the source says gone
    other = Upsert(Document("external", "b", WS, None, 1, "b"))
    assert newest([doc(1), other]) == [doc(1), other]
