"""How a subject's state is stored: a typed, positional msgpack form of the rules' document.

The subjects table is the one that grows with the circle (one document per subject), so its
documents are stored without field names: each is a msgspec Struct encoded as an array, dates as
day numbers and event ids as their 16 bytes. The rules keep working on plain dicts; this module
maps between the two, and a test pins the round trip.

Fields are only ever added at the end, with a default, so that a stored document stays readable.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import msgspec

_EPOCH = date(1970, 1, 1).toordinal()


class StoredRecord(msgspec.Struct, array_like=True):
    record_id: str
    source_city: str
    category: str
    polarity: str
    severity: str
    domain: str | None
    decision_no: str
    decision_date: int  # days since 1970-01-01
    valid_until: int | None
    publicity_until: int | None
    status: str


class StoredSubject(msgspec.Struct, array_like=True):
    subject_id: str
    subject_kind: str
    name: str
    revision: int
    grade: str | None
    active: list[str]
    event_ids: list[Any]  # a canonical UUID as its 16 bytes (msgpack bin), anything else as its str
    records: list[StoredRecord]  # in the document's order; each names its record_id


_SUBJECT_FIELDS = {"subject_id", "subject_kind", "name", "records", "event_ids", "revision", "grade", "active"}
_RECORD_FIELDS = set(StoredRecord.__struct_fields__)


def _day(iso: str | None) -> int | None:
    return date.fromisoformat(iso).toordinal() - _EPOCH if iso is not None else None


def _iso(day: int | None) -> str | None:
    return date.fromordinal(day + _EPOCH).isoformat() if day is not None else None


def _packed_id(event_id: str) -> bytes | str:
    try:
        packed = uuid.UUID(event_id)
    except ValueError:
        return event_id
    return packed.bytes if str(packed) == event_id else event_id


def _event_id(packed: bytes | str) -> str:
    return str(uuid.UUID(bytes=packed)) if isinstance(packed, bytes) else packed


class SubjectLayout:
    """The `Layout` of the subjects table (services/common/runtime/encoding.py)."""

    stored_type = StoredSubject

    def to_stored(self, state: dict[str, Any]) -> StoredSubject:
        if state.keys() != _SUBJECT_FIELDS or any(r.keys() != _RECORD_FIELDS for r in state["records"].values()):
            raise ValueError(f"a subject document with fields the stored form does not hold: {sorted(state)}")
        return StoredSubject(
            subject_id=state["subject_id"],
            subject_kind=state["subject_kind"],
            name=state["name"],
            revision=state["revision"],
            grade=state["grade"],
            active=state["active"],
            event_ids=[_packed_id(e) for e in state["event_ids"]],
            records=[
                StoredRecord(
                    record_id=r["record_id"],
                    source_city=r["source_city"],
                    category=r["category"],
                    polarity=r["polarity"],
                    severity=r["severity"],
                    domain=r["domain"],
                    decision_no=r["decision_no"],
                    decision_date=_day(r["decision_date"]),  # type: ignore[arg-type]
                    valid_until=_day(r["valid_until"]),
                    publicity_until=_day(r["publicity_until"]),
                    status=r["status"],
                )
                for r in state["records"].values()
            ],
        )

    def from_stored(self, stored: StoredSubject) -> dict[str, Any]:
        return {
            "subject_id": stored.subject_id,
            "subject_kind": stored.subject_kind,
            "name": stored.name,
            "records": {
                r.record_id: {
                    "record_id": r.record_id,
                    "source_city": r.source_city,
                    "category": r.category,
                    "polarity": r.polarity,
                    "severity": r.severity,
                    "domain": r.domain,
                    "decision_no": r.decision_no,
                    "decision_date": _iso(r.decision_date),
                    "valid_until": _iso(r.valid_until),
                    "publicity_until": _iso(r.publicity_until),
                    "status": r.status,
                }
                for r in stored.records
            },
            "event_ids": [_event_id(e) for e in stored.event_ids],
            "revision": stored.revision,
            "grade": stored.grade,
            "active": stored.active,
        }


SUBJECTS = SubjectLayout()
