"""Files, contents, metric indexes and their full-precision vectors.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contents"),
        sa.UniqueConstraint("sha256", name="uq_contents_sha256"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("content_id", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("exif_datetime", sa.String(32), nullable=True),
        sa.Column("orientation", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["content_id"], ["contents.id"], name="fk_images_content_id_contents",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("path", name="uq_images_path"),
    )
    op.create_index("ix_images_content_id", "images", ["content_id"])
    op.create_index("ix_images_status", "images", ["status"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("distance", sa.String(16), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("factory", sa.String(128), nullable=True),
        sa.Column("factory_override", sa.String(128), nullable=True),
        sa.Column("vector_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
        sa.UniqueConstraint("name", name="uq_metrics_name"),
    )
    op.create_table(
        "vectors",
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["metric_id"], ["metrics.id"], name="fk_vectors_metric_id_metrics",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["content_id"], ["contents.id"], name="fk_vectors_content_id_contents",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("metric_id", "content_id", name="pk_vectors"),
    )
    op.create_index("ix_vectors_content_id", "vectors", ["content_id"])


def downgrade() -> None:
    op.drop_table("vectors")
    op.drop_table("metrics")
    op.drop_table("images")
    op.drop_table("contents")
