"""Declarative bases: one for Plane's tables (never altered by us), one for our own schema."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

STATE_SCHEMA = "plane_workers"


class PlaneBase(DeclarativeBase):
    """Plane's tables in `public`. Mapped read/write, but their DDL belongs to Plane's migrations."""

    metadata = MetaData()


class StateBase(DeclarativeBase):
    """Tables in the `plane_workers` schema, created by our Alembic migrations."""

    metadata = MetaData(schema=STATE_SCHEMA)
