"""The SQL read model: tables (SQLAlchemy Core) and the projections that fill them from topics.

Alembic owns the schema (services/readmodel/migrations); these table objects describe the newest head and
are what the sink and the API read and write. Each projection maps one event, as its Struct
(schemas/events.py), to one row: a `TableRow` Struct whose fields are the table's columns, which the
sink writes and the API reads back (`ReadModel.rows`); the rows and their JSON documents are typed
in services/readmodel/rows.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from schemas.events import (
    CreditProfile,
    EmergencyAck,
    EmergencyDispatch,
    MilestoneReport,
    ProjectPlan,
    SanctionEntry,
    SanctionTracking,
)
from schemas.structs import Event, typed
from services.readmodel.rows import (
    CreditProfileRow,
    EmergencyAckRow,
    EmergencyReportRow,
    MilestoneReportRow,
    ProjectPlanRow,
    SanctionEntryRow,
    SanctionTrackingRow,
    day,
    instant,
)
from services.readmodel.sql import Projection, RowFn, TableRow

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData()

E = TypeVar("E", bound=Event)
R = TypeVar("R", bound=TableRow)


def projected(schema: type[E], row: Callable[[E, int, int], R]) -> RowFn:
    """`row` of the decoded event (the codec's mapping), made its Struct first: one conversion."""

    def project(decoded: Mapping[str, object], partition: int, offset: int) -> TableRow:
        return row(typed(decoded, schema), partition, offset)

    return project


# --- credit ------------------------------------------------------------------------------------

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


def credit_profile_row(event: CreditProfile, partition: int, offset: int) -> CreditProfileRow:
    c = event.counts
    return CreditProfileRow(
        subject_id=event.subject_id,
        subject_kind=event.subject_kind,
        name=event.name,
        grade=event.grade,
        counts={
            "positive": c.positive,
            "neutral": c.neutral,
            "negative": c.negative,
            "minor": c.minor,
            "general": c.general,
            "serious": c.serious,
        },
        cities=list(event.cities),
        active_records=[
            {
                "record_id": r.record_id,
                "source_city": r.source_city,
                "category": r.category,
                "polarity": r.polarity,
                "severity": r.severity,
                "domain": r.domain,
                "decision_no": r.decision_no,
                "decision_date": r.decision_date.isoformat(),
                "active_until": day(r.active_until),
            }
            for r in event.active_records
        ],
        revision=event.revision,
        as_of=event.as_of,
        event_id=event.meta.event_id,
        source_partition=partition,
        source_offset=offset,
        updated_at=datetime.now(UTC),
    )


CREDIT_PROFILES = Projection(
    "credit.profile", credit_profiles, projected(CreditProfile, credit_profile_row), keys=("subject_id",)
)

# --- sanctions ---------------------------------------------------------------------------------

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


def sanction_entry_row(event: SanctionEntry, partition: int, offset: int) -> SanctionEntryRow:
    cities = sorted({c for m in event.measures for c in m.applies_in})
    return SanctionEntryRow(
        subject_id=event.subject_id,
        name=event.name,
        list=event.list,
        status=event.status,
        measures=[{"code": m.code, "applies_in": list(m.applies_in)} for m in event.measures],
        applies_in="," + ",".join(cities) + ",",
        reasons=list(event.reasons),
        initiated_by=event.initiated_by,
        effective_from=event.effective_from,
        expires_at=event.expires_at,
        revision=event.revision,
        removal_reason=event.removal_reason,
        event_id=event.meta.event_id,
        source_partition=partition,
        source_offset=offset,
        updated_at=datetime.now(UTC),
    )


def sanction_tracking_row(event: SanctionTracking, partition: int, offset: int) -> SanctionTrackingRow:
    return SanctionTrackingRow(
        subject_id=event.subject_id,
        list=event.list,
        status=event.status,
        list_revision=event.list_revision,
        listed_revision=event.listed_revision,
        due_at=event.due_at,
        cities=[
            {
                "city": c.city,
                "status": c.status,
                "answered_at": instant(c.answered_at) if c.answered_at is not None else None,
                "alerted_at": instant(c.alerted_at) if c.alerted_at is not None else None,
                "outcomes": [
                    {
                        "measure_code": o.measure_code,
                        "outcome": o.outcome,
                        "reported_at": instant(o.reported_at),
                        "list_revision": o.list_revision,
                    }
                    for o in c.outcomes
                ],
            }
            for c in event.cities
        ],
        version=event.version,
        updated_at=datetime.now(UTC),
    )


SANCTION_ENTRIES = Projection(
    "sanction.list", sanction_entries, projected(SanctionEntry, sanction_entry_row), keys=("subject_id",)
)
SANCTION_TRACKING = Projection(
    "sanction.tracking",
    sanction_tracking,
    projected(SanctionTracking, sanction_tracking_row),
    keys=("subject_id",),
    version="version",
)

# --- emergencies and projects ------------------------------------------------------------------

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


def emergency_report_row(event: EmergencyDispatch, partition: int, offset: int) -> EmergencyReportRow:
    return EmergencyReportRow(
        incident_id=event.incident_id,
        report_seq=event.report_seq,
        report_kind=event.report_kind,
        effective_level=event.effective_level,
        raised_from=event.raised_from,
        subtype=event.subtype,
        location_city=event.location_city,
        sender=event.meta.source_city,
        recipients=[
            {"city": r.city, "reason": r.reason, "ack_deadline": instant(r.ack_deadline)} for r in event.recipients
        ],
        dispatched_at=event.meta.published_at,
        updated_at=datetime.now(UTC),
    )


def emergency_ack_row(event: EmergencyAck, partition: int, offset: int) -> EmergencyAckRow:
    """Every ack as sent; only those from a report's recipients count (the API joins on them)."""
    return EmergencyAckRow(
        incident_id=event.incident_id,
        report_seq=event.report_seq,
        city=event.city,
        acknowledged_at=event.acknowledged_at,
        updated_at=datetime.now(UTC),
    )


def project_plan_row(event: ProjectPlan, partition: int, offset: int) -> ProjectPlanRow:
    return ProjectPlanRow(
        project_id=event.project_id,
        name=event.name,
        category=event.category,
        lead_city=event.lead_city,
        participating_cities=list(event.participating_cities),
        responsible_unit=event.responsible_unit,
        responsible_person=event.responsible_person,
        total_investment=str(event.total_investment),
        plan_year=event.plan_year,
        milestones=[
            {"milestone_id": m.milestone_id, "title": m.title, "planned_date": m.planned_date.isoformat()}
            for m in event.milestones
        ],
        updated_at=datetime.now(UTC),
    )


def milestone_report_row(event: MilestoneReport, partition: int, offset: int) -> MilestoneReportRow:
    """The newest report per milestone; reports of unknown milestones join nothing."""
    return MilestoneReportRow(
        project_id=event.project_id,
        milestone_id=event.milestone_id,
        status=event.status,
        actual_date=event.actual_date,
        progress_pct=event.progress_pct,
        issue=event.issue,
        reported_at=event.meta.published_at,
        updated_at=datetime.now(UTC),
    )


EMERGENCY_REPORTS = Projection(
    "emergency.dispatch",
    emergency_reports,
    projected(EmergencyDispatch, emergency_report_row),
    keys=("incident_id", "report_seq"),
    version=None,
)
EMERGENCY_ACKS = Projection(
    "emergency.ack",
    emergency_acks,
    projected(EmergencyAck, emergency_ack_row),
    keys=("incident_id", "report_seq", "city"),
    version=None,
)
PROJECT_PLANS = Projection(
    "project.plan", project_plans, projected(ProjectPlan, project_plan_row), keys=("project_id",), version=None
)
MILESTONE_REPORTS = Projection(
    "project.milestone",
    milestone_reports,
    projected(MilestoneReport, milestone_report_row),
    keys=("project_id", "milestone_id"),
    version=None,
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
