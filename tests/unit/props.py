"""Shared hypothesis settings and strategies of the property suites: bounded and derandomized, so
the suites take a few seconds and never differ between two runs or two machines."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from schemas.events import CreditProfile, Meta, SanctionFeedback
from schemas.structs import typed
from services.sanctions import feedback
from services.sanctions.state import ListEntry

#: every property: a fixed number of examples, derived from the test itself (no random seed, no
#: example database), no deadline (CI machines vary)
PROPS = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def edge_dates(draw: st.DrawFn) -> date:
    """Dates at the edges of months and years: month ends (28-31), 29 February, first days."""
    year = draw(st.sampled_from([2023, 2024, 2025, 2027, 2028]))
    month = draw(st.integers(1, 12))
    last = calendar.monthrange(year, month)[1]
    day = draw(st.sampled_from(sorted({1, 2, 28, last - 1, last} & set(range(1, last + 1)))))
    return date(year, month, day)


def beijing_instants(day: date) -> st.SearchStrategy[datetime]:
    """Instants (UTC) within local day `day` in Beijing, its two edge seconds included."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=8)
    return st.sampled_from([start, start + timedelta(hours=7, minutes=59, seconds=59), start + timedelta(hours=8)]) | (
        st.integers(0, 86399).map(lambda s: start + timedelta(seconds=s))
    )


def general(rid: str, city: str, decided: date) -> dict[str, Any]:
    """An active GENERAL negative record of a profile, as the FOCUS rule reads it."""
    return {
        "record_id": rid,
        "source_city": city,
        "category": "ADMIN_PENALTY",
        "polarity": "NEGATIVE",
        "severity": "GENERAL",
        "decision_date": decided,
        "active_until": None,
    }


def black_listing(at: datetime, measures: list[str], cities: list[str], initiated_by: str = "320100") -> ListEntry:
    """A BLACK listing at `at`, tracked for feedback with the 5-day window."""
    return feedback.track(
        None,
        list_entry(
            {
                "subject_id": "S",
                "list": "BLACK",
                "status": "LISTED",
                "revision": 1,
                "initiated_by": initiated_by,
                "measures": [{"code": c, "applies_in": cities} for c in measures],
            }
        ),
        at,
        5,
        ["BLACK"],
    )


# --- the typed inputs of the sanctions rules, from the fields a test names ------------------------

_AT = datetime(2026, 1, 1, tzinfo=UTC)
#: the meta of an event a test makes; its event_id is "" as in a body that names none
META = Meta(
    event_id="", event_type="test", source_city="320100", source_system="tests", occurred_at=_AT, published_at=_AT
)
_NO_COUNTS = {"positive": 0, "neutral": 0, "negative": 0, "minor": 0, "general": 0, "serious": 0}


def _meta(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {**msgspec.structs.asdict(META), **fields}


def credit_profile(profile: CreditProfile | Mapping[str, Any]) -> CreditProfile:
    """The CreditProfile of a profile body (credit.profile's, or one a test wrote with only the fields
    a rule reads): the fields it lacks filled with neutral values. A CreditProfile is taken as it is."""
    if isinstance(profile, CreditProfile):
        return profile
    records = [
        {"domain": None, "decision_no": "d", "active_until": None, **r} for r in profile.get("active_records", [])
    ]
    body = {
        "subject_id": "S",
        "subject_kind": "ENTERPRISE",
        "name": "n",
        "grade": "B",
        "counts": _NO_COUNTS,
        "cities": [],
        "revision": 1,
        "as_of": _AT,
        **profile,
        "meta": _meta(profile.get("meta", {})),
        "active_records": records,
    }
    return typed(body, CreditProfile)


def sanction_feedback(body: Mapping[str, Any]) -> SanctionFeedback:
    """The SanctionFeedback of a feedback body whose `meta` names only some fields (`source_city`,
    `event_id`)."""
    return typed({**body, "meta": _meta(body.get("meta", {}))}, SanctionFeedback)


def list_entry(fields: Mapping[str, Any]) -> ListEntry:
    """A list entry with the fields a test names (ISO strings for instants and dates), the listing's
    other fields filled with neutral values."""
    return msgspec.convert({"name": "n", "reasons": [], "effective_from": _AT, "subject_id": "S", **fields}, ListEntry)
