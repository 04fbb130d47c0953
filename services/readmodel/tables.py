"""The SQL read model: tables (SQLAlchemy Core) and the projections that fill them from topics.

Alembic owns the schema (services/readmodel/migrations); these table objects describe the newest head and
are what the sink and the API read and write. Each projection maps one decoded event to one row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from schemas.convert import to_json
from services.readmodel.sql import Projection

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData()

credit_profiles = sa.Table(
    "credit_profiles",
    metadata,
    sa.Column("subject_id", sa.String(65), primary_key=True),
    sa.Column("subject_kind", sa.String(24), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("grade", sa.String(1), nullable=False, index=True),
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


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def credit_profile_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    return {
        "subject_id": event["subject_id"],
        "subject_kind": event["subject_kind"],
        "name": event["name"],
        "grade": event["grade"],
        "counts": dict(event["counts"]),
        "cities": list(event["cities"]),
        "active_records": to_json(event["active_records"]),
        "revision": event["revision"],
        "as_of": event["as_of"],
        "event_id": event["meta"]["event_id"],
        "source_partition": partition,
        "source_offset": offset,
        "updated_at": datetime.now(UTC),
    }


def credit_profile_json(row: Any) -> dict[str, Any]:
    """One credit_profiles row as the API's JSON (the CreditProfile fields, without meta)."""
    return {
        "subject_id": row.subject_id,
        "subject_kind": row.subject_kind,
        "name": row.name,
        "grade": row.grade,
        "counts": row.counts,
        "cities": row.cities,
        "active_records": row.active_records,
        "revision": row.revision,
        "as_of": to_json(utc(row.as_of)),
    }


CREDIT_PROFILES = Projection("credit.profile", credit_profiles, credit_profile_row, keys=("subject_id",))

