"""Credit rules as pure functions of (state, event, date): actions, activity, grade (DESIGN.md section 5).

The state is a frozen `CreditState` (services/credit/state.py), never changed in place: each rule
returns a new one. Events in and out are the contract's Structs (schemas/events.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal, TypeAlias, get_args

from msgspec.structs import replace

from schemas.errors import ConfigError, Reason, Rejected
from schemas.events import (
    ActiveCounts,
    ActiveRecord,
    ClosedRecord,
    CreditCategory,
    CreditProfile,
    CreditRecord,
    Grade,
    Meta,
    Severity,
    Subject,
)
from services.credit.state import CreditRecordState, CreditState, packed_id
from topics.datafile import check_sources, read_json
from topics.localtime import local_date

RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "credit_rules.json"
#: the categories and severities of the contract (schemas/avro/CreditRecord.avsc, Severity.avsc)
CATEGORIES: frozenset[str] = frozenset(get_args(CreditCategory))
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
_DURATION = re.compile(r"^P(\d+)([YM])$")
MAX_EVENT_IDS = 1000  # per subject: redelivery arrives within this horizon
#: a category's period of publicity: months; months by severity; until the record's `valid_until`;
#: or (None) until the record is revoked
Publicity: TypeAlias = int | dict[str, int] | Literal["valid_until"] | None


def add_months(day: date, months: int) -> date:
    """The last day of a period of `months` months that begins on `day`: the same day of the month
    `months` later, or that month's last day when it has no such day (31 January + 3 months is
    30 April; 29 February + 12 months is 28 February). The Civil Code's count, arts. 201-202."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)


def _months(duration: str, where: str) -> int:
    m = _DURATION.match(duration)
    if not m:
        raise ConfigError(f"{where}: {duration!r} is not a duration like P3M or P1Y")
    return int(m.group(1)) * (12 if m.group(2) == "Y" else 1)


@dataclass(frozen=True)
class CreditRules:
    safety_domains: frozenset[str]
    safety_minimum_months: int
    publicity: dict[str, Publicity]  # by category
    repair_min_months: int
    repair_min_safety_months: int
    #: each entry's source, by its path in the file (`publicity.ADMIN_PENALTY.MINOR`, ...)
    sources: dict[str, str]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> CreditRules:
        raw = read_json(path, "credit rules")
        try:
            publicity: dict[str, Publicity] = {}
            for category, value in raw["publicity"].items():
                where = f"{path}: publicity.{category}"
                if category not in CATEGORIES:
                    raise ConfigError(f"{where}: unknown category")
                if isinstance(value, dict):
                    unrated = set(SEVERITIES) - set(value)
                    if unrated:
                        raise ConfigError(f"{where}: no period for severity {', '.join(sorted(unrated))}")
                    publicity[category] = {s: _months(v, f"{where}.{s}") for s, v in value.items()}
                elif value is None or value == "valid_until":
                    publicity[category] = value
                else:
                    publicity[category] = _months(value, where)
            missing = CATEGORIES - set(publicity)
            if missing:
                raise ConfigError(f"{path}: publicity has no entry for {', '.join(sorted(missing))}")
            entries = ["safety_domains", "safety_minimum", "repair_minimum.default", "repair_minimum.safety"]
            for category, value in raw["publicity"].items():
                entries += (
                    [f"publicity.{category}.{s}" for s in value]
                    if isinstance(value, dict)
                    else [f"publicity.{category}"]
                )
            sources = check_sources(raw, entries, path)
            return cls(
                safety_domains=frozenset(raw["safety_domains"]),
                safety_minimum_months=_months(raw["safety_minimum"], f"{path}: safety_minimum"),
                publicity=publicity,
                repair_min_months=_months(raw["repair_minimum"]["default"], f"{path}: repair_minimum.default"),
                repair_min_safety_months=_months(raw["repair_minimum"]["safety"], f"{path}: repair_minimum.safety"),
                sources=sources,
            )
        except KeyError as exc:
            raise ConfigError(f"{path}: missing key {exc}") from exc

    def active_until(self, record: CreditRecordState) -> date | None:
        """Last day of publicity; None while it runs until revoked."""
        if record.publicity_until is not None:
            return record.publicity_until
        rule = self.publicity[record.category]
        if rule is None:
            return None
        if isinstance(rule, str):  # "valid_until"
            return record.valid_until
        months = rule[record.severity] if isinstance(rule, dict) else rule
        if record.category == "ADMIN_PENALTY" and record.domain in self.safety_domains:
            months = max(months, self.safety_minimum_months)
        return add_months(record.decision_date, months)

    def is_active(self, record: CreditRecordState, today: date) -> bool:
        if record.status != "ACTIVE":
            return False
        until = self.active_until(record)
        return until is None or today <= until

    def repair_allowed_from(self, record: CreditRecordState) -> date:
        """The first local day a REPAIR is accepted: the day after the minimum period's last day
        (the period has passed only when its last day has ended, Civil Code art. 203)."""
        months = self.repair_min_safety_months if record.domain in self.safety_domains else self.repair_min_months
        return add_months(record.decision_date, months) + timedelta(days=1)


def new_state(subject: Subject) -> CreditState:
    return CreditState(
        subject_id=subject.subject_id,
        subject_kind=subject.subject_kind,
        name=subject.name,
        records={},
        event_ids=(),
        revision=0,
        grade=None,
        active=(),
    )


