"""Every date rule reads the local calendar date of the circle's zone (Asia/Shanghai, UTC+8).

Each rule is run with the clock at 15:59:59 UTC, the last second of a Beijing day, and at 16:00:00
UTC, the first second of the next: the answers must differ exactly there, not eight hours later.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from schemas.errors import Rejected
from schemas.events import CreditRecord, EnforcementAction
from services.api.reads import ReadModel
from services.api.supervision import Supervision
from services.credit import enforcement
from services.credit import rules as credit
from services.readmodel.tables import metadata, project_plans
from services.sanctions import rules as sanctions
from services.supervision import rules as supervision
from services.supervision.state import Project
from tests.unit import emsup_events
from tests.unit.credit_events import credit_record, enforcement_action
from tests.unit.props import META, credit_profile, general, list_entry
from topics.circle import DATA_DIR, CircleFileError, load_circle
from topics.clock import ManualClock
from topics.localtime import CIRCLE_TZ as TZ
from topics.localtime import day_after_end, day_start, local_date

DAY = date(2026, 11, 22)


def last_second(day: date) -> datetime:
    """15:59:59 UTC: 23:59:59 of `day` in Beijing."""
    return datetime(day.year, day.month, day.day, 15, 59, 59, tzinfo=UTC)


def first_second_after(day: date) -> datetime:
    """16:00:00 UTC: 00:00:00 of the day after `day` in Beijing."""
    return datetime(day.year, day.month, day.day, 16, 0, 0, tzinfo=UTC)


def test_the_circle_names_its_zone_and_a_file_without_one_is_in_china_standard_time(tmp_path: Path) -> None:
    assert load_circle().tz.key == "Asia/Shanghai"
    raw = json.loads((DATA_DIR / "njmc.circle.json").read_text(encoding="utf-8"))
    del raw["timezone"]
    (tmp_path / "c.json").write_text(json.dumps(raw), encoding="utf-8")
    assert load_circle(tmp_path / "c.json").tz.key == "Asia/Shanghai"
    (tmp_path / "c.json").write_text(json.dumps({**raw, "timezone": "Asia/Urumqi"}), encoding="utf-8")
    assert load_circle(tmp_path / "c.json").tz.key == "Asia/Urumqi"


@pytest.mark.parametrize("zone", ["Asia/Nanjing", "UTC+8", "", 8])
def test_an_unknown_zone_is_refused_naming_it(tmp_path: Path, zone: Any) -> None:
    raw = json.loads((DATA_DIR / "njmc.circle.json").read_text(encoding="utf-8"))
    (tmp_path / "c.json").write_text(json.dumps({**raw, "timezone": zone}), encoding="utf-8")
    with pytest.raises(CircleFileError, match="timezone"):
        load_circle(tmp_path / "c.json")


def test_local_dates_and_local_midnights() -> None:
    assert local_date(last_second(DAY), TZ) == DAY
    assert local_date(first_second_after(DAY), TZ) == DAY + timedelta(days=1)
    assert day_start(DAY + timedelta(days=1), TZ) == first_second_after(DAY)
    assert day_after_end(DAY, TZ) == first_second_after(DAY)
    with pytest.raises(ValueError, match="no UTC offset"):
        local_date(datetime(2026, 11, 22, 12, 0), TZ)


def record(**over: Any) -> CreditRecord:
    base = {
        "meta": {"event_id": "e1", "source_city": "320100", "occurred_at": datetime(2026, 1, 1, tzinfo=UTC)},
        "record_id": "r1",
        "action": "PUBLISH",
        "subject": {"subject_id": "S", "subject_kind": "ENTERPRISE", "name": "n"},
        "category": "ADMIN_PENALTY",
        "polarity": "NEGATIVE",
        "severity": "GENERAL",
        "domain": None,
        "decision_no": "d",
        "decision_date": date(2026, 6, 1),
        "valid_until": None,
        "publicity_until": None,
    }
    return credit_record({**base, **over})


def test_publicity_ends_at_local_midnight_after_publicity_until() -> None:
    state, _ = credit.apply(None, record(publicity_until=DAY), TZ)
    before, _ = credit.evaluate(state, local_date(last_second(DAY), TZ))
    after, _ = credit.evaluate(state, local_date(first_second_after(DAY), TZ))
    assert before.active == ("r1",) and after.active == ()
    assert credit.next_change(before) == DAY + timedelta(days=1)


def test_a_repair_is_judged_on_its_local_date() -> None:
    state, _ = credit.apply(None, record(), TZ)
    allowed = credit.RULES.repair_allowed_from(state.records["r1"])
    eve = allowed - timedelta(days=1)

    def repair(at: datetime) -> CreditRecord:
        return record(action="REPAIR", meta={"event_id": "e2", "source_city": "320100", "occurred_at": at})

    with pytest.raises(Rejected):
        credit.apply(state, repair(last_second(eve)), TZ)  # 23:59:59 local, the day before
    repaired, applied = credit.apply(state, repair(first_second_after(eve)), TZ)  # 00:00 local, the first day
    assert applied and repaired.records["r1"].status == "REPAIRED"


def action(ended_at: datetime) -> EnforcementAction:
    subject = {"subject_id": "91320106MA1XY31255", "subject_kind": "ENTERPRISE", "name": "n"}
    return enforcement_action(
        {
            "meta": {"event_id": "a1", "source_city": "320100", "occurred_at": ended_at},
            "action_id": "A1",
            "domain": "ENVIRONMENT",
            "lead_city": "320100",
            "status": "CLOSED",
            "ended_at": ended_at,
            "findings": [{"subject": subject, "violation": "v", "severity": "GENERAL", "decision_no": "X1"}],
        }
    )


def test_a_closed_action_is_decided_on_its_local_date() -> None:
    now = first_second_after(DAY)
    (before,) = enforcement.records_from_action(action(last_second(DAY)), now, TZ)
    (after,) = enforcement.records_from_action(action(first_second_after(DAY)), now, TZ)
    assert before.decision_date == DAY and after.decision_date == DAY + timedelta(days=1)


def project(planned: date) -> Project:
    plan = {
        "meta": {"event_id": "p1", "source_city": "320100"},
        "project_id": "P",
        "name": "n",
        "category": "TRANSPORT",
        "lead_city": "320100",
        "participating_cities": [],
        "responsible_unit": "u",
        "responsible_person": "p",
        "plan_year": planned.year,
        "milestones": [{"milestone_id": "M1", "title": "t", "planned_date": planned}],
    }
    found = supervision.apply_plan(None, emsup_events.plan(plan))
    assert found is not None
    return found


def test_a_milestone_falls_due_at_local_midnight_of_its_planned_day() -> None:
    p = project(DAY + timedelta(days=1))
    eve, due = local_date(last_second(DAY), TZ), local_date(first_second_after(DAY), TZ)
    assert supervision.assess(p, eve).states == {"M1": "UPCOMING"} and supervision.traffic_light(p, eve) == "GREEN"
    assert supervision.assess(p, due).states == {"M1": "OVERDUE"} and supervision.traffic_light(p, due) == "YELLOW"
    assert supervision.newly_overdue(p, eve) == [] and supervision.newly_overdue(p, due) == ["M1"]
    # the alert's due_at is the instant the planned day begins in Beijing
    assert day_start(DAY + timedelta(days=1), TZ) == first_second_after(DAY)


def test_the_focus_window_counts_local_days() -> None:
    decided = DAY - timedelta(days=365)
    records = [general("a", "320100", decided), general("b", "321100", decided)]
    profile = credit_profile({"grade": "C", "subject_kind": "ENTERPRISE", "active_records": records})
    last = sanctions.RULES.decide(profile, local_date(last_second(DAY), TZ))
    gone = sanctions.RULES.decide(profile, local_date(first_second_after(DAY), TZ))
    assert last is not None and last.list == "FOCUS" and gone is None


def test_a_listing_expires_at_local_midnight_after_its_last_day_of_publicity() -> None:
    entry = list_entry(
        {
            "subject_id": "S",
            "name": "n",
            "list": "BLACK",
            "status": "LISTED",
            "measures": [],
            "reasons": ["a"],
            "initiated_by": "320100",
            "effective_from": "2026-01-01T00:00:00+00:00",
            "expires_at": DAY.isoformat(),
            "revision": 1,
            "removal_reason": None,
            "reason_ends": {"a": DAY.isoformat()},
        }
    )
    assert sanctions.list_body(entry, TZ, META).expires_at == first_second_after(DAY)
    after = credit_profile({"subject_id": "S", "name": "n", "grade": "B", "active_records": [], "closed_records": []})
    on_last_day = sanctions.next_entry(entry, None, after, last_second(DAY), ["320100"], TZ)
    on_next_day = sanctions.next_entry(entry, None, after, first_second_after(DAY), ["320100"], TZ)
    assert on_last_day is not None and on_last_day.removal_reason == "no longer active: a"
    assert on_next_day is not None and on_next_day.removal_reason == "publicity expired: a"


def test_the_project_api_reads_today_in_the_circles_zone(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'read.db'}")
    metadata.create_all(engine)
    planned = DAY + timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(
            project_plans.insert().values(
                project_id="P",
                name="n",
                category="TRANSPORT",
                lead_city="320100",
                participating_cities=[],
                responsible_unit="u",
                responsible_person="p",
                total_investment="1",
                plan_year=2026,
                milestones=[{"milestone_id": "M1", "title": "t", "planned_date": planned.isoformat()}],
                updated_at=datetime.now(UTC),
            )
        )
    clock = ManualClock(last_second(DAY))
    figures = Supervision(ReadModel(engine), load_circle(), clock)
    view = figures.project("P")
    assert view is not None and view["traffic_light"] == "GREEN" and view["milestones"][0]["state"] == "UPCOMING"
    assert next(c for c in figures.scoreboard() if c["city"] == "320100")["milestones_overdue"] == 0
    clock.set(first_second_after(DAY))
    view = figures.project("P")
    assert view is not None and view["traffic_light"] == "YELLOW" and view["milestones"][0]["state"] == "OVERDUE"
    assert next(c for c in figures.scoreboard() if c["city"] == "320100")["milestones_overdue"] == 1
