"""The CloudEvents attributes of the bus's records, read back with the CloudEvents Python SDK."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from tests.conftest import example
from topics import cloudevents

AT = datetime(2026, 11, 22, 1, 30, 0, 123000, tzinfo=UTC)


def read(headers: list[tuple[str, bytes]], key: bytes, value: bytes):  # type: ignore[no-untyped-def]
    return from_binary_event(KafkaMessage(headers=dict(headers), key=key, value=value))


def test_an_input_event_is_a_cloudevent_from_its_city() -> None:
    event = example("credit.record")
    event["meta"] = {"event_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "source_city": "320100", "occurred_at": AT}
    headers = cloudevents.event_headers("njmc", "credit.record", event)
    ce = read(headers, b"91320106MA1XY31255", b"\x00\x00\x00\x00\x01\xc8avro")
    assert ce.get_id() == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert ce.get_source() == "urn:tongcheng:njmc:city:320100"
    assert ce.get_type() == "tongcheng.credit.record.v1"
    assert ce.get_time() == AT
    assert ce.get_subject() == "91320106MA1XY31255"
    assert ce.get_datacontenttype() == "application/avro"
    assert ce.get_data() == b"\x00\x00\x00\x00\x01\xc8avro"  # untouched: not UTF-8, so bytes


def test_a_derived_event_comes_from_its_service_and_epoch_millis_are_instants() -> None:
    event = {"incident_id": "INC-1", "meta": {"event_id": "e1", "source_city": "320100", "occurred_at": 1795829400123}}
    headers = dict(cloudevents.event_headers("sxcmc", "emergency.dispatch", event, "emergency"))
    assert headers["ce_source"] == b"urn:tongcheng:sxcmc:service:emergency"
    assert headers["ce_time"] == b"2026-11-28T01:30:00.123Z"
    assert headers["ce_subject"] == b"INC-1"


def test_a_dead_letter_is_identified_by_where_the_bad_record_is() -> None:
    headers = cloudevents.dead_letter_headers("credit", "njmc.credit.record.v1", 2, 41, AT)
    ce = read(headers, b"njmc.credit.record.v1/2/41", b"\xffnot avro")
    assert (ce.get_id(), ce.get_type()) == ("njmc.credit.record.v1/2/41", "tongcheng.dead_letter.v1")
    assert ce.get_source() == "urn:tongcheng:njmc:service:credit"
    assert ce.get_datacontenttype() == "application/octet-stream"


def test_forwarding_replaces_the_core_attributes_and_keeps_signatures_and_extensions() -> None:
    given = [
        ("ce_id", b"forged"),
        ("ce_traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("tongcheng.signature", b"c2ln"),
        ("Content-Type", b"text/plain"),
    ]
    ce = cloudevents.dead_letter_headers("credit", "njmc.credit.record.v1", 0, 1, AT)
    out = cloudevents.replace_core(given, ce)
    names = [k for k, _ in out]
    assert names.count("ce_id") == 1 and dict(out)["ce_id"] == b"njmc.credit.record.v1/0/1"
    assert "ce_traceparent" in names and "tongcheng.signature" in names and "Content-Type" not in names
