"""How state documents are stored: the format byte, the msgpack entry, and the credit subject's typed form."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import pytest
from msgspec.structs import replace

from schemas.events import CreditRecord
from services.common.runtime.encoding import Codec, Entry
from services.credit import rules
from services.credit.state import SUBJECTS, CreditState, event_id_of, packed_id
from tests.unit.credit_events import credit_record

TZ = UTC


def record(rid: str, action: str = "PUBLISH", **extra: Any) -> CreditRecord:
    return credit_record(
        {
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
    )


def subject() -> CreditState:
    state, _ = rules.apply(None, record("r1"), TZ)
    state, _ = rules.apply(state, record("r2", valid_until=date(2027, 1, 31), publicity_until=None), TZ)
    state = replace(state, event_ids=(*state.event_ids, "not-a-uuid"))  # kept as it is
    state, _ = rules.evaluate(state, date(2026, 3, 2))
    return state


def test_the_stored_format_is_pinned() -> None:
    """A format byte, then msgpack [labels, due, document]: a change here is a change of the stored state."""
    raw = Codec().encode(Entry({"n": 1, "at": "2026-03-01"}, ("A",), "2026-03-02"))
    assert raw == bytes.fromhex("01") + b"\x93\x91\xa1A\xaa2026-03-02\x82\xa1n\x01\xa2at\xaa2026-03-01"
    assert Codec().decode(raw) == Entry({"n": 1, "at": "2026-03-01"}, ("A",), "2026-03-02")


def test_a_subjects_stored_bytes_are_pinned() -> None:
    """The typed form's bytes (written so by the rules' plain-dict state before it was a Struct): an
    array of the subject's fields, its records as arrays, dates as day numbers, canonical UUIDs as
    16 bytes, any other event id as its string. A change here is a change of the stored state."""
    e1, e2 = "0c8f5d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5", "5b0e7a8c-1f3d-4c6e-9a2b-7d4e5f6a1b2c"

    def with_id(event: CreditRecord, event_id: str) -> CreditRecord:
        return replace(event, meta=replace(event.meta, event_id=event_id))

    honor = {"category": "HONOR", "polarity": "POSITIVE", "severity": "NONE", "domain": None}
    state, _ = rules.apply(None, with_id(record("r1"), e1), TZ)
    state, _ = rules.apply(
        state, with_id(record("r2", **honor, valid_until=date(2027, 1, 31), publicity_until=None), "E2"), TZ
    )
    state, _ = rules.apply(state, with_id(record("r1", "REVOKE"), e2), TZ)
    state, _ = rules.evaluate(state, date(2026, 3, 2), bump=False)
    raw = Codec(SUBJECTS).encode(Entry(state, ("A",), "2029-03-01"))
    assert raw.hex() == (
        "019391a141aa323032392d30332d303198b239313332303130364d413158593331323535aa454e5445525052495345b8"
        "e58d97e4baace69f90e69f90e69c89e99990e585ace58fb803a14191a2723293c4100c8f5d1e2a3b4c5d8e9fa0b1c2d3"
        "e4f5a24532c4105b0e7a8c1f3d4c6e9a2b7d4e5f6a1b2c929ba27231a6333230313030ad41444d494e5f50454e414c54"
        "59a84e45474154495645a747454e4552414ca3544158b8e5ae81e7a88ee7bd9ae3809432303236e380953132e58fb7cd"
        "5020c0cd5468a75245564f4b45449ba27232a6333230313030a5484f4e4f52a8504f534954495645a44e4f4e45c0b8e5"
        "ae81e7a88ee7bd9ae3809432303236e380953132e58fb7cd5020cd5171c0a6414354495645"
    )
    assert Codec(SUBJECTS).decode(raw) == Entry(state, ("A",), "2029-03-01")


def test_a_subject_round_trips_through_its_typed_form() -> None:
    state = subject()
    codec = Codec(SUBJECTS)
    raw = codec.encode(Entry(state, ("C",), "2027-02-01"))
    back = codec.decode(raw)
    assert back == Entry(state, ("C",), "2027-02-01")
    assert back.doc.records["r2"].valid_until == date(2027, 1, 31)  # dates as the rules keep them
    assert event_id_of(back.doc.event_ids[-1]) == "not-a-uuid"
    assert rules.next_change(back.doc) == rules.next_change(state)
    # no field names, dates as day numbers, ids as 16 bytes: well under half the JSON
    assert len(raw) < len(json.dumps(SUBJECTS.to_plain(state), ensure_ascii=False).encode()) / 2


def test_a_subject_field_the_typed_form_does_not_hold_is_refused() -> None:
    class Wider(CreditState, frozen=True, kw_only=True):
        new_field: int = 1

    state = Wider(**msgspec.structs.asdict(subject()))
    with pytest.raises(ValueError, match="new_field"):
        Codec(SUBJECTS).encode(Entry(state, None, None))


def test_event_ids_are_kept_as_they_came() -> None:
    """Canonical UUIDs (what `str(uuid)` writes) as their 16 bytes; any other id as it is, as before."""

    def kept_before(event_id: str) -> bytes | str:  # the stored form's rule before the state was typed
        try:
            packed = uuid.UUID(event_id)
        except ValueError:
            return event_id
        return packed.bytes if str(packed) == event_id else event_id

    u = str(uuid.uuid4())
    ids = [u, u.upper(), u.replace("-", ""), f"{{{u}}}", f"urn:uuid:{u}", f" {u}", f"{u}\n", u[:-1] + "_"]
    ids += ["0" * 8 + "-0000-0000-0000-" + "0" * 12, u[:-1] + "\u0660", "e1", "", "-" * 36]
    for event_id in ids:
        assert packed_id(event_id) == kept_before(event_id)
        assert event_id_of(packed_id(event_id)) == event_id
    assert packed_id(u) == uuid.UUID(u).bytes


def test_a_document_of_the_json_format_is_still_read() -> None:
    """Changelogs written before the msgpack format hold JSON documents: read as counted nowhere."""
    state = subject()
    legacy = json.dumps(SUBJECTS.to_plain(state)).encode()
    assert SUBJECTS.from_plain(json.loads(legacy)) == state
    entry = Codec(SUBJECTS).decode(legacy)
    assert (entry.labels, entry.due) == (None, None)
    with pytest.raises(ValueError, match="unknown format"):
        Codec().decode(b"\x07")


def test_the_table_reads_a_json_document_as_the_state() -> None:
    state = subject()
    assert Codec(SUBJECTS).decode(json.dumps(SUBJECTS.to_plain(state)).encode()) == Entry(state, None, None)
