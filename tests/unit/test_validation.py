"""Each contract check refuses with its reason and names the field."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from schemas.catalogue import SchemaCatalogue
from schemas.errors import Reason, Rejected
from tests.conftest import example
from topics.circle import load_circle
from topics.clock import ManualClock
from topics.validation import MAX_PAYLOAD_BYTES, Validator


def meta(clock: ManualClock, event_type: str, **changes: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp() * 1000)
    return {
        "event_id": "6f1c2a7e-8d3b-4f0a-9c5e-1b2d3e4f5a6b",
        "event_type": event_type,
        "source_city": "320100",
        "source_system": "test",
        "occurred_at": now,
        "published_at": now,
        **changes,
    }


@pytest.fixture
def validator(clock: ManualClock) -> Validator:
    return Validator(load_circle(), SchemaCatalogue(), clock, "salt")


def with_meta(clock: ManualClock, event_type: str, **meta_changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(example(event_type))
    body["meta"] = meta(clock, event_type, **meta_changes)
    return body


@pytest.mark.parametrize(
    "event_type",
    [
        "credit.record",
        "enforcement.action",
        "emergency.notice",
        "emergency.ack",
        "project.plan",
        "project.milestone",
        "sanction.feedback",
    ],
)
def test_examples_are_valid(validator: Validator, clock: ManualClock, event_type: str) -> None:
    event = validator.from_json(event_type, with_meta(clock, event_type))
    assert event["meta"]["source_city"] == "320100"


def refused(validator: Validator, event_type: str, body: Any) -> Rejected:
    with pytest.raises(Rejected) as info:
        validator.from_json(event_type, body)
    return info.value


def test_bad_uscc(validator: Validator, clock: ManualClock) -> None:
    body = with_meta(clock, "credit.record")
    body["subject"]["subject_id"] = "91320106MA1XY31256"
    r = refused(validator, "credit.record", body)
    assert (r.reason, r.field) == (Reason.INVALID_USCC, "subject.subject_id")


def test_bad_authority_uscc(validator: Validator, clock: ManualClock) -> None:
    body = with_meta(clock, "credit.record")
    body["authority"]["uscc"] = "11320100000000000X"
    assert refused(validator, "credit.record", body).field == "authority.uscc"


def test_unknown_city_anywhere(validator: Validator, clock: ManualClock) -> None:
    body = with_meta(clock, "emergency.notice")
    body["affected_cities"] = ["320100", "310000"]
    r = refused(validator, "emergency.notice", body)
    assert (r.reason, r.field) == (Reason.UNKNOWN_CITY, "affected_cities[1]")
    r = refused(validator, "emergency.ack", with_meta(clock, "emergency.ack", source_city="999999"))
    assert (r.reason, r.field) == (Reason.UNKNOWN_CITY, "meta.source_city")


def test_enum_and_required(validator: Validator, clock: ManualClock) -> None:
    body = with_meta(clock, "project.milestone")
    body["status"] = "FINISHED"
    r = refused(validator, "project.milestone", body)
    assert (r.reason, r.field) == (Reason.SCHEMA_INVALID, "status")
    body = with_meta(clock, "project.plan")
    del body["milestones"][1]["planned_date"]
    assert refused(validator, "project.plan", body).field == "milestones[1].planned_date"


def test_future_timestamp(validator: Validator, clock: ManualClock) -> None:
    later = int((clock.now() + timedelta(minutes=6)).timestamp() * 1000)
    r = refused(validator, "emergency.ack", with_meta(clock, "emergency.ack", occurred_at=later))
    assert (r.reason, r.field) == (Reason.FUTURE_TIMESTAMP, "meta.occurred_at")
    within = int((clock.now() + timedelta(minutes=4)).timestamp() * 1000)
    validator.from_json("emergency.ack", with_meta(clock, "emergency.ack", occurred_at=within))


def test_payload_size(validator: Validator, clock: ManualClock) -> None:
    big = '{"x": "' + "a" * MAX_PAYLOAD_BYTES + '"}'
    assert refused_raw(validator, big).reason is Reason.PAYLOAD_TOO_LARGE


def refused_raw(validator: Validator, raw: str) -> Rejected:
    with pytest.raises(Rejected) as info:
        validator.parse_json("credit.record", raw)
    return info.value


def test_person_is_hashed_and_id_number_checked(validator: Validator, clock: ManualClock) -> None:
    body = with_meta(clock, "credit.record")
    body["subject"] = {"id_number": "11010519491231002X", "subject_kind": "NATURAL_PERSON", "name": "张某"}
    event = validator.from_json("credit.record", body)
    assert event["subject"]["subject_id"].startswith("P") and "id_number" not in event["subject"]
    body = with_meta(clock, "credit.record")
    body["subject"] = {"id_number": "110105194912310021", "subject_kind": "NATURAL_PERSON", "name": "张某"}
    r = refused(validator, "credit.record", body)
    assert (r.reason, r.field) == (Reason.INVALID_ID_NUMBER, "subject.id_number")
    body = with_meta(clock, "credit.record")
    body["subject"] = {"subject_id": "11010519491231002X", "subject_kind": "NATURAL_PERSON", "name": "张某"}
    assert refused(validator, "credit.record", body).reason is Reason.INVALID_SUBJECT_ID


def test_unknown_field_is_named(validator: Validator, clock: ManualClock) -> None:
    body = with_meta(clock, "emergency.ack")
    body["acknowleged_at"] = body.pop("acknowledged_at")
    r = refused(validator, "emergency.ack", body)
    assert r.field == "acknowleged_at"
