"""Golden bytes pin the wire format: a change here breaks every consumer in the circle."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.catalogue import SchemaCatalogue
from schemas.codec import Codec, frame, unframe
from schemas.convert import JsonConverter, to_json
from schemas.errors import Reason, Rejected
from topics.catalog import EVENT_TYPES

ALERT = {
    "meta": {
        "event_id": "6f1c2a7e-8d3b-4f0a-9c5e-1b2d3e4f5a6b",
        "event_type": "supervision.alert",
        "source_city": "320100",
        "source_system": "supervision",
        "occurred_at": datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        "published_at": datetime(2026, 11, 22, 2, 0, 1, tzinfo=UTC),
        "correlation_id": None,
        "causation_id": None,
    },
    "alert_id": "a1",
    "kind": "MILESTONE_OVERDUE",
    "city": "320100",
    "ref": "P1/M1",
    "due_at": datetime(2026, 11, 1, tzinfo=UTC),
    "raised_at": datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
}
GOLDEN_ALERT = (
    "00"
    "0000002a"  # magic byte 0, schema id 42 (big-endian)
    "48"
    "36663163326137652d386433622d346630612d396335652d316232643365346635613662"  # event_id, 36 chars
    "22"
    "7375706572766973696f6e2e616c657274"  # event_type "supervision.alert"
    "0c"
    "333230313030"  # source_city "320100"
    "16"
    "7375706572766973696f6e"  # source_system "supervision"
    "80c4da8fc068"  # occurred_at, zigzag varint of epoch millis
    "d0d3da8fc068"  # published_at
    "00"
    "00"  # correlation_id, causation_id: union branch 0 (null)
    "04"
    "6131"  # alert_id "a1"
    "02"  # kind: enum index 1 (MILESTONE_OVERDUE)
    "0c"
    "333230313030"  # city
    "0a"
    "50312f4d31"  # ref "P1/M1"
    "80a0bfc6b268"  # due_at
    "80c4da8fc068"  # raised_at
)


class FixedIds:
    """Stands in for the registry in unit tests only: one subject, one id."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self.catalogue = catalogue

    def register(self, subject: str, schema_text: str) -> int:
        return 42

    def schema_text(self, schema_id: int) -> str:
        if schema_id != 42:
            raise KeyError(schema_id)
        return self.catalogue.text("SupervisionAlert")


@pytest.fixture(scope="module")
def catalogue() -> SchemaCatalogue:
    return SchemaCatalogue()


def test_every_event_schema_shares_meta(catalogue: SchemaCatalogue) -> None:
    assert sorted(catalogue.event_schemas) == sorted(e.schema for e in EVENT_TYPES.values())
    for name in catalogue.event_schemas:
        meta = catalogue.schema(name)["fields"][0]
        assert meta["name"] == "meta" and meta["type"]["name"] == "Meta"
        assert catalogue.schema(name)["namespace"] == "tongcheng.v1"


def test_golden_bytes(catalogue: SchemaCatalogue) -> None:
    codec = Codec(catalogue, FixedIds(catalogue))
    data = codec.encode("x-value", "SupervisionAlert", ALERT)
    assert data.hex() == GOLDEN_ALERT
    assert codec.decode(data, "SupervisionAlert") == ALERT


def test_header_is_confluent() -> None:
    assert frame(258, b"\x01") == b"\x00\x00\x00\x01\x02\x01"
    assert unframe(b"\x00\x00\x00\x01\x02\x01") == (258, b"\x01")
    for bad in (b"", b"\x00\x00", b"\x01\x00\x00\x00\x01xx", None):
        with pytest.raises(Rejected) as info:
            unframe(bad)
        assert info.value.reason is Reason.UNDECODABLE


def test_corrupt_payload_is_undecodable(catalogue: SchemaCatalogue) -> None:
    codec = Codec(catalogue, FixedIds(catalogue))
    with pytest.raises(Rejected) as info:
        codec.decode(frame(42, b"\xff\xff\xff"), "SupervisionAlert")
    assert info.value.reason is Reason.UNDECODABLE


def test_json_conversion_names_the_field(catalogue: SchemaCatalogue) -> None:
    conv = JsonConverter(catalogue)
    body = {**to_json(ALERT), "kind": "LATE"}
    with pytest.raises(Rejected) as info:
        conv.convert("SupervisionAlert", body)
    assert info.value.field == "kind" and "MILESTONE_OVERDUE" in info.value.detail
    body = to_json(ALERT)
    del body["meta"]["source_city"]
    with pytest.raises(Rejected) as info:
        conv.convert("SupervisionAlert", body)
    assert info.value.field == "meta.source_city"
    assert conv.convert("SupervisionAlert", to_json(ALERT)) == ALERT


def test_money_keeps_two_decimals(catalogue: SchemaCatalogue) -> None:
    conv = JsonConverter(catalogue)
    from tests.conftest import example

    body = example("credit.record")
    body["meta"] = {**to_json(ALERT["meta"]), "event_type": "credit.record"}
    assert conv.convert("CreditRecord", body)["fine_amount"] == Decimal("200000.00")
    body["fine_amount"] = "1.234"
    with pytest.raises(Rejected) as info:
        conv.convert("CreditRecord", body)
    assert info.value.field == "fine_amount"
