"""Plane's tables this consumer needs that shared/db/plane.py does not model, as Core tables.

Column for column from Plane's schema (../shared/plane-schema), in a MetaData of their own so
nothing creates or drops them; tests/integration/test_notifications.py checks them against the
loaded dump. Indexes are left out: the upserts name their conflict targets (the partial
unique indexes) themselves.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
TIMESTAMPTZ = DateTime(timezone=True)


def _base(name: str, *columns: Column[object]) -> Table:
    """Plane's BaseModel columns (id, timestamps, audit users, soft delete) plus `columns`."""
    return Table(
        name,
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("created_at", TIMESTAMPTZ, nullable=False),
        Column("updated_at", TIMESTAMPTZ, nullable=False),
        Column("created_by_id", Uuid),
        Column("updated_by_id", Uuid),
        Column("deleted_at", TIMESTAMPTZ),
        *columns,
    )


notifications = _base(
    "notifications",
    Column("data", JSONB),
    Column("entity_identifier", Uuid),
    Column("entity_name", String(255), nullable=False),
    Column("title", Text, nullable=False),
    Column("message", JSONB),
    Column("message_html", Text, nullable=False),
    Column("message_stripped", Text),
    Column("sender", String(255), nullable=False),
    Column("read_at", TIMESTAMPTZ),
    Column("snoozed_till", TIMESTAMPTZ),
    Column("archived_at", TIMESTAMPTZ),
    Column("project_id", Uuid),
    Column("receiver_id", Uuid, nullable=False),
    Column("triggered_by_id", Uuid),
    Column("workspace_id", Uuid, nullable=False),
)

issue_subscribers = _base(
    "issue_subscribers",
    Column("issue_id", Uuid, nullable=False),
    Column("project_id", Uuid, nullable=False),
    Column("subscriber_id", Uuid, nullable=False),
    Column("workspace_id", Uuid, nullable=False),
)

issue_mentions = _base(
    "issue_mentions",
    Column("issue_id", Uuid, nullable=False),
    Column("mention_id", Uuid, nullable=False),
    Column("project_id", Uuid, nullable=False),
    Column("workspace_id", Uuid, nullable=False),
)

user_notification_preferences = _base(
    "user_notification_preferences",
    Column("property_change", Boolean, nullable=False),
    Column("state_change", Boolean, nullable=False),
    Column("comment", Boolean, nullable=False),
    Column("mention", Boolean, nullable=False),
    Column("issue_completed", Boolean, nullable=False),
    Column("project_id", Uuid),
    Column("user_id", Uuid, nullable=False),
    Column("workspace_id", Uuid),
)

# Partial unique indexes: "one live row per (issue, user)".
LIVE = "deleted_at IS NULL"
