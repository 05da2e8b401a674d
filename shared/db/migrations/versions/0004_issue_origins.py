"""issue_origins: the request origin of an issue's last activity, for e-mail links

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"


def upgrade() -> None:
    op.create_table(
        "issue_origins",
        sa.Column("issue_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("origin", sa.String(2048), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("issue_origins", schema=SCHEMA)
