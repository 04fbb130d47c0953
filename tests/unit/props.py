"""Shared hypothesis settings and strategies of the property suites: bounded and derandomized, so
the suites take a few seconds and never differ between two runs or two machines."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from services.sanctions import feedback

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


def black_listing(at: datetime, measures: list[str], cities: list[str], initiated_by: str = "320100") -> dict[str, Any]:
    """A BLACK listing at `at`, tracked for feedback with the 5-day window."""
    return feedback.track(
        None,
        {
            "subject_id": "S",
            "list": "BLACK",
            "status": "LISTED",
            "revision": 1,
            "initiated_by": initiated_by,
            "measures": [{"code": c, "applies_in": cities} for c in measures],
        },
        at,
        5,
        ["BLACK"],
    )
