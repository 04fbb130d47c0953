"""Every rule of DESIGN.md section 5 at and around its edges, property-tested (see the README's
"Dates and boundaries" for which side of each edge and why)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from msgspec import structs

from schemas.errors import Rejected
from schemas.events import CreditRecord, EmergencyAck
from services.credit import rules as credit
from services.credit.rules import add_months
from services.emergency import rules as emergency
from services.emergency.state import Incident
from services.sanctions import feedback
from services.sanctions import rules as sanctions
from services.supervision import rules as supervision
from services.supervision.state import Project
from tests.unit import emsup_events
from tests.unit.credit_events import credit_record, record_state
from tests.unit.props import (
    PROPS,
    beijing_instants,
    black_listing,
    credit_profile,
    edge_dates,
    general,
    sanction_feedback,
)
from topics.localtime import CIRCLE_TZ as TZ
from topics.localtime import day_after_end, local_date

MS = timedelta(milliseconds=1)
DAY = timedelta(days=1)
PERIODS = {"P3M": 3, "P1Y": 12, "P3Y": 36}


def publish(decided: date, **over: Any) -> CreditRecord:
    base = {
        "meta": {"event_id": "e1", "source_city": "320100", "occurred_at": datetime(2020, 1, 1, tzinfo=UTC)},
        "record_id": "r1",
        "action": "PUBLISH",
        "subject": {"subject_id": "S", "subject_kind": "ENTERPRISE", "name": "n"},
        "category": "ADMIN_PENALTY",
        "polarity": "NEGATIVE",
        "severity": "MINOR",
        "domain": None,
        "decision_no": "d",
        "decision_date": decided,
        "valid_until": None,
        "publicity_until": None,
    }
    return credit_record({**base, **over})


# --- periods: 3 months, 1 year, 3 years ------------------------------------------------------------


@PROPS
@given(edge_dates(), st.sampled_from(sorted(PERIODS.values())))
def test_a_period_ends_on_the_same_day_of_the_month_or_that_months_last_day(start: date, months: int) -> None:
    end = add_months(start, months)
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == months
    assert end.day == min(start.day, calendar.monthrange(end.year, end.month)[1])
    assert add_months(date(2024, 1, 31), 3) == date(2024, 4, 30)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert add_months(date(2024, 2, 29), 36) == date(2027, 2, 28)
    assert add_months(date(2023, 11, 30), 3) == date(2024, 2, 29)


SEVERITY_PERIODS = [("MINOR", None, 3), ("GENERAL", None, 12), ("SERIOUS", None, 36), ("MINOR", "WORK_SAFETY", 12)]
CATEGORY_PERIODS = [("SERIOUS_DISHONESTY_LIST", 36), ("HONOR", 36), ("CREDIT_EVALUATION", 12)]


@PROPS
@given(edge_dates(), st.sampled_from(SEVERITY_PERIODS + [(None, c, m) for c, m in CATEGORY_PERIODS]))
def test_a_record_is_public_through_the_last_day_of_its_period_and_not_a_day_more(
    decided: date, case: tuple[Any, Any, int]
) -> None:
    severity, other, months = case
    if severity is None:  # a category with its own period
        event = publish(decided, category=other, severity="NONE", polarity="POSITIVE")
    else:
        event = publish(decided, severity=severity, domain=other)
    state, _ = credit.apply(None, event, TZ)
    last = add_months(decided, months)
    assert credit.RULES.active_until(state.records["r1"]) == last
    on_last, _ = credit.evaluate(state, last)
    after, _ = credit.evaluate(state, last + DAY)
    assert on_last.active == ("r1",) and after.active == ()
    assert credit.next_change(on_last) == last + DAY


@PROPS
@given(edge_dates(), edge_dates())
def test_publicity_until_names_the_last_day_and_ends_at_the_local_midnight_after_it(decided: date, until: date) -> None:
    state, _ = credit.apply(None, publish(decided, publicity_until=until), TZ)
    last_second = day_after_end(until, TZ) - timedelta(seconds=1)
    assert credit.evaluate(state, local_date(last_second, TZ))[0].active == ("r1",)
    assert credit.evaluate(state, local_date(day_after_end(until, TZ), TZ))[0].active == ()


@PROPS
@given(edge_dates(), st.sampled_from([None, "FIRE"]), st.data())
def test_a_repair_is_refused_through_the_minimum_periods_last_day_and_accepted_after(
    decided: date, domain: str | None, data: st.DataObject
) -> None:
    state, _ = credit.apply(None, publish(decided, domain=domain), TZ)
    last = add_months(decided, 12 if domain else 3)

    def repair(on: date) -> CreditRecord:
        at = data.draw(beijing_instants(on))
        return publish(decided, action="REPAIR", meta={"event_id": "e2", "source_city": "320100", "occurred_at": at})

    try:
        credit.apply(state, repair(last), TZ)
        raise AssertionError("a REPAIR on the minimum period's last day must be refused")
    except Rejected as refused:
        assert refused.reason.value == "repair_too_early"
    repaired, applied = credit.apply(state, repair(last + DAY), TZ)
    assert applied and repaired.records["r1"].status == "REPAIRED"


# --- grade and lists ----------------------------------------------------------------------------


@PROPS
@given(st.integers(0, 5), st.integers(0, 3))
def test_three_minor_negatives_make_c_and_two_do_not(minors: int, positives: int) -> None:
    active = [record_state(polarity="NEGATIVE", severity="MINOR", category="ADMIN_PENALTY")] * minors
    active += [record_state(polarity="POSITIVE", severity="NONE", category="HONOR")] * positives
    expected = "C" if minors >= 3 else "B" if minors else "A" if positives else "B"
    assert credit.grade(active) == expected


@PROPS
@given(edge_dates(), st.integers(360, 370))
def test_the_focus_window_holds_the_day_365_days_back_and_not_the_day_before(today: date, age: int) -> None:
    old = general("a", "320100", today - timedelta(days=age))
    profile = {"grade": "C", "subject_kind": "ENTERPRISE", "active_records": [old, general("b", "321100", today)]}
    decision = sanctions.RULES.decide(credit_profile(profile), today)
    assert (decision is not None and decision.list == "FOCUS") == (age <= 365)


@PROPS
@given(edge_dates(), st.permutations(["a", "b", "c"]))
def test_reasons_decided_on_the_same_day_are_ordered_the_same_whatever_their_order(day: date, order: list[str]) -> None:
    cities = {"a": "320100", "b": "321100", "c": "340500"}
    profile = {
        "grade": "C",
        "subject_kind": "ENTERPRISE",
        "active_records": [general(rid, cities[rid], day) for rid in order],
    }
    decision = sanctions.RULES.decide(credit_profile(profile), day)
    assert decision is not None and decision.reasons == ("c", "b", "a") and decision.initiated_by == "340500"


# --- deadlines: acks and feedback -------------------------------------------------------------


def incident(level: str, sent: datetime) -> Incident:
    minutes = emergency.RULES.ack_minutes[level]
    slot = {"reason": "DECLARED", "deadline": (sent + timedelta(minutes=minutes)).isoformat(), "acked_at": None}
    state = {
        "incident_id": "I",
        "sender": "320100",
        "subtype": "FLOOD",
        "location_city": "320100",
        "closed": False,
        "last_seq": 1,
        "level": level,
        "reports": {
            "1": {
                "event_id": "n",
                "kind": "INITIAL",
                "level": level,
                "effective_level": level,
                "sent_at": sent.isoformat(),
                "recipients": {"340500": {**slot, "alerted_at": None}},
            },
        },
    }
    return msgspec.convert(state, Incident)  # as a stored document of ISO strings reads


def ack(at: datetime) -> EmergencyAck:
    return emsup_events.ack(
        {
            "meta": {"source_city": "340500"},
            "incident_id": "I",
            "report_seq": 1,
            "city": "340500",
            "acknowledged_at": at,
        }
    )


@PROPS
@given(st.sampled_from(emergency.LEVELS), st.integers(0, 10**6), st.sampled_from([-MS, timedelta(0), MS]))
def test_an_ack_exactly_at_its_deadline_is_in_time(level: str, offset: int, skew: timedelta) -> None:
    sent = datetime(2026, 11, 22, tzinfo=UTC) + timedelta(seconds=offset)
    deadline = sent + timedelta(minutes=emergency.RULES.ack_minutes[level])
    silent = incident(level, sent)
    slot = silent.reports["1"].recipients["340500"]
    # silent: PENDING through the deadline's instant, OVERDUE and alerted just after
    assert emergency.ack_status(slot, deadline) == "PENDING" and emergency.overdue(silent, deadline) == []
    assert emergency.ack_status(slot, deadline + MS) == "OVERDUE"
    assert [city for _, city, _ in emergency.overdue(silent, deadline + MS)] == ["340500"]
    done = emergency.apply_ack(silent, ack(deadline + skew))
    assert done is not None
    late = [city for _, city, _ in emergency.overdue(done[0], deadline + timedelta(hours=1))]
    assert late == (["340500"] if skew > timedelta(0) else [])


@PROPS
@given(st.integers(0, 10**6), st.sampled_from([-MS, timedelta(0), MS]))
def test_feedback_exactly_five_days_after_the_listing_is_in_time(offset: int, skew: timedelta) -> None:
    listed_at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=offset)
    entry = black_listing(listed_at, ["HONOR_BAN"], ["340500"])
    due = listed_at + timedelta(days=5)
    assert feedback.status(entry, "340500", due) == "PENDING" and feedback.overdue(entry, due, ["340500"]) == []
    assert feedback.status(entry, "340500", due + MS) == "OVERDUE"
    fb = {
        "meta": {"source_city": "340500"},
        "subject_id": "S",
        "list_revision": 1,
        "city": "340500",
        "measure_code": "HONOR_BAN",
        "outcome": "APPLIED",
        "reported_at": due + skew,
    }
    answered = feedback.record(entry, sanction_feedback(fb), sanctions.RULES.counted_outcomes)
    assert answered is not None
    expected = "LATE" if skew > timedelta(0) else "ANSWERED"
    assert feedback.status(answered, "340500", due + timedelta(days=1)) == expected
    assert bool(feedback.overdue(answered, due + timedelta(days=1), ["340500"])) == (expected == "LATE")


@PROPS
@given(st.integers(0, 10**6))
def test_two_acks_or_two_feedbacks_at_the_same_instant_count_once(offset: int) -> None:
    at = datetime(2026, 11, 22, tzinfo=UTC) + timedelta(seconds=offset)
    first = emergency.apply_ack(incident("IV", at), ack(at))
    assert first is not None and emergency.apply_ack(first[0], ack(at)) is None
    entry = black_listing(at, ["HONOR_BAN"], ["340500"])
    fb = {
        "meta": {"source_city": "340500"},
        "subject_id": "S",
        "list_revision": 1,
        "city": "340500",
        "measure_code": "HONOR_BAN",
        "outcome": "APPLIED",
        "reported_at": at,
    }
    once = feedback.record(entry, sanction_feedback(fb), sanctions.RULES.counted_outcomes)
    hit = sanction_feedback({**fb, "outcome": "HIT"})
    assert once is not None and feedback.record(once, hit, sanctions.RULES.counted_outcomes) is None


# --- milestones: 0, 30 and 31 days overdue -------------------------------------------------------


def project(planned: date, status: str = "IN_PROGRESS") -> Project:
    state = {
        "project_id": "P",
        "name": "n",
        "category": "TRANSPORT",
        "lead_city": "320100",
        "participating_cities": [],
        "responsible_unit": "u",
        "responsible_person": "p",
        "plan_year": planned.year,
        "milestones": {
            "M1": {
                "title": "t",
                "planned_date": planned.isoformat(),
                "status": status,
                "actual_date": None,
                "progress_pct": None,
                "issue": None,
            }
        },
    }
    return msgspec.convert(state, Project)  # as a stored document of ISO strings reads


@PROPS
@given(edge_dates(), st.integers(-3, 34))
def test_the_light_is_yellow_from_the_planned_day_through_30_days_overdue_and_red_from_31(
    planned: date, late: int
) -> None:
    seen = supervision.assess(project(planned), planned + timedelta(days=late))
    expected = "GREEN" if late < 0 else "YELLOW" if late <= 30 else "RED"
    assert seen.light == expected
    assert seen.states["M1"] == ("UPCOMING" if late < 0 else "OVERDUE")
    assert seen.days_overdue["M1"] == max(late, 0)


@PROPS
@given(edge_dates(), st.integers(-3, 3), st.integers(-3, 3))
def test_done_on_the_planned_day_is_on_time_and_a_day_later_is_late(planned: date, done: int, late: int) -> None:
    p = project(planned, "DONE")
    done_on = structs.replace(p.milestones["M1"], actual_date=planned + timedelta(days=done))
    p = structs.replace(p, milestones={"M1": done_on})
    seen = supervision.assess(p, planned + timedelta(days=late))
    assert seen.states["M1"] == ("DONE_ON_TIME" if done <= 0 else "DONE_LATE") and seen.light == "GREEN"
