"""The events of the contract as typed values: one frozen msgspec Struct per Avro record of `avro/`.

A processor's rules take and give these Structs (`schemas.structs.typed` makes one from the codec's
mapping, `plain` the mapping from one), so that an event's fields are checked by mypy where they
are read.

Each Struct mirrors its `.avsc` field for field: enums are `Literal`s of their symbols, a
`["null", T]` union is `T | None`, and a field with a default in the schema has the same default
here. `tests/unit/test_events.py` holds the two in step.
"""

from __future__ import annotations

import builtins
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

import msgspec

from schemas.structs import Event

SubjectKind = Literal[
    "ENTERPRISE", "INDIVIDUAL_BUSINESS", "SOCIAL_ORG", "PUBLIC_INSTITUTION", "GOVERNMENT_ORGAN", "NATURAL_PERSON"
]
Grade = Literal["A", "B", "C", "D"]
CreditCategory = Literal[
    "ADMIN_LICENSE",
    "ADMIN_PENALTY",
    "SERIOUS_DISHONESTY_LIST",
    "COURT_JUDGMENT_DEFAULTER",
    "ABNORMAL_OPERATION",
    "CREDIT_COMMITMENT",
    "CREDIT_EVALUATION",
    "HONOR",
    "CONTRACT_PERFORMANCE",
]
Polarity = Literal["POSITIVE", "NEUTRAL", "NEGATIVE"]
Severity = Literal["NONE", "MINOR", "GENERAL", "SERIOUS"]
ClosedStatus = Literal["REVOKED", "REPAIRED"]
RecordAction = Literal["PUBLISH", "AMEND", "REVOKE", "REPAIR"]
PenaltyType = Literal[
    "WARNING",
    "CIRCULATE_CRITICISM",
    "FINE",
    "CONFISCATION",
    "SUSPEND_LICENSE",
    "REVOKE_LICENSE",
    "RESTRICT_OPERATION",
    "ORDER_CLOSURE",
    "DETENTION",
]
EmergencyLevel = Literal["I", "II", "III", "IV"]
RecipientReason = Literal["DECLARED", "ADJACENT", "DOWNSTREAM"]
ReportKind = Literal["INITIAL", "UPDATE", "FINAL"]
EmergencyCategory = Literal["NATURAL_DISASTER", "ACCIDENT", "PUBLIC_HEALTH", "SOCIAL_SAFETY"]
EnforcementDomain = Literal[
    "ENVIRONMENT", "MARKET_SUPERVISION", "FISHING_BAN", "ANTI_COUNTERFEIT", "LABOR", "TRANSPORT", "WORK_SAFETY"
]
EnforcementStatus = Literal["PLANNED", "EXECUTED", "CLOSED"]
MilestoneStatus = Literal["NOT_STARTED", "IN_PROGRESS", "DONE", "BLOCKED"]
ProjectCategory = Literal[
    "TRANSPORT", "INDUSTRY", "INNOVATION", "ECOLOGY", "PUBLIC_SERVICE", "OPENING_UP", "SMART_CITY"
]
ListKind = Literal["RED", "FOCUS", "BLACK"]
ListingStatus = Literal["LISTED", "REMOVED"]
FeedbackOutcome = Literal["APPLIED", "HIT", "NOT_APPLICABLE", "OBJECTION"]
FeedbackStatus = Literal["PENDING", "ANSWERED", "LATE", "OVERDUE", "CLOSED"]
AlertKind = Literal["EMERGENCY_ACK_OVERDUE", "MILESTONE_OVERDUE", "SANCTION_FEEDBACK_OVERDUE"]


class Meta(Event, frozen=True, kw_only=True):
    """Envelope shared by every Tongcheng event (DESIGN.md section 3)."""

    event_id: str
    event_type: str
    source_city: str
    source_system: str
    occurred_at: datetime
    published_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


class AuditRead(Event, frozen=True, kw_only=True):
    """One read of a natural person's unmasked data through the HTTP API (audit.read, append-only,
    kept forever). A refinement of DESIGN.md for the PIPL: who read whom, when and why."""

    meta: Meta
    token_id: str
    city: str
    subject_id: str
    purpose: str
    endpoint: str
    read_at: datetime


class ActiveCounts(Event, frozen=True, kw_only=True):
    positive: int
    neutral: int
    negative: int
    minor: int
    general: int
    serious: int


class ActiveRecord(Event, frozen=True, kw_only=True):
    record_id: str
    source_city: str
    category: CreditCategory
    polarity: Polarity
    severity: Severity
    domain: str | None = None
    decision_no: str
    decision_date: date
    active_until: date | None = None


class ClosedRecord(Event, frozen=True, kw_only=True):
    record_id: str
    status: ClosedStatus


class CreditProfile(Event, frozen=True, kw_only=True):
    """The merged credit profile of one subject (credit.profile, derived)."""

    meta: Meta
    subject_id: str
    subject_kind: SubjectKind
    name: str
    grade: Grade
    counts: ActiveCounts
    cities: list[str]
    active_records: list[ActiveRecord]
    closed_records: list[ClosedRecord] = msgspec.field(default_factory=list)
    revision: int
    as_of: datetime


class Subject(Event, frozen=True, kw_only=True):
    """A credit subject: an organisation by USCC, or a natural person as P + sha256(salt + ID number)."""

    subject_id: str
    subject_kind: SubjectKind
    name: str


class Authority(Event, frozen=True, kw_only=True):
    name: str
    uscc: str | None = None


class Evaluation(Event, frozen=True, kw_only=True):
    scheme: str
    grade: str


