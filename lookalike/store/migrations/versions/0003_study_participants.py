"""Studies that run: public ids and secrets, frozen trial candidates, participants, assignments,
idempotent answers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # plain ALTER TABLE ADD COLUMN (no batch copy) on the parent tables: SQLite, with foreign keys
    # on, would delete every child row (ON DELETE CASCADE) when a batch drops the old table
    op.add_column("studies", sa.Column("public_id", sa.String(64), nullable=True))
    op.add_column("studies", sa.Column("secret", sa.String(128), nullable=True))
    op.add_column("studies", sa.Column("status", sa.String(16), nullable=False, server_default="open"))
    op.add_column("studies", sa.Column("closed_at", TZ, nullable=True))
    op.create_index("ix_studies_public_id", "studies", ["public_id"], unique=True)
    op.add_column("trials", sa.Column("role", sa.String(16), nullable=False, server_default="main"))
    op.add_column("trials", sa.Column("rank", sa.Integer(), nullable=True))
    op.add_column("trials", sa.Column("reference_sha256", sa.String(64), nullable=True))
    op.create_table(
        "trial_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("content_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_trial_images_trial_id_trials",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["content_id"], ["contents.id"], name="fk_trial_images_content_id_contents",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_trial_images"),
        sa.UniqueConstraint("trial_id", "slot", name="uq_trial_images_trial_slot"),
    )
    op.create_index("ix_trial_images_content_id", "trial_images", ["content_id"])
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name="fk_participants_study_id_studies",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_participants"),
        sa.UniqueConstraint("token", name="uq_participants_token"),
        sa.UniqueConstraint("study_id", "external_id", name="uq_participants_study_external"),
    )
    op.create_index("ix_participants_study_id", "participants", ["study_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.Column("first_shown_at", TZ, nullable=True),
        sa.Column("shown_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"],
                                name="fk_assignments_participant_id_participants", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_assignments_trial_id_trials",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_assignments"),
        sa.UniqueConstraint("participant_id", "seq", name="uq_assignments_participant_seq"),
        sa.UniqueConstraint("participant_id", "trial_id", name="uq_assignments_participant_trial"),
    )
    op.create_index("ix_assignments_trial_id", "assignments", ["trial_id"])
    with op.batch_alter_table("judgments") as b:
        b.add_column(sa.Column("participant_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("assignment_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("choice_slot", sa.Integer(), nullable=True))
        b.add_column(sa.Column("positions", sa.JSON(), nullable=True))
        b.add_column(sa.Column("too_fast", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.create_foreign_key("fk_judgments_participant_id_participants", "participants", ["participant_id"],
                             ["id"], ondelete="CASCADE")
        b.create_foreign_key("fk_judgments_assignment_id_assignments", "assignments", ["assignment_id"],
                             ["id"], ondelete="CASCADE")
        b.create_unique_constraint("uq_judgments_assignment_id", ["assignment_id"])
        b.create_unique_constraint("uq_judgments_participant_trial", ["participant_id", "trial_id"])


def downgrade() -> None:
    with op.batch_alter_table("judgments") as b:
        b.drop_constraint("uq_judgments_participant_trial", type_="unique")
        b.drop_constraint("uq_judgments_assignment_id", type_="unique")
        b.drop_constraint("fk_judgments_assignment_id_assignments", type_="foreignkey")
        b.drop_constraint("fk_judgments_participant_id_participants", type_="foreignkey")
        for col in ("too_fast", "positions", "choice_slot", "assignment_id", "participant_id"):
            b.drop_column(col)
    op.drop_table("assignments")
    op.drop_table("participants")
    op.drop_table("trial_images")
    for table, cols in (("trials", ("reference_sha256", "rank", "role")),
                        ("studies", ("closed_at", "status", "secret", "public_id"))):
        if table == "studies":
            op.drop_index("ix_studies_public_id", table_name="studies")
        for col in cols:  # ALTER TABLE DROP COLUMN (SQLite >= 3.35): no batch copy, see upgrade()
            op.drop_column(table, col)
