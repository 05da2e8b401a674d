"""Alembic environment for the `plane_workers` schema only; Plane's tables are not ours."""

import re

from alembic import context
from sqlalchemy import text

from shared.db import ai_state, state  # noqa: F401  (their models register on StateBase.metadata)
from shared.db.base import STATE_SCHEMA, StateBase
from shared.db.engine import get_engine

# The vector index adapter's own tables (shared/embeddings/pgvector.py creates them at start-up,
# sized to the model): not ours to migrate.
_INDEX_TABLES = re.compile(r"^ai_.+_(entities|chunks)$")

config = context.config


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # Autogenerate must never propose changes to Plane's schema, nor to the index's tables.
    if type_ != "table":
        return True
    return getattr(obj, "schema", STATE_SCHEMA) == STATE_SCHEMA and not _INDEX_TABLES.match(name)


def run_migrations_online() -> None:
    engine = get_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=StateBase.metadata,
            version_table_schema=STATE_SCHEMA,
            include_schemas=True,
            include_object=include_object,
        )
        with context.begin_transaction():
            # Two pods migrating at once: the second waits, then finds nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('plane_workers.migrate'))"))
            context.run_migrations()


run_migrations_online()