class CreditRecord(Event, frozen=True, kw_only=True):
    """One public-credit record published by a member city (credit.record)."""

    meta: Meta
    record_id: str
    action: RecordAction
    subject: Subject
    category: CreditCategory
    polarity: Polarity
    severity: Severity
    domain: str | None = None
    decision_no: str
    decision_date: date
    authority: Authority
    legal_basis: str
    content: str
    penalty_types: list[PenaltyType] = msgspec.field(default_factory=list)
    fine_amount: Decimal | None = None
    evaluation: Evaluation | None = None
    valid_until: date | None = None
    publicity_until: date | None = None


class EmergencyAck(Event, frozen=True, kw_only=True):
    """A receiving city confirms one report of an incident (emergency.ack)."""

    meta: Meta
    incident_id: str
    report_seq: int
    city: str
    acknowledged_at: datetime
    actions_taken: list[str] = msgspec.field(default_factory=list)


class Recipient(Event, frozen=True, kw_only=True):
    city: str
    reason: RecipientReason
    ack_deadline: datetime


class EmergencyDispatch(Event, frozen=True, kw_only=True):
    """Who must receive and acknowledge one emergency report, and by when (emergency.dispatch, derived)."""

    meta: Meta
    incident_id: str
    report_seq: int
    effective_level: EmergencyLevel
    raised_from: EmergencyLevel | None = None
    recipients: list[Recipient]
    report_kind: str | None = None
    subtype: str | None = None
    location_city: str | None = None


class Location(Event, frozen=True, kw_only=True):
    city: str
    district: str | None = None
    lat: float | None = None
    lon: float | None = None
    water_body: str | None = None


class Casualties(Event, frozen=True, kw_only=True):
    deaths: int = 0
    injured: int = 0
    evacuated: int = 0


class Reporter(Event, frozen=True, kw_only=True):
    unit: str
    official: str
    contact: str


class EmergencyNotice(Event, frozen=True, kw_only=True):
    """A cross-city emergency notification (emergency.notice)."""

    meta: Meta
    incident_id: str
    report_seq: int
    report_kind: ReportKind
    category: EmergencyCategory
    subtype: str
    level: EmergencyLevel
    location: Location
    description: str
    pollutant: str | None = None
    casualties: Casualties
    affected_cities: list[str] = msgspec.field(default_factory=list)
    requested_actions: list[str] = msgspec.field(default_factory=list)
    reporter: Reporter


class Finding(Event, frozen=True, kw_only=True):
    subject: Subject
    violation: str
    severity: Severity
    decision_no: str | None = None
    penalty_types: list[PenaltyType] = msgspec.field(default_factory=list)
    fine_amount: Decimal | None = None


class EnforcementAction(Event, frozen=True, kw_only=True):
    """One joint enforcement action (enforcement.action)."""

    meta: Meta
    action_id: str
    domain: EnforcementDomain
    lead_city: str
    participating_cities: list[str]
    status: EnforcementStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    targets: list[Subject]
    findings: list[Finding] = msgspec.field(default_factory=list)


class MilestoneReport(Event, frozen=True, kw_only=True):
    """Progress on one milestone of a cooperation project (project.milestone)."""

    meta: Meta
    project_id: str
    milestone_id: str
    status: MilestoneStatus
    actual_date: date | None = None
    progress_pct: int | None = None
    invested_to_date: Decimal | None = None
    issue: str | None = None


class Milestone(Event, frozen=True, kw_only=True):
    milestone_id: str
    title: str
    planned_date: date


class ProjectPlan(Event, frozen=True, kw_only=True):
    """One item of the annual cooperation-project list (project.plan)."""

    meta: Meta
    project_id: str
    name: str
    category: ProjectCategory
    lead_city: str
    participating_cities: list[str] = msgspec.field(default_factory=list)
    responsible_unit: str
    responsible_person: str
    total_investment: Decimal
    plan_year: int
    milestones: list[Milestone]


class Measure(Event, frozen=True, kw_only=True):
    code: str
    applies_in: list[str]


class SanctionEntry(Event, frozen=True, kw_only=True):
    """A subject's entry on the joint reward-and-punishment list (sanction.list, derived)."""

    meta: Meta
    subject_id: str
    name: str
    list: ListKind
    status: ListingStatus
    measures: builtins.list[Measure]
    reasons: builtins.list[str]
    initiated_by: str
    effective_from: datetime
    expires_at: datetime | None = None
    revision: int
    removal_reason: str | None = None


class SanctionFeedback(Event, frozen=True, kw_only=True):
    """A member city reports back on a measure for a listed subject (sanction.feedback)."""

    meta: Meta
    subject_id: str
    list_revision: int
    city: str
    measure_code: str
    outcome: FeedbackOutcome
    business_ref: str | None = None
    reported_at: datetime


class MeasureOutcome(Event, frozen=True, kw_only=True):
    measure_code: str
    outcome: str
    reported_at: datetime
    list_revision: int


class CityFeedback(Event, frozen=True, kw_only=True):
    city: str
    status: FeedbackStatus
    answered_at: datetime | None = None
    alerted_at: datetime | None = None
    outcomes: list[MeasureOutcome]


class SanctionTracking(Event, frozen=True, kw_only=True):
    """Each member city's feedback on a subject's listing (sanction.tracking, derived, compacted).
    A refinement of DESIGN.md: it carries what the sanctions processor decided about
    sanction.feedback, so readers need not repeat its checks."""

    meta: Meta
    subject_id: str
    list: str
    status: str
    list_revision: int
    listed_revision: int
    due_at: datetime | None = None
    cities: builtins.list[CityFeedback]
    version: int


class SupervisionAlert(Event, frozen=True, kw_only=True):
    """An overdue item raised for supervision (supervision.alert, derived)."""

    meta: Meta
    alert_id: str
    kind: AlertKind
    city: str
    ref: str
    due_at: datetime
    raised_at: datetime
