"""soft-deletes: the subtree a cascade collected, kept between its calls

One `soft_delete_subtrees` row per root being cascaded (its stamp, phase and collection cursor),
one `soft_delete_subtree_rows` row per row of Plane's found under it (by layer), and the marked
issues and pages whose embed deletes are still to be sent (layer -1). Real tables, not a
temporary one: a cascade's collection spans calls, and a temporary table needs a session that
outlives a transaction, which a transaction-pooling PgBouncer does not give.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "plane_workers"


def upgrade() -> None:
    op.create_table(
        "soft_delete_subtrees",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("root_table", sa.String(63), nullable=False),
        sa.Column("root_id", sa.String(64), nullable=False),
        sa.Column("stamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("layer", sa.Integer, server_default=sa.text("0"), nullable=False),
        sa.Column("cursor", postgresql.JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "phase IN ('collecting', 'marking', 'discarded')", name="soft_delete_subtrees_phase_check"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "soft_delete_subtrees_one_per_root_idx",
        "soft_delete_subtrees",
        ["root_table", "root_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("phase <> 'discarded'"),
    )
    op.create_index(
        "soft_delete_subtrees_updated_at_idx", "soft_delete_subtrees", ["updated_at"], schema=SCHEMA
    )
    op.create_table(
        "soft_delete_subtree_rows",
        sa.Column("subtree_id", sa.BigInteger, primary_key=True),
        sa.Column("tbl", sa.String(63, collation="C"), primary_key=True),
        sa.Column("id", sa.String(64, collation="C"), primary_key=True),
        sa.Column("layer", sa.Integer, nullable=False),
        sa.Column("extra", postgresql.JSONB),
        schema=SCHEMA,
    )
    op.create_index(
        "soft_delete_subtree_rows_layer_idx",
        "soft_delete_subtree_rows",
        ["subtree_id", "layer", "tbl", "id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("soft_delete_subtree_rows_layer_idx", table_name="soft_delete_subtree_rows", schema=SCHEMA)
    op.drop_table("soft_delete_subtree_rows", schema=SCHEMA)
    op.drop_index("soft_delete_subtrees_updated_at_idx", table_name="soft_delete_subtrees", schema=SCHEMA)
    op.drop_index("soft_delete_subtrees_one_per_root_idx", table_name="soft_delete_subtrees", schema=SCHEMA)
    op.drop_table("soft_delete_subtrees", schema=SCHEMA)
