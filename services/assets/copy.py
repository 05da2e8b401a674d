"""plane.asset_copy.v1: Plane's copy_s3_objects_of_description_and_assets (page duplication).

For each `<image-component src=ASSET>` of the new page's (or issue's) description whose asset
lives in the same workspace and project: a new `file_assets` row for the entity, the S3 object
copied to `{workspace_id}/{hex}-{name}`, the src pointed at the new row; then the live server
converts the new HTML, and its JSON and binary are stored only if it answered well.

Idempotent without a transaction held over S3 or the live call: the new ids are derived from
(entity, original asset), UUID v4-shaped as Plane requires, and so are the keys, so a delivery
that died half-way copies onto the same keys again and inserts nothing new. The rows, the HTML
and the claim commit together, and only if the description is still the one the copy was made
from (else the event is retried against the new one). Differences from Plane: an asset whose
object is missing is skipped with a warning (Plane creates a row pointing at nothing); the
convert call has a deadline; created_by/updated_by of the entity are not nulled.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.assets import description, live, objects
from shared.db.engine import session_factory
from shared.db.plane import FileAsset, Issue, Page, plane_row_defaults
from shared.events import Event
from shared.kafka import claims
from shared.kafka.handler import HandlerContext

log = logging.getLogger(__name__)

MODELS: dict[str, type[Page] | type[Issue]] = {"PAGE": Page, "ISSUE": Issue}
# Plane's get_entity_id_field, for the types whose column can hold a page's or an issue's id: the
# copy points at the entity. (Plane would also write the entity's id into user_id, comment_id...
# for other types: a broken foreign key. Those copies belong to the workspace and project only.)
ENTITY_COLUMN = {
    "ISSUE_ATTACHMENT": "issue_id",
    "ISSUE_DESCRIPTION": "issue_id",
    "PAGE_DESCRIPTION": "page_id",
}
ENTITY_OF_COLUMN = {"issue_id": "ISSUE", "page_id": "PAGE"}


class EntityNotFound(LookupError):
    """Retried: the API may publish before its own transaction is visible."""


class DescriptionChanged(RuntimeError):
    """The description was saved again while the copy ran: retried against the new one."""


@dataclass(frozen=True)
class Original:
    id: uuid.UUID
    asset: str
    attributes: dict[str, Any]
    size: float
    entity_type: str | None
    storage_metadata: Any


def copy_id(entity_id: uuid.UUID, original_id: uuid.UUID) -> uuid.UUID:
    """The copy's id: the same for the same entity and original on every delivery, version 4."""
    digest = hashlib.sha256(f"asset-copy:{entity_id}:{original_id}".encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def handle(event: Event, ctx: HandlerContext) -> None:
    data = event.data
    model = MODELS[data["entity_name"]]
    entity_id = uuid.UUID(data["entity_identifier"])
    project_id = uuid.UUID(data["project_id"])
    sessions = session_factory(ctx.settings.database_url)
    with sessions.begin() as session:
        if claims.processed(session, ctx.consumer, event.id):
            return
        entity = session.execute(
            select(model.workspace_id, model.description_html, model.deleted_at).where(model.id == entity_id)
        ).first()
        if entity is None:
            raise EntityNotFound(f"{data['entity_name'].lower()} {entity_id} does not exist")
        originals = [] if entity.deleted_at else _originals(session, entity, project_id)

    copied: dict[str, str] = {}
    rows = []
    for original in originals:
        new_id = copy_id(entity_id, original.id)
        name = original.attributes.get("name")
        key = f"{entity.workspace_id}/{new_id.hex}-{name}"
        try:
            objects.copy(ctx.settings, original.asset, key)
        except objects.ObjectMissing as exc:
            log.warning("asset %s not copied: %s", original.id, exc)
            continue
        copied[str(original.id)] = str(new_id)
        rows.append(
            _copy_row(
                original,
                new_id,
                key,
                entity.workspace_id,
                project_id,
                data["entity_name"],
                entity_id,
                data["user_id"],
            )
        )
    html = description.replace_sources(entity.description_html or "", copied)
    converted = None if entity.deleted_at else live.convert(ctx.settings, data["entity_name"], html)

    with sessions.begin() as session:
        if not claims.claim(session, ctx.consumer, event.id) or entity.deleted_at is not None:
            return
        values: dict[str, Any] = {"description_html": html, "updated_at": datetime.now(UTC)}
        if converted is not None:
            values |= {
                "description_json": converted.description_json,
                "description_binary": converted.description_binary,
            }
        changed = session.execute(
            update(model)
            .where(model.id == entity_id, model.description_html == entity.description_html)
            .values(values)
        )
        if changed.rowcount != 1:
            raise DescriptionChanged(f"{data['entity_name'].lower()} {entity_id} was saved during the copy")
        if rows:
            session.execute(insert(FileAsset).values(rows).on_conflict_do_nothing(index_elements=["id"]))
    log.info("copied %d of %d assets into %s %s", len(copied), len(originals), data["entity_name"], entity_id)


def _originals(session: Session, entity: Any, project_id: uuid.UUID) -> list[Original]:
    ids = []
    for src in description.image_sources(entity.description_html):
        try:
            ids.append(uuid.UUID(src))
        except ValueError:
            continue  # not an asset id (an external image URL)
    if not ids:
        return []
    found = session.execute(
        select(FileAsset).where(
            FileAsset.workspace_id == entity.workspace_id,
            FileAsset.project_id == project_id,
            FileAsset.id.in_(ids),
            FileAsset.deleted_at.is_(None),
        )
    ).scalars()
    return [
        Original(a.id, a.asset, a.attributes or {}, a.size, a.entity_type, a.storage_metadata) for a in found
    ]


def _copy_row(
    original: Original,
    new_id: uuid.UUID,
    key: str,
    workspace_id: uuid.UUID,
    project_id: uuid.UUID,
    entity_name: str,
    entity_id: uuid.UUID,
    user_id: str,
) -> dict[str, Any]:
    row: dict[str, Any] = plane_row_defaults() | {
        "id": new_id,
        "attributes": {k: original.attributes.get(k) for k in ("name", "type", "size")},
        "asset": key,
        "size": original.size,
        "workspace_id": workspace_id,
        "project_id": project_id,
        "created_by_id": uuid.UUID(user_id),
        "entity_type": original.entity_type,
        "storage_metadata": original.storage_metadata,
        "is_uploaded": True,
        "is_deleted": False,
        "is_archived": False,
    }
    # Every row of the multi-row insert names the same columns.
    row |= {column: None for column in ENTITY_OF_COLUMN}
    column = ENTITY_COLUMN.get(original.entity_type or "")
    if column is not None and ENTITY_OF_COLUMN[column] == entity_name:
        row[column] = entity_id
    return row
