"""The entries table's documents: a ListEntry round-trips through the table's codec, and an entry
stored as the plain document of before (ISO strings, lists, fields added since missing) reads as one."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.common.runtime.encoding import Codec, Entry, Typed
from services.sanctions import feedback
from services.sanctions.state import CityTracking, ListEntry, OutcomeReport
from tests.unit.props import black_listing, sanction_feedback

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
TYPED = Codec(Typed(ListEntry))

#: an entry as the sanctions processor stored it when entries were plain dicts
PLAIN = {
    "subject_id": "S",
    "name": "n",
    "list": "FOCUS",
    "status": "LISTED",
    "measures": [{"code": "INSPECTION_INTENSIFIED", "applies_in": ["320100", "340500"]}],
    "reasons": ["b", "a"],
    "initiated_by": "340500",
    "effective_from": "2026-11-01T09:00:00+00:00",
    "expires_at": None,
    "removal_reason": None,
    "reason_ends": {"b": None, "a": "2027-06-01"},
    "leaves_on": "2027-10-02",
    "window_reasons": {"b": ["2026-10-01", "340500"], "a": ["2026-06-01", "320100"]},
    "revision": 2,
    "listed_revision": 1,
    "due_at": None,
    "feedback": {
        "340500": {
            "outcomes": {
                "INSPECTION_INTENSIFIED": {
                    "outcome": "HIT",
                    "reported_at": "2026-11-02T09:00:00+00:00",
                    "list_revision": 2,
                    "event_id": "e1",
                }
            },
            "answered_at": "2026-11-02T09:00:00+00:00",
            "alerted_at": None,
        }
    },
    "closed_at": None,
    "tracking_version": 3,
    "profile_revision": 7,
}


def test_an_entry_round_trips_through_the_table() -> None:
    entry = feedback.record(
        black_listing(T0, ["HONOR_BAN"], ["340500"]),
        sanction_feedback(
            {
                "meta": {"source_city": "340500", "event_id": "e"},
                "subject_id": "S",
                "list_revision": 1,
                "city": "340500",
                "measure_code": "HONOR_BAN",
                "outcome": "APPLIED",
                "reported_at": T0,
            }
        ),
        frozenset({"APPLIED"}),
    )
    assert entry is not None
    assert TYPED.decode(TYPED.encode(Entry(entry, ("list:BLACK",), None))) == Entry(entry, ("list:BLACK",), None)


def test_a_plain_document_of_before_reads_as_a_list_entry() -> None:
    got = TYPED.decode(Codec().encode(Entry(PLAIN, ("list:FOCUS",), "2027-10-01T16:00:00.000000"))).doc
    assert isinstance(got, ListEntry)
    assert got.effective_from == T0 and got.leaves_on == date(2027, 10, 2)
    assert got.reason_ends == {"b": None, "a": date(2027, 6, 1)}
    assert got.window_reasons == {"b": (date(2026, 10, 1), "340500"), "a": (date(2026, 6, 1), "320100")}
    answered = datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert got.feedback == {
        "340500": CityTracking(
            outcomes={
                "INSPECTION_INTENSIFIED": OutcomeReport(
                    outcome="HIT", reported_at=answered, list_revision=2, event_id="e1"
                )
            },
            answered_at=answered,
        )
    }
    assert (got.revision, got.listed_revision, got.tracking_version, got.profile_revision) == (2, 1, 3, 7)


def test_fields_a_document_of_before_may_lack_read_as_they_were_read() -> None:
    """Entries stored before the profile revision, the tracking, the FOCUS window and the event ids
    of outcomes were kept: each missing field has the value the rules read it as."""
    later = {"profile_revision", "listed_revision", "due_at", "feedback", "closed_at", "tracking_version"}
    later |= {"leaves_on", "window_reasons", "reason_ends"}
    old = {k: v for k, v in PLAIN.items() if k not in later}
    got = TYPED.decode(Codec().encode(Entry(old, None, None))).doc
    assert (got.profile_revision, got.listed_revision, got.due_at, got.feedback) == (0, None, None, {})
    assert (got.closed_at, got.tracking_version, got.leaves_on, got.window_reasons, got.reason_ends) == (
        None,
        0,
        None,
        {},
        {},
    )
    outcome = {"outcome": "APPLIED", "reported_at": "2026-11-02T09:00:00+00:00", "list_revision": 1}
    fb = {"340500": {"outcomes": {"HONOR_BAN": outcome}, "answered_at": None}}
    got = TYPED.decode(Codec().encode(Entry({**PLAIN, "feedback": fb}, None, None))).doc
    assert got.feedback["340500"].outcomes["HONOR_BAN"].event_id == ""
    assert got.feedback["340500"].alerted_at is None