sanction_entries = sa.Table(
    "sanction_entries",
    metadata,
    sa.Column("subject_id", sa.String(65), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("list", sa.String(8), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("measures", JSONDoc, nullable=False),
    #: the cities any measure applies in, as ",320100,320200,": a portable `city=` filter
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
    sa.Index("ix_sanction_entries_list_status", "list", "status", "subject_id"),
)

sanction_tracking = sa.Table(
    "sanction_tracking",
    metadata,
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


def sanction_entry_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    cities = sorted({c for m in event["measures"] for c in m["applies_in"]})
    return {
        "subject_id": event["subject_id"],
        "name": event["name"],
        "list": event["list"],
        "status": event["status"],
        "measures": to_json(event["measures"]),
        "applies_in": "," + ",".join(cities) + ",",
        "reasons": list(event["reasons"]),
        "initiated_by": event["initiated_by"],
        "effective_from": event["effective_from"],
        "expires_at": event["expires_at"],
        "revision": event["revision"],
        "removal_reason": event["removal_reason"],
        "event_id": event["meta"]["event_id"],
        "source_partition": partition,
        "source_offset": offset,
        "updated_at": datetime.now(UTC),
    }


def sanction_entry_json(row: Any) -> dict[str, Any]:
    """One sanction_entries row as the API's JSON (the SanctionEntry fields, without meta)."""
    return {
        "subject_id": row.subject_id,
        "name": row.name,
        "list": row.list,
        "status": row.status,
        "measures": row.measures,
        "reasons": row.reasons,
        "initiated_by": row.initiated_by,
        "effective_from": to_json(utc(row.effective_from)),
        "expires_at": to_json(utc(row.expires_at)) if row.expires_at else None,
        "revision": row.revision,
        "removal_reason": row.removal_reason,
    }


def sanction_tracking_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    return {
        "subject_id": event["subject_id"],
        "list": event["list"],
        "status": event["status"],
        "list_revision": event["list_revision"],
        "listed_revision": event["listed_revision"],
        "due_at": event["due_at"],
        "cities": to_json(event["cities"]),
        "version": event["version"],
        "updated_at": datetime.now(UTC),
    }


SANCTION_ENTRIES = Projection("sanction.list", sanction_entries, sanction_entry_row, keys=("subject_id",))
SANCTION_TRACKING = Projection(
    "sanction.tracking", sanction_tracking, sanction_tracking_row, keys=("subject_id",), version="version"
)

emergency_reports = sa.Table(
    "emergency_reports",
    metadata,
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

emergency_acks = sa.Table(
    "emergency_acks",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("report_seq", sa.Integer, primary_key=True),
    sa.Column("city", sa.String(6), primary_key=True),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

project_plans = sa.Table(
    "project_plans",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("lead_city", sa.String(6), nullable=False, index=True),
    sa.Column("participating_cities", JSONDoc, nullable=False),
    sa.Column("responsible_unit", sa.Text, nullable=False),
    sa.Column("responsible_person", sa.Text, nullable=False),
    sa.Column("total_investment", sa.String(24), nullable=False),
    sa.Column("plan_year", sa.Integer, nullable=False),
    sa.Column("milestones", JSONDoc, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

milestone_reports = sa.Table(
    "milestone_reports",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("milestone_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("actual_date", sa.Date),
    sa.Column("progress_pct", sa.Integer),
    sa.Column("issue", sa.Text),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def emergency_report_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    return {
        "incident_id": event["incident_id"],
        "report_seq": event["report_seq"],
        "report_kind": event.get("report_kind"),
        "effective_level": event["effective_level"],
        "raised_from": event["raised_from"],
        "subtype": event.get("subtype"),
        "location_city": event.get("location_city"),
        "sender": event["meta"]["source_city"],
        "recipients": to_json(event["recipients"]),
        "dispatched_at": event["meta"]["published_at"],
        "updated_at": datetime.now(UTC),
    }


def emergency_ack_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    """Every ack as sent; only those from a report's recipients count (the API joins on them)."""
    return {
        "incident_id": event["incident_id"],
        "report_seq": event["report_seq"],
        "city": event["city"],
        "acknowledged_at": event["acknowledged_at"],
        "updated_at": datetime.now(UTC),
    }


def project_plan_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    return {
        "project_id": event["project_id"],
        "name": event["name"],
        "category": event["category"],
        "lead_city": event["lead_city"],
        "participating_cities": list(event["participating_cities"]),
        "responsible_unit": event["responsible_unit"],
        "responsible_person": event["responsible_person"],
        "total_investment": str(event["total_investment"]),
        "plan_year": event["plan_year"],
        "milestones": to_json(event["milestones"]),
        "updated_at": datetime.now(UTC),
    }


def milestone_report_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    """The newest report per milestone; reports of unknown milestones join nothing."""
    return {
        "project_id": event["project_id"],
        "milestone_id": event["milestone_id"],
        "status": event["status"],
        "actual_date": event["actual_date"],
        "progress_pct": event["progress_pct"],
        "issue": event["issue"],
        "reported_at": event["meta"]["published_at"],
        "updated_at": datetime.now(UTC),
    }


EMERGENCY_REPORTS = Projection(
    "emergency.dispatch", emergency_reports, emergency_report_row, keys=("incident_id", "report_seq"), version=None
)
EMERGENCY_ACKS = Projection(
    "emergency.ack", emergency_acks, emergency_ack_row, keys=("incident_id", "report_seq", "city"), version=None
)
PROJECT_PLANS = Projection("project.plan", project_plans, project_plan_row, keys=("project_id",), version=None)
MILESTONE_REPORTS = Projection(
    "project.milestone", milestone_reports, milestone_report_row, keys=("project_id", "milestone_id"), version=None
)

#: every projection the read-model worker runs, by event type
PROJECTIONS: dict[str, Projection] = {
    p.event_type: p
    for p in (
        CREDIT_PROFILES,
        SANCTION_ENTRIES,
        SANCTION_TRACKING,
        EMERGENCY_REPORTS,
        EMERGENCY_ACKS,
        PROJECT_PLANS,
        MILESTONE_REPORTS,
    )
}
