"""The read model's rows and JSON documents, typed: what the projections write and the API reads.

A `TableRow` Struct has one field per column of its table (services/readmodel/tables.py); a JSON
column holds a document typed here (`CountsDoc`, `MeasureDoc`, ...): the event's nested records as
JSON, as `schemas.convert.to_json` writes them (instants ISO-8601 UTC to the millisecond, dates
ISO). `credit_profile_json` and `sanction_entry_json` are a row as the API shows it.
"""

from __future__ import annotations

import builtins
from datetime import UTC, date, datetime
from typing import NotRequired, TypedDict

from schemas.convert import to_json
from schemas.events import (
    CreditCategory,
    EmergencyLevel,
    FeedbackStatus,
    Grade,
    ListingStatus,
    ListKind,
    MilestoneStatus,
    Polarity,
    ProjectCategory,
    RecipientReason,
    Severity,
    SubjectKind,
)
from services.readmodel.sql import TableRow


def instant(value: datetime) -> str:
    """An instant in a JSON document, as `schemas.convert.to_json` writes it: UTC, to the millisecond."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class CountsDoc(TypedDict):
    positive: int
    neutral: int
    negative: int
    minor: int
    general: int
    serious: int


class ActiveRecordDoc(TypedDict):
    record_id: str
    source_city: str
    category: CreditCategory
    polarity: Polarity
    severity: Severity
    domain: str | None
    decision_no: str
    decision_date: str
    active_until: str | None


class CreditProfileRow(TableRow, frozen=True, kw_only=True):
    subject_id: str
    subject_kind: SubjectKind
    name: str
    grade: Grade
    counts: CountsDoc
    cities: list[str]
    active_records: list[ActiveRecordDoc]
    revision: int
    as_of: datetime
    event_id: str
    source_partition: int
    source_offset: int
    updated_at: datetime


class SubjectBody(TypedDict):
    """What the API answers about one subject. A natural person's is `masked` unless the caller may
    see it in full (services/api/privacy.py)."""

    subject_id: str
    name: str
    #: the resident ID number a natural person was looked up by (POST /v1/credit/lookup)
    id_number: NotRequired[str]
    masked: NotRequired[bool]


class CreditProfileBody(SubjectBody):
    """The CreditProfile fields, without meta."""

    subject_kind: SubjectKind
    grade: Grade
    counts: CountsDoc
    cities: list[str]
    active_records: list[ActiveRecordDoc]
    revision: int
    as_of: str


class MeasureDoc(TypedDict):
    code: str
    applies_in: list[str]


class MeasureOutcomeDoc(TypedDict):
    measure_code: str
    outcome: str
    reported_at: str
    list_revision: int


class CityFeedbackDoc(TypedDict):
    city: str
    status: FeedbackStatus
    answered_at: str | None
    alerted_at: str | None
    outcomes: list[MeasureOutcomeDoc]


class SanctionEntryRow(TableRow, frozen=True, kw_only=True):
    subject_id: str
    name: str
    list: ListKind
    status: ListingStatus
    measures: builtins.list[MeasureDoc]
    applies_in: str
    reasons: builtins.list[str]
    initiated_by: str
    effective_from: datetime
    expires_at: datetime | None
    revision: int
    removal_reason: str | None
    event_id: str
    source_partition: int
    source_offset: int
    updated_at: datetime


class SanctionTrackingRow(TableRow, frozen=True, kw_only=True):
    subject_id: str
    list: str
    status: str
    list_revision: int
    listed_revision: int
    due_at: datetime | None
    cities: builtins.list[CityFeedbackDoc]
    version: int
    updated_at: datetime


class SanctionEntryBody(SubjectBody):
    """The SanctionEntry fields, without meta."""

    list: ListKind
    status: ListingStatus
    measures: builtins.list[MeasureDoc]
    reasons: builtins.list[str]
    initiated_by: str
    effective_from: str
    expires_at: str | None
    revision: int
    removal_reason: str | None


class RecipientDoc(TypedDict):
    city: str
    reason: RecipientReason
    ack_deadline: str


class MilestoneDoc(TypedDict):
    milestone_id: str
    title: str
    planned_date: str


class EmergencyReportRow(TableRow, frozen=True, kw_only=True):
    incident_id: str
    report_seq: int
    report_kind: str | None
    effective_level: EmergencyLevel
    raised_from: EmergencyLevel | None
    subtype: str | None
    location_city: str | None
    sender: str
    recipients: list[RecipientDoc]
    dispatched_at: datetime
    updated_at: datetime


class EmergencyAckRow(TableRow, frozen=True, kw_only=True):
    incident_id: str
    report_seq: int
    city: str
    acknowledged_at: datetime
    updated_at: datetime


class ProjectPlanRow(TableRow, frozen=True, kw_only=True):
    project_id: str
    name: str
    category: ProjectCategory
    lead_city: str
    participating_cities: list[str]
    responsible_unit: str
    responsible_person: str
    #: the decimal amount as its text
    total_investment: str
    plan_year: int
    milestones: list[MilestoneDoc]
    updated_at: datetime


class MilestoneReportRow(TableRow, frozen=True, kw_only=True):
    project_id: str
    milestone_id: str
    status: MilestoneStatus
    actual_date: date | None
    progress_pct: int | None
    issue: str | None
    reported_at: datetime
    updated_at: datetime


def credit_profile_json(row: CreditProfileRow) -> CreditProfileBody:
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


def sanction_entry_json(row: SanctionEntryRow) -> SanctionEntryBody:
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
