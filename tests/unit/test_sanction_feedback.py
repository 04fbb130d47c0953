"""The feedback loop's rules: what is accepted, who is overdue and when, and the ratio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from schemas.errors import Reason, Rejected
from schemas.events import SanctionFeedback
from services.sanctions import feedback
from services.sanctions.state import ListEntry
from tests.unit.props import list_entry, sanction_feedback

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CITIES = ["320100", "320200", "340500"]
COUNTED = frozenset({"APPLIED", "HIT"})


def listed(revision: int = 1, list_: str = "BLACK", prev: ListEntry | None = None) -> ListEntry:
    entry = {
        "subject_id": "S",
        "list": list_,
        "status": "LISTED",
        "revision": revision,
        "initiated_by": "320100",
        "measures": [
            {"code": "GOV_PROCUREMENT_BAN", "applies_in": CITIES},
            {"code": "HONOR_BAN", "applies_in": CITIES},
        ],
    }
    return feedback.track(prev, list_entry(entry), T0, 5, ["BLACK"])


def fb(city: str, outcome: str = "APPLIED", revision: int = 1, at: datetime = T0, **over: Any) -> SanctionFeedback:
    body = {
        "meta": {"source_city": city, "event_id": "e"},
        "subject_id": "S",
        "list_revision": revision,
        "city": city,
        "measure_code": "GOV_PROCUREMENT_BAN",
        "outcome": outcome,
        "reported_at": at,
    }
    return sanction_feedback({**body, **over})


def test_a_black_listing_opens_a_window_and_other_lists_do_not() -> None:
    entry = listed()
    assert entry.due_at == T0 + timedelta(days=5) and entry.listed_revision == 1
    assert listed(list_="RED").due_at is None


def test_a_new_revision_of_the_same_listing_keeps_its_window_and_feedback() -> None:
    first = feedback.record(listed(), fb("320200"), COUNTED)
    assert first is not None
    later = feedback.track(first, replace(first, revision=2), T0 + timedelta(days=2), 5, ["BLACK"])
    assert later.listed_revision == 1 and later.due_at == first.due_at
    assert later.feedback["320200"].answered_at == T0
    # and feedback on revision 1 or 2 is accepted; 3 is not
    assert feedback.record(later, fb("340500", revision=1), COUNTED) is not None
    with pytest.raises(Rejected) as info:
        feedback.record(later, fb("340500", revision=3), COUNTED)
    assert info.value.reason is Reason.STALE_REVISION


@pytest.mark.parametrize(
    ("entry", "body", "reason"),
    [
        (None, fb("320200"), Reason.UNKNOWN_SUBJECT),
        (listed(revision=3), fb("320200", revision=2), Reason.STALE_REVISION),
        (replace(listed(), status="REMOVED"), fb("320200"), Reason.STALE_REVISION),
        (listed(), fb("320200", measure_code="GREEN_CHANNEL"), Reason.UNKNOWN_MEASURE),
        (listed(), fb("320200", meta={"source_city": "340500"}), Reason.SOURCE_CITY_MISMATCH),
    ],
    ids=["unknown-subject", "before-the-listing", "removed", "unknown-measure", "another-citys-name"],
)
def test_feedback_that_cannot_be_accepted_is_refused_with_its_reason(
    entry: ListEntry | None, body: SanctionFeedback, reason: Reason
) -> None:
    with pytest.raises(Rejected) as info:
        feedback.record(entry, body, COUNTED)
    assert info.value.reason is reason


def test_a_redelivery_changes_nothing_and_a_later_report_replaces_the_outcome() -> None:
    once = feedback.record(listed(), fb("320200", "OBJECTION"), COUNTED)
    assert once is not None and feedback.record(once, fb("320200", "OBJECTION"), COUNTED) is None
    assert feedback.status(once, "320200", T0) == "PENDING"  # an objection is not an answer
    later = feedback.record(once, fb("320200", "HIT", at=T0 + timedelta(hours=1)), COUNTED)
    assert later is not None and feedback.status(later, "320200", T0) == "ANSWERED"
    assert later.tracking_version == once.tracking_version + 1


def test_each_silent_city_is_alerted_once_when_the_window_closes() -> None:
    entry = feedback.record(listed(), fb("320200"), COUNTED)
    assert entry is not None
    due = T0 + timedelta(days=5)
    after = due + timedelta(milliseconds=1)
    assert feedback.overdue(entry, due - timedelta(seconds=1), CITIES) == []
    # the window includes its last instant: a city may still answer in time at `due` itself
    assert feedback.overdue(entry, due, CITIES) == []
    assert [feedback.status(entry, c, due) for c in CITIES] == ["PENDING", "ANSWERED", "PENDING"]
    assert feedback.overdue(entry, after, CITIES) == ["320100", "340500"]
    alerted = feedback.mark_alerted(entry, ["320100", "340500"], after)
    assert feedback.overdue(alerted, due + timedelta(days=30), CITIES) == []
    assert [feedback.status(alerted, c, after) for c in CITIES] == ["OVERDUE", "ANSWERED", "OVERDUE"]
    # a late answer is recorded as LATE and still counts against the ratio
    late = feedback.record(alerted, fb("340500", at=due + timedelta(days=1)), COUNTED)
    assert late is not None and feedback.status(late, "340500", due + timedelta(days=1)) == "LATE"
    assert feedback.tally([late], CITIES, after) == {"320100": (0, 1), "320200": (1, 0), "340500": (0, 1)}


def test_a_listing_removed_inside_its_window_owes_nothing() -> None:
    entry = listed()
    removed = feedback.track(entry, replace(entry, status="REMOVED", revision=2), T0 + timedelta(days=1), 5, ["BLACK"])
    assert feedback.overdue(removed, T0 + timedelta(days=9), CITIES) == []
    assert feedback.status(removed, "320100", T0 + timedelta(days=9)) == "CLOSED"
    assert feedback.tally([removed], CITIES, T0 + timedelta(days=9))["320100"] == (0, 0)


def test_the_ratio_rises_with_an_answer_and_is_one_when_nothing_is_owed() -> None:
    due = T0 + timedelta(days=5, seconds=1)  # just after the window closed
    missed = feedback.mark_alerted(listed(), CITIES, due)
    fresh = feedback.record(replace(listed(), subject_id="S2"), fb("320200", subject_id="S2"), COUNTED)
    assert fresh is not None
    before = feedback.tally([missed], CITIES, due)["320200"]
    after = feedback.tally([missed, fresh], CITIES, due)["320200"]
    assert feedback.ratio(*before) == 0.0 and feedback.ratio(*after) == 0.5
    assert feedback.ratio(0, 0) == 1.0
