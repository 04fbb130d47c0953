"""How state documents are stored: the format byte, the msgpack entry, and the credit subject's typed form."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.common.runtime.encoding import Codec, Entry
from services.credit import rules
from services.credit.state import SUBJECTS

TZ = UTC


def record(rid: str, action: str = "PUBLISH", **extra: Any) -> dict[str, Any]:
    return {
        "meta": {
            "event_id": str(uuid.uuid4()),
            "source_city": "320100",
            "occurred_at": datetime(2026, 3, 1, tzinfo=UTC),
        },
        "record_id": rid,
        "action": action,
        "subject": {"subject_id": "91320106MA1XY31255", "subject_kind": "ENTERPRISE", "name": "南京某某有限公司"},
        "category": "ADMIN_PENALTY",
        "polarity": "NEGATIVE",
        "severity": "GENERAL",
        "domain": "TAX",
        "decision_no": "宁税罚〔2026〕12号",
        "decision_date": date(2026, 2, 28),
        "valid_until": None,
        "publicity_until": date(2029, 2, 28),
        **extra,
    }


def subject() -> dict[str, Any]:
    state, _ = rules.apply(None, record("r1"), TZ)
    state, _ = rules.apply(state, record("r2", valid_until=date(2027, 1, 31), publicity_until=None), TZ)
    state["event_ids"].append("not-a-uuid")  # kept as it is
    state, _ = rules.evaluate(state, date(2026, 3, 2))
    return state


def test_the_stored_format_is_pinned() -> None:
    """A format byte, then msgpack [labels, due, document]: a change here is a change of the stored state."""
    raw = Codec().encode(Entry({"n": 1, "at": "2026-03-01"}, ("A",), "2026-03-02"))
    assert raw == bytes.fromhex("01") + b"\x93\x91\xa1A\xaa2026-03-02\x82\xa1n\x01\xa2at\xaa2026-03-01"
    assert Codec().decode(raw) == Entry({"n": 1, "at": "2026-03-01"}, ("A",), "2026-03-02")


def test_a_subject_round_trips_through_its_typed_form() -> None:
    state = subject()
    codec = Codec(SUBJECTS)
    raw = codec.encode(Entry(state, ("C",), "2027-02-01"))
    back = codec.decode(raw)
    assert back == Entry(state, ("C",), "2027-02-01")
    assert back.doc["records"]["r2"]["valid_until"] == "2027-01-31"  # dates as the rules keep them
    assert back.doc["event_ids"][-1] == "not-a-uuid"
    assert rules.next_change(back.doc) == rules.next_change(state)
    # no field names, dates as day numbers, ids as 16 bytes: well under half the JSON
    assert len(raw) < len(json.dumps(state, ensure_ascii=False).encode()) / 2


def test_a_subject_field_the_typed_form_does_not_hold_is_refused() -> None:
    state = {**subject(), "new_field": 1}
    with pytest.raises(ValueError, match="new_field"):
        Codec(SUBJECTS).encode(Entry(state, None, None))


def test_a_document_of_the_json_format_is_still_read() -> None:
    """Changelogs written before the msgpack format hold JSON documents: read as counted nowhere."""
    state = subject()
    assert Codec(SUBJECTS).decode(json.dumps(state).encode()) == Entry(state, None, None)
    with pytest.raises(ValueError, match="unknown format"):
        Codec().decode(b"\x07")
