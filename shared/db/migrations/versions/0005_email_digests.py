"""email_digests: each email-digest mail's intent, recorded before it is sent

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"


def upgrade() -> None:
    op.create_table(
        "email_digests",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("receiver_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("issue_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("log_ids", postgresql.ARRAY(postgresql.UUID(as_uuid=True)), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index(
        "email_digests_sending_idx",
        "email_digests",
        ["receiver_id", "issue_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_index("email_digests_created_at_idx", "email_digests", ["created_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("email_digests_created_at_idx", table_name="email_digests", schema=SCHEMA)
    op.drop_index("email_digests_sending_idx", table_name="email_digests", schema=SCHEMA)
    op.drop_table("email_digests", schema=SCHEMA)
