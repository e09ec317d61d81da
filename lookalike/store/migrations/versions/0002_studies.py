"""Indexed roots, and studies of human judgments (2AFC triplets, retrieval preferences).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "roots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("added_at", TZ, nullable=False),
        sa.Column("indexed_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_roots"),
        sa.UniqueConstraint("path", name="uq_roots_path"),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("reference_id", sa.Integer(), nullable=True),
        sa.Column("left_id", sa.Integer(), nullable=True),
        sa.Column("right_id", sa.Integer(), nullable=True),
        sa.Column("left_label", sa.String(128), nullable=True),
        sa.Column("right_label", sa.String(128), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name="fk_trials_study_id_studies",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reference_id"], ["contents.id"], name="fk_trials_reference_id_contents",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["left_id"], ["contents.id"], name="fk_trials_left_id_contents",
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["right_id"], ["contents.id"], name="fk_trials_right_id_contents",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
    )
    op.create_index("ix_trials_study_id", "trials", ["study_id"])
    op.create_table(
        "judgments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(128), nullable=False),
        sa.Column("choice", sa.String(16), nullable=False),
        sa.Column("swapped", sa.Boolean(), nullable=False),
        sa.Column("shown_at", TZ, nullable=True),
        sa.Column("answered_at", TZ, nullable=False),
        sa.Column("response_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_judgments_trial_id_trials",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_judgments"),
    )
    op.create_index("ix_judgments_trial_id", "judgments", ["trial_id"])
    op.create_index("ix_judgments_participant_trial", "judgments", ["participant", "trial_id"])


def downgrade() -> None:
    op.drop_table("judgments")
    op.drop_table("trials")
    op.drop_table("studies")
    op.drop_table("roots")
