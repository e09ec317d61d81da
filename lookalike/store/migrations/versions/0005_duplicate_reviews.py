"""A reviewer's decisions on near-duplicate groups ("not the same photo", the copy to keep), which
the app kept in a ``ui-reviews.json`` file in the library folder before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "duplicate_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("a_id", sa.Integer(), nullable=False),
        sa.Column("b_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("paths", sa.JSON(), nullable=True),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["a_id"], ["contents.id"], name="fk_duplicate_verdicts_a_id_contents",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["b_id"], ["contents.id"], name="fk_duplicate_verdicts_b_id_contents",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_duplicate_verdicts"),
        sa.UniqueConstraint("a_id", "b_id", name="uq_duplicate_verdicts_pair"),
    )
    op.create_index("ix_duplicate_verdicts_b_id", "duplicate_verdicts", ["b_id"])
    op.create_table(
        "duplicate_keeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_key", sa.String(256), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["content_id"], ["contents.id"], name="fk_duplicate_keeps_content_id_contents",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_duplicate_keeps"),
        sa.UniqueConstraint("group_key", name="uq_duplicate_keeps_group_key"),
    )
    op.create_index("ix_duplicate_keeps_content_id", "duplicate_keeps", ["content_id"])


def downgrade() -> None:
    op.drop_index("ix_duplicate_keeps_content_id", table_name="duplicate_keeps")
    op.drop_table("duplicate_keeps")
    op.drop_index("ix_duplicate_verdicts_b_id", table_name="duplicate_verdicts")
    op.drop_table("duplicate_verdicts")
