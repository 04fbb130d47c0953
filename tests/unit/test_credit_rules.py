"""The credit rules, without Kafka: a table of cases over actions, publicity and grade."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import ConfigError, Reason, Rejected
from schemas.events import CreditRecord
from services.credit import rules
from services.credit.state import CreditState
from tests.unit.credit_events import credit_record
from topics.localtime import CIRCLE_TZ as TZ

TODAY = date(2026, 11, 22)
N = 0


def ev(
    action: str = "PUBLISH", record_id: str = "r1", city: str = "320100", when: date = TODAY, **fields: Any
) -> CreditRecord:
    global N
    N += 1
    base = {
        "category": "ADMIN_PENALTY",
        "polarity": "NEGATIVE",
        "severity": "GENERAL",
        "domain": None,
        "decision_no": "d",
        "decision_date": date(2026, 6, 1),
        "valid_until": None,
        "publicity_until": None,
    }
    return credit_record(
        {
            "meta": {
                "event_id": f"e{N}",
                "source_city": city,
                "occurred_at": datetime(when.year, when.month, when.day, tzinfo=UTC),
            },
            "record_id": record_id,
            "action": action,
            "subject": {"subject_id": "S", "subject_kind": "ENTERPRISE", "name": "n"},
            **base,
            **fields,
        }
    )


def run(*events: CreditRecord, today: date = TODAY) -> CreditState:
    state = None
    for e in events:
        state, _ = rules.apply(state, e, TZ)
    assert state is not None
    return rules.evaluate(state, today)[0]


@pytest.mark.parametrize(
    "records,grade",
    [
        ([{"severity": "SERIOUS"}], "D"),
        ([{"category": "SERIOUS_DISHONESTY_LIST", "severity": "NONE"}], "D"),
        ([{"category": "COURT_JUDGMENT_DEFAULTER", "severity": "NONE"}], "D"),
        ([{"severity": "GENERAL"}], "C"),
        ([{"severity": "MINOR", "decision_date": date(2026, 10, 1)}] * 3, "C"),
        ([{"severity": "MINOR", "decision_date": date(2026, 10, 1)}] * 2, "B"),
        ([{"category": "HONOR", "polarity": "POSITIVE", "severity": "NONE"}], "A"),
        (
            [
                {"category": "HONOR", "polarity": "POSITIVE", "severity": "NONE"},
                {"severity": "MINOR", "decision_date": date(2026, 10, 1)},
            ],
            "B",
        ),
        ([{"category": "CREDIT_COMMITMENT", "polarity": "NEUTRAL", "severity": "NONE"}], "B"),
    ],
)
def test_grade(records: list[dict[str, Any]], grade: str) -> None:
    state = run(*(ev(record_id=f"r{i}", **r) for i, r in enumerate(records)))
    assert state.grade == grade


@pytest.mark.parametrize(
    "fields,until",
    [
        ({"severity": "MINOR"}, date(2026, 9, 1)),
        ({"severity": "GENERAL"}, date(2027, 6, 1)),
        ({"severity": "SERIOUS"}, date(2029, 6, 1)),
        ({"severity": "MINOR", "domain": "FIRE"}, date(2027, 6, 1)),  # safety domains: at least a year
        ({"category": "SERIOUS_DISHONESTY_LIST"}, date(2029, 6, 1)),
        ({"category": "COURT_JUDGMENT_DEFAULTER"}, None),
        ({"category": "ABNORMAL_OPERATION"}, None),
        ({"category": "HONOR", "polarity": "POSITIVE"}, date(2029, 6, 1)),
        ({"category": "CREDIT_EVALUATION", "polarity": "POSITIVE"}, date(2027, 6, 1)),
        ({"category": "ADMIN_LICENSE", "polarity": "NEUTRAL", "valid_until": date(2030, 1, 1)}, date(2030, 1, 1)),
        ({"severity": "SERIOUS", "publicity_until": date(2026, 12, 31)}, date(2026, 12, 31)),
    ],
)
def test_publicity_periods(fields: dict[str, Any], until: date | None) -> None:
    state = run(ev(**fields))
    assert rules.RULES.active_until(state.records["r1"]) == until


def test_active_until_the_last_day_then_expired() -> None:
    e = ev(severity="MINOR")  # until 2026-09-01
    assert run(e, today=date(2026, 9, 1)).active == ("r1",)
    assert run(e, today=date(2026, 9, 2)).active == ()


def test_duplicates() -> None:
    first = ev()
    state, applied = rules.apply(None, first, TZ)
    assert applied
    assert rules.apply(state, first, TZ) == (state, False)  # same event_id
    assert rules.apply(state, ev(), TZ)[1] is False  # second PUBLISH of a known record


def test_revoke_repair_amend() -> None:
    assert run(ev(), ev("REVOKE")).grade == "B"
    assert run(ev(), ev("REPAIR", when=date(2026, 9, 2))).grade == "B"
    assert run(ev(), ev("AMEND", severity="SERIOUS")).grade == "D"


@pytest.mark.parametrize(
    "events,reason",
    [
        ([ev("AMEND")], Reason.UNKNOWN_RECORD),
        ([ev(), ev("REVOKE", city="321100")], Reason.NOT_OWNER),
        ([ev(), ev("REPAIR", when=date(2026, 8, 31))], Reason.REPAIR_TOO_EARLY),
        ([ev(domain="WORK_SAFETY"), ev("REPAIR", when=date(2027, 5, 31))], Reason.REPAIR_TOO_EARLY),
    ],
)
def test_rejections(events: list[CreditRecord], reason: Reason) -> None:
    with pytest.raises(Rejected) as info:
        run(*events)
    assert info.value.reason is reason


def test_repair_allowed_the_day_after_the_minimum_period_ends() -> None:
    # decided 1 June 2026, a safety domain: the 1-year minimum's last day is 1 June 2027, so a
    # REPAIR is accepted from 2 June (it was accepted on 1 June before the period was counted as
    # the Civil Code counts it, arts. 201-203)
    assert run(ev(domain="WORK_SAFETY"), ev("REPAIR", when=date(2027, 6, 2))).active == ()
    with pytest.raises(Rejected) as info:
        run(ev(domain="WORK_SAFETY"), ev("REPAIR", when=date(2027, 6, 1)))
    assert info.value.reason is Reason.REPAIR_TOO_EARLY


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: r["publicity"].update(HONOR="3 years"), "publicity.HONOR"),
        (lambda r: r["publicity"].pop("HONOR"), "no entry for HONOR"),
        (lambda r: r["publicity"].update(GOSSIP="P1Y"), "publicity.GOSSIP: unknown category"),
        (lambda r: r["publicity"]["ADMIN_PENALTY"].pop("SERIOUS"), "no period for severity SERIOUS"),
        (lambda r: r.pop("repair_minimum"), "missing key"),
    ],
)
def test_broken_rules_file_is_refused(tmp_path: Path, change: Any, message: str) -> None:
    raw = json.loads(rules.RULES_FILE.read_text())
    change(raw)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=message):
        rules.CreditRules.load(path)


def test_revision_does_not_depend_on_batching() -> None:
    events = [ev(record_id="r1"), ev(record_id="r2", severity="GENERAL"), ev("REVOKE", record_id="r1")]
    together = None
    for e in events:  # one batch: apply all, evaluate once
        together, _ = rules.apply(together, e, TZ)
    assert together is not None
    together, _ = rules.evaluate(together, TODAY, bump=False)
    apart = None
    for e in events:  # one batch per event
        apart, _ = rules.apply(apart, e, TZ)
        assert apart is not None
        apart, _ = rules.evaluate(apart, TODAY, bump=False)
    assert together == apart and together.revision == 3 and together.grade == "C"
    expired, changed = rules.evaluate(together, date(2030, 1, 1))  # the clock alone: one more revision
    assert changed and expired.revision == 4 and expired.active == ()


def test_next_change_is_the_day_after_the_earliest_end_of_publicity() -> None:
    from datetime import timedelta

    state = run(
        ev(record_id="n-1", severity="MINOR", decision_date=date(2026, 1, 10)),
        ev(record_id="n-2", severity="GENERAL", decision_date=date(2026, 1, 10)),
        today=date(2026, 2, 1),
    )
    minor_end = rules.RULES.active_until(state.records["n-1"])
    assert minor_end is not None and rules.next_change(state) == minor_end + timedelta(days=1)
    later, changed = rules.evaluate(state, minor_end + timedelta(days=1))
    assert changed and later.active == ("n-2",)
    general_end = rules.RULES.active_until(later.records["n-2"])
    assert general_end is not None and rules.next_change(later) == general_end + timedelta(days=1)
    assert rules.next_change(run(ev(record_id="h", category="COURT_JUDGMENT_DEFAULTER", severity="NONE"))) is None
