"""Make a database and a broker ready for the workers: Plane's tables, our schema, the topics."""

from __future__ import annotations

import logging

from sqlalchemy import inspect

from shared.db.base import PlaneBase
from shared.db.engine import get_engine
from shared.db.migrate import upgrade
from shared.db.plane_schema import find_plane_schema_sql, load_plane_schema
from shared.kafka.topics import create_topics
from shared.settings import Settings

log = logging.getLogger(__name__)


def ensure_plane_tables(url: str) -> str:
    """Create Plane's schema in a database that has none; returns how it was obtained.

    For local use only (dev, demo, tests): in production Plane's own migrations own these tables.
    Prefers Plane's real dump; without it, our models' `create_all` (tested to reflect the same).
    """
    if inspect(get_engine(url)).has_table("issues"):
        return "existing"
    sql = find_plane_schema_sql()
    if sql is not None:
        load_plane_schema(url, sql)
        return f"loaded {sql.name}"
    PlaneBase.metadata.create_all(get_engine(url))
    return "created from plane-workers' models (Plane's dump not found)"


def prepare(settings: Settings) -> None:
    how = ensure_plane_tables(settings.database_url)
    log.info("Plane schema: %s", how)
    upgrade(settings.database_url)
    create_topics(settings)
