"""A subject's credit state: the typed form the rules work on, and the positional form it is stored as.

The rules (services/credit/rules.py) take and give a `CreditState`, a frozen msgspec Struct whose
records are `CreditRecordState`s keyed by record id, dates as `date`s.

The subjects table is the one that grows with the circle (one document per subject), so its
documents are stored without field names: each is a `StoredSubject`, encoded as an array, dates as
day numbers and event ids as their 16 bytes. `SubjectLayout` maps between the two, and a test pins
the round trip and the bytes. So that a write costs no work per remembered event id, the state
keeps its event ids already in their stored form (`packed_id`), and a redelivery is found by
packing the one event id it carries.

Fields are only ever added at the end, with a default, so that a stored document stays readable.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal, TypedDict

import msgspec

from schemas.events import CreditCategory, Grade, Polarity, Severity, SubjectKind

_EPOCH = date(1970, 1, 1).toordinal()
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

RecordStatus = Literal["ACTIVE", "REVOKED", "REPAIRED"]
#: an event id as a subject keeps it: a canonical UUID as its 16 bytes, anything else as its str
PackedId = bytes | str


class CreditRecordState(msgspec.Struct, frozen=True, kw_only=True):
    """One record of a subject, as its last PUBLISH or AMEND said, and whether it was closed since."""

    record_id: str
    source_city: str
    category: CreditCategory
    polarity: Polarity
    severity: Severity
    domain: str | None
    decision_no: str
    decision_date: date
    valid_until: date | None
    publicity_until: date | None
    status: RecordStatus


class CreditState(msgspec.Struct, frozen=True, kw_only=True):
    """One subject's credit state. Never changed in place: the rules make a new one
    (`msgspec.structs.replace`, with a new `records` dict where a record changes)."""

    subject_id: str
    subject_kind: SubjectKind
    name: str
    records: dict[str, CreditRecordState]  # by record id, in the order first published
    event_ids: tuple[PackedId, ...]  # the newest applied, oldest first (see `packed_id`)
    revision: int
    grade: Grade | None  # None until first evaluated
    active: tuple[str, ...]  # the ids of the active records, sorted


class StoredRecord(msgspec.Struct, array_like=True):
    record_id: str
    source_city: str
    category: CreditCategory
    polarity: Polarity
    severity: Severity
    domain: str | None
    decision_no: str
    decision_date: int  # days since 1970-01-01
    valid_until: int | None
    publicity_until: int | None
    status: RecordStatus


class StoredSubject(msgspec.Struct, array_like=True):
    subject_id: str
    subject_kind: SubjectKind
    name: str
    revision: int
    grade: Grade | None
    active: tuple[str, ...]
    # `PackedId`s: msgpack bin or str (msgspec cannot decode into a union of bytes and str)
    event_ids: tuple[Any, ...]
    records: list[StoredRecord]  # in the state's order; each names its record_id


# the stored form holds every field of the state, and nothing else
assert set(StoredSubject.__struct_fields__) == set(CreditState.__struct_fields__)
assert StoredRecord.__struct_fields__ == CreditRecordState.__struct_fields__


class PlainRecord(TypedDict):
    record_id: str
    source_city: str
    category: CreditCategory
    polarity: Polarity
    severity: Severity
    domain: str | None
    decision_no: str
    decision_date: str  # ISO 8601
    valid_until: str | None
    publicity_until: str | None
    status: RecordStatus


class PlainSubject(TypedDict):
    """A subject as a JSON document: the subjects table's format before `StoredSubject`, which a
    changelog written then still holds."""

    subject_id: str
    subject_kind: SubjectKind
    name: str
    records: dict[str, PlainRecord]
    event_ids: list[str]
    revision: int
    grade: Grade | None
    active: list[str]


def _day(day: date | None) -> int | None:
    return day.toordinal() - _EPOCH if day is not None else None


def _date(day: int | None) -> date | None:
    return date.fromordinal(day + _EPOCH) if day is not None else None


def packed_id(event_id: str) -> PackedId:
    """An event id as it is kept: a canonical UUID (lower-case, hyphenated: what `str(uuid)` writes)
    as its 16 bytes, anything else as it is, so that it reads back exactly as it came."""
    if _CANONICAL_UUID.fullmatch(event_id):
        return bytes.fromhex(event_id.replace("-", ""))
    return event_id


def event_id_of(packed: PackedId) -> str:
    """The event id `packed_id` kept."""
    if isinstance(packed, str):
        return packed
    h = packed.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _stored_record(r: CreditRecordState) -> StoredRecord:
    decided = _day(r.decision_date)
    assert decided is not None
    return StoredRecord(
        r.record_id,
        r.source_city,
        r.category,
        r.polarity,
        r.severity,
        r.domain,
        r.decision_no,
        decided,
        _day(r.valid_until),
        _day(r.publicity_until),
        r.status,
    )


def _record_state(r: StoredRecord) -> CreditRecordState:
    return CreditRecordState(
        record_id=r.record_id,
        source_city=r.source_city,
        category=r.category,
        polarity=r.polarity,
        severity=r.severity,
        domain=r.domain,
        decision_no=r.decision_no,
        decision_date=date.fromordinal(r.decision_date + _EPOCH),
        valid_until=_date(r.valid_until),
        publicity_until=_date(r.publicity_until),
        status=r.status,
    )


class SubjectLayout:
    """The `Layout` of the subjects table (services/common/runtime/encoding.py)."""

    stored_type = StoredSubject

    def to_stored(self, state: CreditState) -> StoredSubject:
        if type(state) is not CreditState:  # a wider state would lose its other fields here
            extra = sorted(set(type(state).__struct_fields__) - set(CreditState.__struct_fields__))
            raise ValueError(f"a subject document with fields the stored form does not hold: {extra}")
        return StoredSubject(
            state.subject_id,
            state.subject_kind,
            state.name,
            state.revision,
            state.grade,
            state.active,
            state.event_ids,
            [_stored_record(r) for r in state.records.values()],
        )

    def from_stored(self, stored: StoredSubject) -> CreditState:
        return CreditState(
            subject_id=stored.subject_id,
            subject_kind=stored.subject_kind,
            name=stored.name,
            records={r.record_id: _record_state(r) for r in stored.records},
            event_ids=stored.event_ids,
            revision=stored.revision,
            grade=stored.grade,
            active=stored.active,
        )

    # --- the JSON document format that came before the stored form --------------------------

    def to_plain(self, state: CreditState) -> PlainSubject:
        """The state as the JSON document the subjects table held before its stored form: its fields
        in order, dates as ISO strings, event ids as their strings."""
        ids = tuple(event_id_of(e) for e in state.event_ids)
        doc: PlainSubject = msgspec.to_builtins(msgspec.structs.replace(state, event_ids=ids))
        return doc

    def from_plain(self, doc: PlainSubject) -> CreditState:
        """A JSON document of the format before the stored form (`to_plain`), as the state."""
        return CreditState(
            subject_id=doc["subject_id"],
            subject_kind=doc["subject_kind"],
            name=doc["name"],
            records=msgspec.convert(doc["records"], dict[str, CreditRecordState]),  # ISO dates read as dates
            event_ids=tuple(packed_id(e) for e in doc["event_ids"]),
            revision=doc["revision"],
            grade=doc["grade"],
            active=tuple(doc["active"]),
        )


SUBJECTS = SubjectLayout()
