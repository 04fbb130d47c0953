"""Project supervision: milestone states, the on-time ratio, the traffic light, one alert per milestone."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from msgspec import structs

from schemas.errors import Reason, Rejected
from schemas.events import MilestoneReport, ProjectPlan
from services.supervision import rules
from services.supervision.state import Project
from tests.unit import emsup_events

TODAY = date(2026, 11, 22)


def plan_fields(*milestones: tuple[str, date]) -> dict[str, Any]:
    return {
        "meta": {"event_id": "p1", "source_city": "320100"},
        "project_id": "P",
        "name": "n",
        "category": "TRANSPORT",
        "lead_city": "320100",
        "participating_cities": ["340500"],
        "responsible_unit": "u",
        "responsible_person": "p",
        "plan_year": 2026,
        "milestones": [{"milestone_id": mid, "title": mid, "planned_date": d} for mid, d in milestones],
    }


def plan(*milestones: tuple[str, date]) -> ProjectPlan:
    return emsup_events.plan(plan_fields(*milestones))


def report(mid: str, status: str, actual: date | None = None, eid: str = "r", city: str = "340500") -> MilestoneReport:
    return emsup_events.report(
        {
            "meta": {"event_id": eid + mid, "source_city": city},
            "project_id": "P",
            "milestone_id": mid,
            "status": status,
            "actual_date": actual,
        }
    )


def three() -> Project:
    due = TODAY - timedelta(days=10)
    project = rules.apply_plan(None, plan(("M1", due), ("M2", due), ("M3", due)))
    assert project is not None
    for r in (report("M1", "DONE", due - timedelta(days=1)), report("M2", "DONE", due + timedelta(days=3))):
        project = rules.apply_report(project, r)
        assert project is not None
    return project


def test_one_on_time_one_late_one_overdue() -> None:
    project = three()
    states = {m: rules.milestone_state(v, TODAY) for m, v in project.milestones.items()}
    assert states == {"M1": "DONE_ON_TIME", "M2": "DONE_LATE", "M3": "OVERDUE"}
    counts = rules.city_counts([project], TODAY)["320100"]
    assert rules.ontime_ratio(counts) == pytest.approx(1 / 3)
    assert rules.traffic_light(project, TODAY) == "YELLOW"
    assert rules.traffic_light(project, TODAY + timedelta(days=20)) == "YELLOW"  # 30 days overdue
    assert rules.traffic_light(project, TODAY + timedelta(days=21)) == "RED"  # 31


def test_overdue_is_alerted_once() -> None:
    project = three()
    assert rules.newly_overdue(project, TODAY) == ["M3"]
    project = rules.mark_alerted(project, ["M3"], datetime.fromisoformat("2026-11-22T00:00:00+00:00"))
    assert rules.newly_overdue(project, TODAY + timedelta(days=40)) == []


def test_blocked_is_red_and_nothing_due_is_green() -> None:
    later = TODAY + timedelta(days=30)
    project = rules.apply_plan(None, plan(("M1", later)))
    assert project is not None and rules.traffic_light(project, TODAY) == "GREEN"
    assert rules.ontime_ratio(rules.city_counts([project], TODAY)["320100"]) == 1.0
    blocked = rules.apply_report(project, report("M1", "BLOCKED"))
    assert blocked is not None and rules.traffic_light(blocked, TODAY) == "RED"


def test_reports_about_unknown_projects_or_milestones_are_refused() -> None:
    with pytest.raises(Rejected) as info:
        rules.apply_report(None, report("M1", "DONE"))
    assert info.value.reason is Reason.UNKNOWN_PROJECT
    with pytest.raises(Rejected) as info:
        rules.apply_report(three(), report("M9", "DONE"))
    assert info.value.reason is Reason.UNKNOWN_MILESTONE


def test_a_replan_keeps_the_reports_of_remaining_milestones() -> None:
    project = rules.apply_report(three(), structs.replace(report("M1", "BLOCKED", eid="b"), issue="land"))
    assert project is not None
    again = rules.apply_plan(
        project,
        emsup_events.plan(
            {**plan_fields(("M1", TODAY), ("M4", TODAY)), "meta": {"event_id": "p2", "source_city": "320100"}}
        ),
    )
    assert again is not None and set(again.milestones) == {"M1", "M4"}
    assert (again.milestones["M1"].status, again.milestones["M1"].issue) == ("BLOCKED", "land")
    assert (
        rules.apply_plan(
            again,
            emsup_events.plan({**plan_fields(("M1", TODAY)), "meta": {"event_id": "p2", "source_city": "320100"}}),
        )
        is None
    )


def test_only_the_lead_city_plans_and_only_participants_report() -> None:
    """Ownership: a project is planned and re-planned by its lead city; its milestones are reported by
    the lead or a participating city."""
    with pytest.raises(Rejected) as first:
        rules.apply_plan(
            None, emsup_events.plan({**plan_fields(("M1", TODAY)), "meta": {"event_id": "p0", "source_city": "340500"}})
        )
    assert first.value.reason is Reason.NOT_OWNER
    project = three()
    replan = emsup_events.plan({**plan_fields(("M1", TODAY)), "meta": {"event_id": "p9", "source_city": "340500"}})
    with pytest.raises(Rejected) as again:
        rules.apply_plan(project, replan)
    assert again.value.reason is Reason.NOT_OWNER and "led by city 320100" in again.value.detail
    with pytest.raises(Rejected) as outsider:
        rules.apply_report(project, report("M3", "DONE", TODAY, eid="x", city="320200"))
    assert outsider.value.reason is Reason.NOT_OWNER
    for city in ("320100", "340500"):  # the lead and a participant
        assert rules.apply_report(project, report("M3", "IN_PROGRESS", eid=city, city=city)) is not None


def test_the_counts_change_only_on_the_days_the_sweep_looks() -> None:
    """The projects table counts each project's `labels` and files it under `next_look`: between
    two looks the clock alone must not change what it is counted as."""
    project = rules.apply_plan(None, plan(("M1", TODAY + timedelta(days=5)), ("M2", TODAY + timedelta(days=10))))
    assert project is not None
    look = rules.next_look(project, TODAY)
    assert look == TODAY + timedelta(days=5)
    assert rules.labels(project, TODAY) == rules.labels(project, look - timedelta(days=1))
    assert rules.labels(project, look) != rules.labels(project, TODAY)  # M1 falls due: OVERDUE, and due
    assert rules.next_look(project, look) == look  # overdue and not alerted yet: look today
    project = rules.mark_alerted(
        project, rules.newly_overdue(project, look), datetime.fromisoformat("2026-11-27T00:00:00+00:00")
    )
    assert rules.next_look(project, look) == TODAY + timedelta(days=10)
    # the counts of a set of projects are the sum of their labels
    counts = rules.counts_by_city(dict(Counter(rules.labels(project, look))))
    assert counts == rules.city_counts([project], look)
    assert (counts["320100"]["OVERDUE"], counts["320100"]["UPCOMING"], counts["320100"]["due"]) == (1, 1, 1)
