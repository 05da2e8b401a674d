"""Plane AI's schedule: what ai-reconcile produced per document, and ai-docs-sync's last commits

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"


def upgrade() -> None:
    op.create_table(
        "live_sync_produced",
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("entity_type", sa.String(40), primary_key=True),
        sa.Column("entity_id", sa.String(1024), primary_key=True),
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("produced_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "live_sync_produced_workspace_idx",
        "live_sync_produced",
        ["model_name", "workspace_id"],
        schema=SCHEMA,
    )
    op.create_table(
        "docs_sync_state",
        sa.Column("source", sa.String(512), primary_key=True),
        sa.Column("last_sha", sa.String(64)),
        sa.Column("files", sa.Integer, server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("retry_after", sa.DateTime(timezone=True)),
        sa.Column("synced_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("docs_sync_state", schema=SCHEMA)
    op.drop_index("live_sync_produced_workspace_idx", table_name="live_sync_produced", schema=SCHEMA)
    op.drop_table("live_sync_produced", schema=SCHEMA)
