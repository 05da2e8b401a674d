"""plane.asset_metadata.v1: Plane's get_asset_object_metadata, S3 HEAD into storage_metadata.

Plane's shape (`ContentType, ContentLength, LastModified, ETag, Metadata`), written without
touching `updated_at` (Plane saves with update_fields=["storage_metadata"]). An object that is not
there is stored as Plane stores it, `null`, with a warning: an outcome, not a retry loop. The HEAD
happens outside any transaction; the event is claimed with the write.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select, update

from services.assets import objects
from shared.db.engine import session_factory
from shared.db.plane import FileAsset
from shared.events import Event
from shared.kafka import claims
from shared.kafka.handler import HandlerContext

log = logging.getLogger(__name__)


class AssetNotFound(LookupError):
    """Retried: the API may publish before its own transaction is visible."""


def handle(event: Event, ctx: HandlerContext) -> None:
    asset_id = uuid.UUID(event.data["asset_id"])
    sessions = session_factory(ctx.settings.database_url)
    with sessions.begin() as session:
        if claims.processed(session, ctx.consumer, event.id):
            return
        asset = session.execute(
            select(FileAsset.asset, FileAsset.deleted_at).where(FileAsset.id == asset_id)
        ).first()
    if asset is None:
        raise AssetNotFound(f"file asset {asset_id} does not exist")
    metadata: dict[str, Any] | None = None
    if asset.deleted_at is None:
        try:
            metadata = objects.head(ctx.settings, asset.asset)
        except objects.ObjectMissing as exc:
            log.warning("file asset %s: %s; storage_metadata set to null as Plane does", asset_id, exc)
    with sessions.begin() as session:
        if not claims.claim(session, ctx.consumer, event.id) or asset.deleted_at is not None:
            return
        session.execute(
            update(FileAsset)
            .where(FileAsset.id == asset_id, FileAsset.deleted_at.is_(None))
            .values(storage_metadata=metadata)
        )
