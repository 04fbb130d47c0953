"""emergency_reports, emergency_acks, project_plans, milestone_reports: the read model of the
emergency dispatches and acknowledgements and of the cooperation-project list

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.readmodel.tables import JSONDoc

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emergency_reports",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("report_seq", sa.Integer, primary_key=True),
        sa.Column("report_kind", sa.String(8)),
        sa.Column("effective_level", sa.String(3), nullable=False),
        sa.Column("raised_from", sa.String(3)),
        sa.Column("subtype", sa.String(40)),
        sa.Column("location_city", sa.String(6)),
        sa.Column("sender", sa.String(6), nullable=False),
        sa.Column("recipients", JSONDoc, nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "emergency_acks",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("report_seq", sa.Integer, primary_key=True),
        sa.Column("city", sa.String(6), primary_key=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "project_plans",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("lead_city", sa.String(6), nullable=False),
        sa.Column("participating_cities", JSONDoc, nullable=False),
        sa.Column("responsible_unit", sa.Text, nullable=False),
        sa.Column("responsible_person", sa.Text, nullable=False),
        sa.Column("total_investment", sa.String(24), nullable=False),
        sa.Column("plan_year", sa.Integer, nullable=False),
        sa.Column("milestones", JSONDoc, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_project_plans_lead_city", "project_plans", ["lead_city"])
    op.create_table(
        "milestone_reports",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("milestone_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("actual_date", sa.Date),
        sa.Column("progress_pct", sa.Integer),
        sa.Column("issue", sa.Text),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("milestone_reports")
    op.drop_index("ix_project_plans_lead_city", table_name="project_plans")
    op.drop_table("project_plans")
    op.drop_table("emergency_acks")
    op.drop_table("emergency_reports")
