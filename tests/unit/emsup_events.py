"""The emergency and supervision input events of the unit tests as their Structs (schemas/events.py).

A test writes only the fields its rule reads, as the decoded mapping it built before; `event` fills
in the rest of the record (meta included) and converts it as the runtime does (`typed`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from schemas.events import EmergencyAck, EmergencyNotice, MilestoneReport, ProjectPlan
from schemas.structs import Event, typed

E = TypeVar("E", bound=Event)
_AT = datetime(2026, 1, 1, tzinfo=UTC)
_META = {"event_id": "e", "source_city": "320100", "source_system": "tests", "occurred_at": _AT, "published_at": _AT}
#: the record's required fields no rule reads
_REST: dict[type[Event], dict[str, Any]] = {
    EmergencyNotice: {
        "description": "d",
        "casualties": {},
        "reporter": {"unit": "u", "official": "o", "contact": "c"},
    },
    ProjectPlan: {"total_investment": Decimal("1")},
}


def event(kind: type[E], fields: dict[str, Any]) -> E:
    meta = {**_META, "event_type": kind.__name__, **fields.get("meta", {})}
    return typed({**_REST.get(kind, {}), **fields, "meta": meta}, kind)


def notice(fields: dict[str, Any]) -> EmergencyNotice:
    return event(EmergencyNotice, fields)


def ack(fields: dict[str, Any]) -> EmergencyAck:
    return event(EmergencyAck, fields)


def plan(fields: dict[str, Any]) -> ProjectPlan:
    return event(ProjectPlan, fields)


def report(fields: dict[str, Any]) -> MilestoneReport:
    return event(MilestoneReport, fields)
