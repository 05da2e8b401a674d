"""processed_events and job_runs

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(63), primary_key=True),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("processed_events_processed_at_idx", "processed_events", ["processed_at"], schema=SCHEMA)
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("counts", postgresql.JSONB, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("host", sa.String(255)),
        schema=SCHEMA,
    )
    op.create_index("job_runs_job_started_idx", "job_runs", ["job", "started_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("job_runs", schema=SCHEMA)
    op.drop_table("processed_events", schema=SCHEMA)
