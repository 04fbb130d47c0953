"""Order: one subject's events, arriving in any order the contract allows, give the same final state.

What the contract allows: an event follows what it refers to (a record's AMEND/REVOKE/REPAIR its
PUBLISH, a milestone report its project's plan, feedback its listing, an ack its report), a
record's own changes keep their order, and reports of an incident keep `report_seq` order. The
README ("Dates and boundaries") says where the order still matters and why.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from schemas.events import SanctionFeedback
from services.sanctions import feedback
from services.sanctions import rules as sanctions
from services.sanctions.state import ListEntry
from tests.unit.props import META, PROPS
from tests.unit.test_properties_consistency import (
    apply_credit,
    apply_feedback,
    apply_incident,
    apply_project,
    credit_history,
    feedback_history,
    incident_history,
    project_history,
)


def causal_shuffle(events: list[dict[str, Any]], chain: Any, order: list[int]) -> list[dict[str, Any]]:
    """`events` reordered by `order`, but each chain's events (`chain(event)`) keep their own order:
    the slots a chain gets in the permutation are filled with its events in their original order."""
    shuffled = [events[i] for i in order]
    queues: dict[Any, list[dict[str, Any]]] = {}
    for e in events:
        queues.setdefault(chain(e), []).append(e)
    return [queues[chain(e)].pop(0) for e in shuffled]


@PROPS
@given(credit_history(), st.data())
def test_a_subjects_profile_does_not_depend_on_the_order_of_its_records(
    history: tuple[list[dict[str, Any]], date], data: st.DataObject
) -> None:
    events, today = history
    order = data.draw(st.permutations(range(len(events))))
    shuffled = causal_shuffle(events, lambda e: e["record_id"], order)
    a, b = apply_credit(events, today), apply_credit(shuffled, today)
    # but for what was seen, in arrival order: the same set
    assert replace(a, event_ids=()) == replace(b, event_ids=()) and set(a.event_ids) == set(b.event_ids)


@PROPS
@given(project_history(), st.data())
def test_a_projects_state_does_not_depend_on_the_order_of_reports_on_different_milestones(
    history: tuple[list[dict[str, Any]], date], data: st.DataObject
) -> None:
    events, today = history
    reports = events[1:]
    order = data.draw(st.permutations(range(len(reports))))
    shuffled = [events[0], *causal_shuffle(reports, lambda r: r["milestone_id"], order)]
    assert apply_project(events) == apply_project(shuffled)


@PROPS
@given(feedback_history(), st.data())
def test_a_listings_feedback_does_not_depend_on_arrival_order(
    history: tuple[ListEntry, list[SanctionFeedback], Any], data: st.DataObject
) -> None:
    entry, fbs, now = history
    shuffled = data.draw(st.permutations(fbs))
    a, b = apply_feedback(entry, fbs), apply_feedback(entry, shuffled)
    # tracking_version counts the changes applied, which an older outcome arriving last does not make
    assert replace(a, tracking_version=0) == replace(b, tracking_version=0)
    assert (
        feedback.tracking_body(a, ["320100"], now, META).cities
        == feedback.tracking_body(b, ["320100"], now, META).cities
    )
    assert sanctions.gauges([a], ["320100"], now) == sanctions.gauges([b], ["320100"], now)


@PROPS
@given(incident_history(), st.data())
def test_an_incidents_acknowledgements_do_not_depend_on_arrival_order(
    history: tuple[list[dict[str, Any]], list[dict[str, Any]], Any], data: st.DataObject
) -> None:
    notices, acks, _ = history
    shuffled = data.draw(st.permutations(acks))
    assert apply_incident(notices, acks) == apply_incident(notices, shuffled)


@PROPS
@given(feedback_history(), st.booleans())
def test_two_outcomes_for_one_measure_at_the_same_instant_resolve_alike_in_either_order(
    history: tuple[ListEntry, list[SanctionFeedback], Any], twin_first: bool
) -> None:
    """At the same reported_at, the outcome with the greater event_id stands, whichever arrived first."""
    entry, fbs, _ = history
    if not fbs:
        return
    first = fbs[0]
    twin = replace(
        first,
        meta=replace(first.meta, event_id="z" + first.meta.event_id),
        outcome="OBJECTION" if first.outcome != "OBJECTION" else "HIT",
    )
    kept = apply_feedback(entry, [twin, first] if twin_first else [first, twin])
    assert kept.feedback[first.city].outcomes[first.measure_code].outcome == twin.outcome