def _record_from(event: CreditRecord) -> CreditRecordState:
    return CreditRecordState(
        record_id=event.record_id,
        source_city=event.meta.source_city,
        category=event.category,
        polarity=event.polarity,
        severity=event.severity,
        domain=event.domain,
        decision_no=event.decision_no,
        decision_date=event.decision_date,
        valid_until=event.valid_until,
        publicity_until=event.publicity_until,
        status="ACTIVE",
    )


def apply(state: CreditState | None, event: CreditRecord, tz: tzinfo) -> tuple[CreditState, bool]:
    """Apply one CreditRecord. Returns (state, applied); applied is False for a duplicate.

    Raises Rejected for an unknown or foreign record, or a repair before its minimum period (judged
    on the local date in `tz`, the circle's zone, of the repair's `occurred_at`).
    """
    meta = event.meta
    event_id = packed_id(meta.event_id)
    if state is None:
        state = new_state(event.subject)
    elif event_id in state.event_ids:
        return state, False
    record_id, action = event.record_id, event.action
    known = state.records.get(record_id)
    if action == "PUBLISH":
        if known is not None:
            return state, False
        record = _record_from(event)
    elif known is None:
        raise Rejected(
            Reason.UNKNOWN_RECORD, f"{action} of record {record_id!r}, which was never published", "record_id"
        )
    elif known.source_city != meta.source_city:
        raise Rejected(
            Reason.NOT_OWNER,
            f"record {record_id!r} belongs to city {known.source_city}; city {meta.source_city} cannot {action} it",
            "meta.source_city",
        )
    elif action == "AMEND":
        record = _record_from(event)
    elif action == "REVOKE":
        record = replace(known, status="REVOKED")
    else:  # REPAIR
        allowed = RULES.repair_allowed_from(known)
        on = local_date(meta.occurred_at, tz)
        if on < allowed:
            raise Rejected(
                Reason.REPAIR_TOO_EARLY,
                f"record {record_id!r} may be repaired from {allowed}, not {on}",
                "meta.occurred_at",
            )
        record = replace(known, status="REPAIRED")
    records = dict(state.records)
    records[record_id] = record
    return replace(
        state,
        name=event.subject.name,
        records=records,
        event_ids=(*state.event_ids, event_id)[-MAX_EVENT_IDS:],
        revision=state.revision + 1,
    ), True


def grade(active: Sequence[CreditRecordState]) -> Grade:
    negatives = [r for r in active if r.polarity == "NEGATIVE"]
    if any(r.severity == "SERIOUS" for r in negatives) or any(
        r.category in ("SERIOUS_DISHONESTY_LIST", "COURT_JUDGMENT_DEFAULTER") for r in active
    ):
        return "D"
    if any(r.severity == "GENERAL" for r in negatives) or sum(r.severity == "MINOR" for r in negatives) >= 3:
        return "C"
    if not negatives and any(r.polarity == "POSITIVE" for r in active):
        return "A"
    return "B"


def evaluate(state: CreditState, today: date, bump: bool = True) -> tuple[CreditState, bool]:
    """Recompute the active set and grade as of `today`; returns (state, changed).

    The revision counts changes: one per applied event (see `apply`), and one per change the clock
    alone causes (an expiry found by the sweep, `bump`). After applying events, call with
    bump=False, so the revision does not depend on how events were grouped into batches.
    """
    records = state.records
    is_active = RULES.is_active
    active_ids = tuple(sorted(rid for rid, r in records.items() if is_active(r, today)))
    new_grade = grade([records[rid] for rid in active_ids])
    if active_ids == state.active and new_grade == state.grade:
        return state, False
    return replace(state, active=active_ids, grade=new_grade, revision=state.revision + int(bump)), True


def next_change(state: CreditState) -> date | None:
    """The first day on which the clock alone changes the subject's profile: the day after the
    earliest end of publicity among its active records; None while none of them ends."""
    ends = [RULES.active_until(state.records[rid]) for rid in state.active]
    known = [end for end in ends if end is not None]
    return min(known) + timedelta(days=1) if known else None


def profile(state: CreditState, as_of: datetime, meta: Meta) -> CreditProfile:
    """The CreditProfile of a subject's state (evaluated: see `evaluate`), under `meta`."""
    if state.grade is None:
        raise ValueError(f"subject {state.subject_id}: a profile of a state never evaluated")
    records = state.records
    active = [records[rid] for rid in state.active]
    negatives = [r for r in active if r.polarity == "NEGATIVE"]
    active_until = RULES.active_until
    return CreditProfile(
        meta=meta,
        subject_id=state.subject_id,
        subject_kind=state.subject_kind,
        name=state.name,
        grade=state.grade,
        counts=ActiveCounts(
            positive=sum(r.polarity == "POSITIVE" for r in active),
            neutral=sum(r.polarity == "NEUTRAL" for r in active),
            negative=len(negatives),
            minor=sum(r.severity == "MINOR" for r in negatives),
            general=sum(r.severity == "GENERAL" for r in negatives),
            serious=sum(r.severity == "SERIOUS" for r in negatives),
        ),
        cities=sorted({r.source_city for r in active}),
        active_records=[
            ActiveRecord(
                record_id=r.record_id,
                source_city=r.source_city,
                category=r.category,
                polarity=r.polarity,
                severity=r.severity,
                domain=r.domain,
                decision_no=r.decision_no,
                decision_date=r.decision_date,
                active_until=active_until(r),
            )
            for r in active
        ],
        closed_records=[
            ClosedRecord(record_id=rid, status=status)
            for rid in sorted(records)
            if (status := records[rid].status) != "ACTIVE"
        ],
        revision=state.revision,
        as_of=as_of,
    )


RULES = CreditRules.load()
