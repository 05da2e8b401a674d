"""soft-deletes: embed deletes derived from what a batch marked, and what counts as a schema change
(no database, no broker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg2.errors
import pytest
from sqlalchemy.exc import ProgrammingError

from services.soft_deletes.handler import EMBEDDINGS_TOPIC, _schema_changed, embed_deletes

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_embed_delete_ids_derive_from_entity_and_stamp() -> None:
    issue, ws, project = (str(uuid.uuid4()) for _ in range(3))
    rows = [{"id": issue, "workspace_id": ws, "project_id": project}]
    ((key, event),) = embed_deletes("issues", rows, STAMP)
    (again,) = embed_deletes("issues", rows, STAMP)  # the replay after a kill: the same id
    (later,) = embed_deletes("issues", rows, datetime(2026, 2, 1, tzinfo=UTC))  # deleted again
    assert key == issue and event.id == again[1].id != later[1].id
    assert event.data == {
        "action": "delete", "entity_type": "issue", "entity_id": issue, "workspace_id": ws,
        "project_id": project, "version": STAMP.isoformat(), "reason": "soft_delete",
    }  # fmt: skip
    ((_, page),) = embed_deletes("pages", [{"id": issue, "workspace_id": ws}], STAMP)
    assert page.data["entity_type"] == "page" and page.data["project_id"] is None
    assert page.id != event.id and EMBEDDINGS_TOPIC == "embeddings"


@pytest.mark.parametrize(
    ("error", "changed"),
    [
        (psycopg2.errors.UndefinedTable, True),
        (psycopg2.errors.UndefinedColumn, True),
        (psycopg2.errors.LockNotAvailable, False),
    ],
)
def test_a_missing_table_or_column_means_the_graph_is_stale(error: type, changed: bool) -> None:
    wrapped = ProgrammingError("SELECT", {}, error("gone"))
    assert _schema_changed(wrapped) is changed
    assert _schema_changed(ValueError("x")) is False
