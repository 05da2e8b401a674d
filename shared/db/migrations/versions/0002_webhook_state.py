"""webhook_deliveries and webhook_endpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("webhook_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("envelope", sa.LargeBinary),
        schema=SCHEMA,
    )
    for name, columns in (
        ("webhook_deliveries_webhook_time_idx", ["webhook_id", "event_time"]),
        ("webhook_deliveries_finished_at_idx", ["finished_at"]),
    ):
        op.create_index(name, "webhook_deliveries", columns, schema=SCHEMA)
    op.create_table(
        "webhook_endpoints",
        sa.Column("webhook_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("first_failure_at", sa.DateTime(timezone=True)),
        sa.Column("last_success_at", sa.DateTime(timezone=True)),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("current_secret", sa.String(255)),
        sa.Column("retired_keys", postgresql.JSONB, nullable=False, server_default="[]"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("webhook_endpoints", schema=SCHEMA)
    op.drop_table("webhook_deliveries", schema=SCHEMA)
