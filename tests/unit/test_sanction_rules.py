"""List rules and the measure catalogue, without Kafka: decisions, and every kind of file error."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import ConfigError
from schemas.events import CreditProfile
from services.sanctions import rules
from services.sanctions.rules import RULES_FILE, SanctionRules
from tests.unit.props import credit_profile
from topics.localtime import CIRCLE_TZ
from topics.measures import MEASURES_FILE

TODAY = date(2026, 11, 22)
BLACK_MEASURES = {
    "GOV_PROCUREMENT_BAN",
    "PUBLIC_BIDDING_RESTRICTION",
    "SUBSIDY_RESTRICTION",
    "LICENSE_STRICT_REVIEW",
    "INSPECTION_INTENSIFIED",
    "HONOR_BAN",
}


def rec(rid: str, city: str = "320100", polarity: str = "NEGATIVE", severity: str = "GENERAL", **kw: Any) -> dict:  # type: ignore[type-arg]
    return {
        "record_id": rid,
        "source_city": city,
        "category": kw.get("category", "ADMIN_PENALTY"),
        "polarity": polarity,
        "severity": severity,
        "domain": None,
        "decision_no": "d",
        "decision_date": kw.get("decided", "2026-06-01"),
        "active_until": kw.get("until", "2027-06-01"),
    }


def profile(grade: str, *records: dict, kind: str = "ENTERPRISE", **more: Any) -> CreditProfile:  # type: ignore[type-arg]
    return credit_profile(
        {"subject_id": "S", "subject_kind": kind, "grade": grade, "active_records": list(records), **more}
    )


@pytest.mark.parametrize(
    "prof,expected",
    [
        (profile("D", rec("a", severity="SERIOUS", until="2029-06-01")), "BLACK"),
        (profile("D", rec("a", category="COURT_JUDGMENT_DEFAULTER", severity="NONE", until=None)), "BLACK"),
        (profile("C", rec("a", "320100"), rec("b", "340500")), "FOCUS"),
        (profile("C", rec("a", "320100"), rec("b", "320100")), None),  # one city only
        (profile("C", rec("a", "320100"), rec("b", "340500", decided="2025-10-01")), None),  # over 365 days
        (profile("C", rec("a", "320100")), None),
        (
            profile(
                "A", rec("a", polarity="POSITIVE", severity="NONE"), rec("b", polarity="POSITIVE", severity="NONE")
            ),
            "RED",
        ),
        (profile("A", rec("a", polarity="POSITIVE", severity="NONE")), None),  # one positive only
        (profile("B"), None),
        # BLACK takes precedence over FOCUS
        (profile("D", rec("a", "320100"), rec("b", "340500"), rec("c", severity="SERIOUS")), "BLACK"),
    ],
)
def test_lists_by_precedence(prof: CreditProfile, expected: str | None) -> None:
    got = rules.RULES.decide(prof, TODAY)
    assert (got.list if got else None) == expected


def test_black_entry_measures_reasons_and_initiator() -> None:
    prof = profile(
        "D",
        rec("old", "321100", severity="SERIOUS", decided="2025-01-10", until="2028-01-10"),
        rec("new", "340500", category="COURT_JUDGMENT_DEFAULTER", severity="NONE", decided="2026-11-01", until=None),
        rec("minor", "320100", severity="MINOR"),
    )
    got = rules.RULES.decide(prof, TODAY)
    assert got is not None
    assert set(got.measures) == BLACK_MEASURES | {"HIGH_CONSUMPTION_RESTRICTION"}
    assert got.reasons == ("new", "old") and got.initiated_by == "340500"
    assert got.expires_on is None  # a defaulter record runs until revoked


def test_measures_follow_subject_kind() -> None:
    organ = profile("D", rec("a", severity="SERIOUS"), kind="GOVERNMENT_ORGAN")
    got = rules.RULES.decide(organ, TODAY)
    assert got is not None and set(got.measures) == {"INSPECTION_INTENSIFIED", "HONOR_BAN"}
    assert got.expires_on == date(2027, 6, 1)


def write(tmp_path: Path, rules_change: Any = None, measures_change: Any = None) -> tuple[Path, Path]:
    r = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    m = json.loads(MEASURES_FILE.read_text(encoding="utf-8"))
    if rules_change:
        rules_change(r)
    if measures_change:
        measures_change(m)
    rp, mp = tmp_path / "rules.json", tmp_path / "measures.json"
    rp.write_text(json.dumps(r, ensure_ascii=False, indent=1), encoding="utf-8")
    mp.write_text(json.dumps(m, ensure_ascii=False, indent=1), encoding="utf-8")
    return rp, mp


@pytest.mark.parametrize(
    "rules_change,measures_change,message",
    [
        (
            lambda r: r["lists"]["RED"]["measures"].append("FREE_LUNCH"),
            None,
            "lists.RED.measures[3]: unknown measure 'FREE_LUNCH'",
        ),
        (
            lambda r: r["lists"]["FOCUS"].update(measures=[]),
            None,
            "lists.FOCUS.measures: a list needs at least one measure",
        ),
        (
            lambda r: r.update(precedence=["BLACK", "FOCUS", "RED", "BLACK"]),
            None,
            "contradictory, BLACK appears more than once",
        ),
        (lambda r: r.update(precedence=["RED", "FOCUS", "BLACK"]), None, "contradicts the contract"),
        (lambda r: r.update(precedence=["BLACK", "FOCUS"]), None, "must name the same lists"),
        (lambda r: r["lists"]["BLACK"].update(rule="grade_a_positives"), None, "lists.BLACK.rule"),
        (lambda r: r["lists"]["FOCUS"].pop("min_cities"), None, "lists.FOCUS: missing field 'min_cities'"),
        (lambda r: r["lists"]["FOCUS"].update(within_days="a year"), None, "lists.FOCUS.within_days: expected int"),
        (
            lambda r: r["lists"]["BLACK"]["extra_measures"].update(PARKING=["HONOR_BAN"]),
            None,
            "unknown record category",
        ),
        (lambda r: r["feedback"].update(window_days=0), None, "feedback.window_days"),
        (
            None,
            lambda m: m["measures"].append(dict(m["measures"][0])),
            "measures[10].code: measure 'GOV_PROCUREMENT_BAN' is defined twice",
        ),
        (None, lambda m: m["measures"][2].update(legal_basis=" "), "measures[2].legal_basis"),
        (None, lambda m: m["measures"][0].update(subject_kinds=["ROBOT"]), "unknown subject kind ['ROBOT']"),
        (None, lambda m: m["measures"][1].pop("description"), "measures[1]: missing field 'description'"),
    ],
)
def test_broken_files_are_refused_naming_the_field(
    tmp_path: Path, rules_change: Any, measures_change: Any, message: str
) -> None:
    rp, mp = write(tmp_path, rules_change, measures_change)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        SanctionRules.load(rp, mp)


def test_unparseable_file_is_refused_naming_the_line(tmp_path: Path) -> None:
    rp, mp = write(tmp_path)
    text = rp.read_text(encoding="utf-8").splitlines()
    text[3] = text[3] + ","  # a stray comma
    rp.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules.json: line \d+, column \d+"):
        SanctionRules.load(rp, mp)


def test_shipped_files_load() -> None:
    loaded = SanctionRules.load()
    assert loaded.precedence == ("BLACK", "FOCUS", "RED") and loaded.feedback_window_days == 5
    assert set(loaded.lists["BLACK"].measures) == BLACK_MEASURES


@pytest.mark.parametrize(
    "closed,today,reason",
    [
        ([{"record_id": "a", "status": "REPAIRED"}], "2026-12-01", "repaired: a"),
        ([{"record_id": "a", "status": "REVOKED"}], "2026-12-01", "revoked: a"),
        ([], "2029-06-02", "publicity expired: a"),
    ],
    ids=["repair", "revocation", "expiry"],
)
def test_removal_says_why_the_listing_ended(closed: list[dict], today: str, reason: str) -> None:  # type: ignore[type-arg]
    from datetime import UTC, datetime

    listed_at = datetime(2026, 11, 22, tzinfo=UTC)
    start = profile("D", rec("a", severity="SERIOUS", until="2029-06-01"), name="n")
    first = rules.next_entry(None, rules.RULES.decide(start, TODAY), start, listed_at, ["320100"], CIRCLE_TZ)
    assert first is not None and first.status == "LISTED"
    after = profile("B", name="n", closed_records=closed)
    gone = rules.next_entry(
        first, None, after, datetime.fromisoformat(today).replace(tzinfo=UTC), ["320100"], CIRCLE_TZ
    )
    assert gone is not None and (gone.status, gone.revision, gone.removal_reason) == ("REMOVED", 2, reason)


def test_the_rules_and_the_inbox_read_one_measure_catalogue() -> None:
    """The inbox describes a measure from the SDK's catalogue, the one the list rules are checked
    against, without importing the processor's rules."""
    from datetime import UTC, datetime

    from consumers.inbox import work_item
    from schemas.events import SanctionEntry
    from schemas.structs import typed
    from topics.measures import catalogue

    assert rules.RULES.measures == catalogue()
    listed = datetime(2026, 11, 22, tzinfo=UTC)
    entry = typed(
        {
            "meta": {
                "event_id": "e",
                "event_type": "sanction.list",
                "source_city": "320100",
                "source_system": "sanctions",
                "occurred_at": listed,
                "published_at": listed,
            },
            "subject_id": "91320106MA1XY31255",
            "name": "南京示例化工有限公司",
            "list": "BLACK",
            "revision": 1,
            "initiated_by": "320100",
            "status": "LISTED",
            "measures": [
                {"code": "HONOR_BAN", "applies_in": ["340500"]},
                {"code": "NOT_A_CODE", "applies_in": ["340500"]},
            ],
            "reasons": ["r"],
            "effective_from": listed,
        },
        SanctionEntry,
    )
    item = work_item(entry, "340500")
    assert item is not None and item.action == "APPLY"
    honor = catalogue()["HONOR_BAN"]
    assert item.measures == [
        {"code": "HONOR_BAN", "description": honor.description, "legal_basis": honor.legal_basis},
        {"code": "NOT_A_CODE", "description": "(not in this catalogue)", "legal_basis": ""},
    ]
    assert work_item(entry, "320100") is None
