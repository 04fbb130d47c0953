"""The credit family's inputs and outputs for the unit tests: the Structs of schemas/events.py made
from the partial dicts a test builds (only the fields a rule reads), the rest filled in."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from schemas.events import CreditRecord, EnforcementAction, Meta
from schemas.structs import plain, typed
from services.credit import rules
from services.credit.state import CreditRecordState, CreditState

AT = datetime(2026, 1, 1, tzinfo=UTC)


def meta(event_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    at = fields.get("occurred_at", AT)
    return {
        "event_id": "e",
        "event_type": event_type,
        "source_city": "320100",
        "source_system": "test",
        "occurred_at": at,
        "published_at": at,
        **fields,
    }


def credit_record(event: dict[str, Any]) -> CreditRecord:
    """A CreditRecord from a dict with at least record_id, action, subject, category, polarity,
    severity, decision_no and decision_date (and meta's event_id, source_city, occurred_at)."""
    full = {
        "authority": {"name": "a"},
        "legal_basis": "b",
        "content": "c",
        **event,
        "meta": meta("credit.record", event.get("meta", {})),
    }
    return typed(full, CreditRecord)


def enforcement_action(action: dict[str, Any]) -> EnforcementAction:
    """An EnforcementAction from a dict with at least action_id, lead_city and status."""
    full = {
        "domain": "ENVIRONMENT",
        "participating_cities": [],
        "targets": [],
        **action,
        "meta": meta("enforcement.action", action.get("meta", {})),
    }
    return typed(full, EnforcementAction)


def record_state(**fields: Any) -> CreditRecordState:
    """A record of a subject's state; only the fields a rule reads need be given."""
    base: dict[str, Any] = {
        "record_id": "r",
        "source_city": "320100",
        "category": "ADMIN_PENALTY",
        "polarity": "NEGATIVE",
        "severity": "GENERAL",
        "domain": None,
        "decision_no": "d",
        "decision_date": date(2026, 1, 1),
        "valid_until": None,
        "publicity_until": None,
        "status": "ACTIVE",
    }
    return CreditRecordState(**{**base, **fields})


PROFILE_META = Meta(
    event_id="p",
    event_type="credit.profile",
    source_city="320100",
    source_system="test",
    occurred_at=AT,
    published_at=AT,
)


def profile_body(state: CreditState, as_of: datetime) -> dict[str, Any]:
    """The CreditProfile of a state as the mapping the codec encodes, without meta (the form the
    other families' rules read in these tests)."""
    body = plain(rules.profile(state, as_of, PROFILE_META))
    del body["meta"]
    return body
