"""`plane.embed.v1` data into a change (shared.embeddings.pipeline), or PermanentError.

The JSON Schema (shared/events/schemas/plane.embed.v1.json) has already checked the shape; what
it cannot say is checked here: a version must parse (ISO 8601 time or digits), issues and pages
are UUIDs, and an entity outside Plane's database carries its own text, version and workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.embeddings.chunking import DOC, Document
from shared.embeddings.index import EntityKey, external_version
from shared.embeddings.sources import DB_TYPES, valid_uuid
from shared.events.envelope import Event
from shared.kafka.handler import PermanentError


@dataclass(frozen=True)
class Request:
    action: str  # upsert | delete
    key: EntityKey
    version: int | None
    # Only for entities outside Plane's database: the document itself.
    inline: Document | None = None

    @property
    def from_database(self) -> bool:
        return self.action == "upsert" and self.inline is None


def parse(event: Event) -> Request:
    data = event.data
    action, entity_type, entity_id = data["action"], data["entity_type"], data["entity_id"]
    key = EntityKey(entity_type, entity_id)
    raw_version = data.get("version")
    try:
        version = None if raw_version in (None, "") else external_version(raw_version)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"version {raw_version!r}: {exc}") from exc
    workspace_id, project_id = data.get("workspace_id"), data.get("project_id")
    for name, value in (("workspace_id", workspace_id), ("project_id", project_id)):
        if value is not None and not valid_uuid(value):
            raise PermanentError(f"{name} {value!r} is not a UUID")
    if entity_type in DB_TYPES:
        if not valid_uuid(entity_id):
            raise PermanentError(f"{entity_type} id {entity_id!r} is not a UUID")
        # Plane's row is the truth for its own entities: inline text, if any, is not used.
        return Request(action, key, version)
    if action == "delete":
        return Request(action, key, version)
    text = data.get("text")
    if text is None:
        raise PermanentError(
            f"an upsert of a {entity_type} must carry its text (only issues and pages are read)"
        )
    if version is None:
        raise PermanentError(f"an upsert of a {entity_type} must carry its version (R25: newer wins)")
    if workspace_id is None and entity_type != DOC:
        raise PermanentError(f"an upsert of a {entity_type} must name its workspace (only docs are global)")
    return Request(
        action, key, version, Document(entity_type, entity_id, workspace_id, project_id, version, text)
    )
