"""credit_profiles: the read model of njmc.credit.profile.v1

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.readmodel.tables import JSONDoc

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_profiles",
        sa.Column("subject_id", sa.String(65), primary_key=True),
        sa.Column("subject_kind", sa.String(24), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("counts", JSONDoc, nullable=False),
        sa.Column("cities", JSONDoc, nullable=False),
        sa.Column("active_records", JSONDoc, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_credit_profiles_grade", "credit_profiles", ["grade"])


def downgrade() -> None:
    op.drop_index("ix_credit_profiles_grade", table_name="credit_profiles")
    op.drop_table("credit_profiles")
