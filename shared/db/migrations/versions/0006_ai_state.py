"""Plane AI state: vectorisation jobs, per-workspace AI settings, indexed documents

The vectors themselves are not here: the pgvector adapter creates its tables (vector(dimension),
HNSW) when it is first used, one set per model, because the dimension is the model's and because
an install that indexes into OpenSearch must be able to migrate without the pgvector extension.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"
ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "vectorization_jobs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", postgresql.JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("checkpoint", postgresql.JSONB),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, server_default=sa.text("0"), nullable=False),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'success', 'failed')", name="vectorization_jobs_status_check"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "vectorization_jobs_one_active_idx",
        "vectorization_jobs",
        ["workspace_id", "model_name"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_index(
        "vectorization_jobs_workspace_created_idx",
        "vectorization_jobs",
        ["workspace_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_table(
        "workspace_ai_settings",
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("plan_source", sa.String(16), nullable=False),
        sa.Column("plan_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("live_sync_enabled", sa.Boolean, server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "plan_source IN ('cli', 'event', 'default')", name="workspace_ai_settings_plan_source_check"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "indexed_documents",
        sa.Column("model_name", sa.String(255), primary_key=True),
        sa.Column("entity_type", sa.String(40), primary_key=True),
        sa.Column("entity_id", sa.String(1024), primary_key=True),
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True)),
        sa.Column("project_id", postgresql.UUID(as_uuid=True)),
        sa.Column("source_version", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("chunk_count", sa.Integer, nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("source_version >= 0", name="indexed_documents_version_check"),
        schema=SCHEMA,
    )
    op.create_index(
        "indexed_documents_workspace_idx",
        "indexed_documents",
        ["model_name", "workspace_id", "entity_type"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("indexed_documents_workspace_idx", table_name="indexed_documents", schema=SCHEMA)
    op.drop_table("indexed_documents", schema=SCHEMA)
    op.drop_table("workspace_ai_settings", schema=SCHEMA)
    op.drop_index("vectorization_jobs_workspace_created_idx", table_name="vectorization_jobs", schema=SCHEMA)
    op.drop_index("vectorization_jobs_one_active_idx", table_name="vectorization_jobs", schema=SCHEMA)
    op.drop_table("vectorization_jobs", schema=SCHEMA)
