"""sanction_entries and sanction_tracking: the read model of njmc.sanction.list.v1 and .tracking.v1

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.readmodel.tables import JSONDoc

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sanction_entries",
        sa.Column("subject_id", sa.String(65), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("list", sa.String(8), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("measures", JSONDoc, nullable=False),
        sa.Column("applies_in", sa.Text, nullable=False),
        sa.Column("reasons", JSONDoc, nullable=False),
        sa.Column("initiated_by", sa.String(6), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("removal_reason", sa.Text),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sanction_entries_list_status", "sanction_entries", ["list", "status", "subject_id"])
    op.create_table(
        "sanction_tracking",
        sa.Column("subject_id", sa.String(65), primary_key=True),
        sa.Column("list", sa.String(8), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("list_revision", sa.Integer, nullable=False),
        sa.Column("listed_revision", sa.Integer, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("cities", JSONDoc, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sanction_tracking")
    op.drop_index("ix_sanction_entries_list_status", table_name="sanction_entries")
    op.drop_table("sanction_entries")
