"""Emergency routing on the Nanjing circle's graphs: levels, recipients, deadlines, report order."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msgspec import structs

from schemas.errors import Reason, Rejected
from schemas.events import EmergencyAck, EmergencyNotice
from services.emergency import rules
from services.emergency.rules import RULES
from tests.unit import emsup_events
from topics.circle import load_circle

CIRCLE = load_circle()
T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def notice(city: str = "340200", level: str = "III", subtype: str = "WATER_POLLUTION", **kw: Any) -> EmergencyNotice:
    return emsup_events.notice(
        {
            "meta": {"source_city": kw.pop("sender", city), "event_id": kw.pop("event_id", "n1"), "published_at": T0},
            "incident_id": "INC-1",
            "report_seq": kw.pop("seq", 1),
            "report_kind": kw.pop("kind", "INITIAL"),
            "category": "ACCIDENT",
            "subtype": subtype,
            "level": level,
            "location": {"city": city},
            "affected_cities": kw.pop("declared", []),
        }
    )


def test_water_pollution_at_wuhu_goes_downstream_and_to_its_neighbours() -> None:
    n = notice()
    level = RULES.effective_level(n, CIRCLE)
    assert level == "III"
    assert RULES.recipients(n, level, CIRCLE) == {
        "320100": "DOWNSTREAM",  # Nanjing
        "321100": "DOWNSTREAM",  # Zhenjiang, downstream of Nanjing
        "321000": "DOWNSTREAM",  # Yangzhou, downstream of Nanjing
        "340500": "DOWNSTREAM",  # Ma'anshan: downstream outranks adjacent
        "341800": "ADJACENT",  # Xuancheng
    }
    assert RULES.deadline(level, T0) == T0 + timedelta(minutes=60)


def test_declared_cities_raise_the_level() -> None:
    assert RULES.effective_level(notice(level="IV", declared=["320100"]), CIRCLE) == "II"  # another province
    assert RULES.effective_level(notice(level="IV", declared=["340500"]), CIRCLE) == "III"  # same province
    assert RULES.effective_level(notice(level="I", declared=["320100"]), CIRCLE) == "I"  # never lowered


def test_a_level_iv_flood_goes_to_no_one_and_declared_cities_come_first() -> None:
    assert RULES.recipients(notice(level="IV", subtype="FLOOD"), "IV", CIRCLE) == {}
    n = notice(level="III", subtype="FLOOD", declared=["340500"])
    assert RULES.recipients(n, "III", CIRCLE) == {"340500": "DECLARED", "341800": "ADJACENT"}


def test_the_sender_is_never_a_recipient() -> None:
    n = notice(city="340500", sender="340500", declared=["340500", "320100"])
    assert "340500" not in RULES.recipients(n, "II", CIRCLE)


def test_report_order() -> None:
    first = rules.apply_notice(None, notice(), RULES, CIRCLE)
    assert rules.check_order(first, notice()) is False  # a redelivery
    with pytest.raises(Rejected) as info:
        rules.check_order(first, notice(seq=1, event_id="n2", kind="UPDATE"))
    assert info.value.reason is Reason.REPORT_OUT_OF_ORDER
    closed = rules.apply_notice(first, notice(seq=2, event_id="n3", kind="FINAL"), RULES, CIRCLE)
    with pytest.raises(Rejected) as info:
        rules.check_order(closed, notice(seq=3, event_id="n4", kind="UPDATE"))
    assert info.value.reason is Reason.INCIDENT_CLOSED
    with pytest.raises(Rejected) as info:
        rules.check_order(None, notice(kind="UPDATE"))
    assert info.value.reason is Reason.REPORT_OUT_OF_ORDER


@pytest.mark.parametrize("kind", ["UPDATE", "FINAL"])
def test_only_the_reporting_city_updates_or_closes_its_incident(kind: str) -> None:
    first = rules.apply_notice(None, notice(), RULES, CIRCLE)  # reported by Wuhu (340200)
    with pytest.raises(Rejected) as info:
        rules.check_order(first, notice(seq=2, event_id="n5", kind=kind, sender="320100"))
    assert info.value.reason is Reason.NOT_OWNER and "reported by city 340200" in info.value.detail
    assert rules.check_order(first, notice(seq=2, event_id="n5", kind=kind)) is True


def ack(city: str, seq: int = 1, at: datetime = T0 + timedelta(minutes=10)) -> EmergencyAck:
    return emsup_events.ack(
        {
            "meta": {"source_city": city},
            "incident_id": "INC-1",
            "report_seq": seq,
            "city": city,
            "acknowledged_at": at,
        }
    )


def test_acks_and_one_alert_per_silent_recipient() -> None:
    incident = rules.apply_notice(None, notice(), RULES, CIRCLE)
    done = rules.apply_ack(incident, ack("320100"))
    assert done is not None
    incident = done[0]
    assert rules.apply_ack(incident, ack("320100")) is None  # a repeat
    for bad, reason in (
        (ack("320800"), Reason.NOT_OWNER),
        (ack("320100", seq=9), Reason.UNKNOWN_REPORT),
        (structs.replace(ack("320100"), city="340500"), Reason.NOT_OWNER),
    ):
        with pytest.raises(Rejected) as info:
            rules.apply_ack(incident, bad)
        assert info.value.reason is reason
    with pytest.raises(Rejected) as info:
        rules.apply_ack(None, ack("320100"))
    assert info.value.reason is Reason.UNKNOWN_INCIDENT
    assert rules.overdue(incident, T0 + timedelta(minutes=59)) == []
    assert rules.overdue(incident, T0 + timedelta(minutes=60)) == []  # an ack at the deadline is in time
    late = rules.overdue(incident, T0 + timedelta(minutes=60, milliseconds=1))
    assert sorted(city for _, city, _ in late) == ["321000", "321100", "340500", "341800"]
    alerted = rules.mark_alerted(incident, late, T0 + timedelta(minutes=60))
    assert rules.overdue(alerted, T0 + timedelta(days=1)) == [] and rules.next_deadline(alerted) is None
    assert rules.unacknowledged(alerted) == {"321100": 1, "321000": 1, "340500": 1, "341800": 1}


def test_the_counts_change_only_at_a_deadline_the_sweep_looks_at() -> None:
    """The incidents table counts each incident's `labels` and files it under `next_deadline`:
    before it the clock alone changes nothing; the sweep's alert, at it, is the write that counts
    the silent recipients as late."""
    done = rules.apply_ack(rules.apply_notice(None, notice(), RULES, CIRCLE), ack("320100"))
    assert done is not None
    incident = done[0]
    deadline = rules.next_deadline(incident)
    assert deadline == T0 + timedelta(minutes=60)
    assert rules.labels(incident, T0) == rules.labels(incident, deadline)
    assert sorted(rules.labels(incident, T0)) == ["open:III"] + [
        f"waiting:{city}" for city in ("321000", "321100", "340500", "341800")
    ]
    now = deadline + timedelta(seconds=1)
    alerted = rules.mark_alerted(incident, rules.overdue(incident, now), now)
    late = [label for label in rules.labels(alerted, now) if label.startswith("late:")]
    assert sorted(late) == ["late:321000", "late:321100", "late:340500", "late:341800"]
    assert rules.gauges([alerted], now, CIRCLE.codes) == rules.gauges_of(
        dict(Counter(rules.labels(alerted, now))), CIRCLE.codes
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"ack_minutes": {"I": 15}}', "ack_minutes: needs a number of minutes for each level"),
        (
            '{"ack_minutes": {"I": 15, "II": 30, "III": 60, "IV": 0}, "raise_to": {}, "border_fanout_levels": []'
            ', "downstream_subtypes": []}',
            "ack_minutes.IV: must be a positive whole number",
        ),
        (
            '{"ack_minutes": {"I": 15, "II": 30, "III": 60, "IV": 120}, "raise_to": {"other_province": "V",'
            ' "other_member": "III"}, "border_fanout_levels": [], "downstream_subtypes": []}',
            "raise_to.other_province: 'V' is not a level",
        ),
        ('{"ack_minutes": ', "line 1, column 17"),
    ],
    ids=["missing-level", "zero-minutes", "unknown-level", "unparseable"],
)
def test_a_broken_rules_file_is_refused_naming_the_field(tmp_path: Any, text: str, message: str) -> None:
    from schemas.errors import ConfigError

    path = tmp_path / "rules.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        rules.EmergencyRules.load(path)
