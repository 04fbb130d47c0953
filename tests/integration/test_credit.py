"""The credit processor on the real broker: a `tongcheng worker credit` subprocess per module."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaProducer

from ops.chaos.probes import stop_worker
from tests.conftest import example
from tests.integration.conftest import (
    PORT_SHIFT,
    clocked_settings,
    dead_letters,
    latest,
    metric_at,
    provisioned,
    spawn_worker,
)
from topics.context import Context
from topics.kafka_auth import client_config
from topics.publisher import Publisher
from topics.settings import Settings

METRICS_PORT = 19400 + PORT_SHIFT
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def credit(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    settings = clocked_settings(stack, tmp_path_factory, "credit", NOW, METRICS_PORT)
    ctx = provisioned(settings)
    proc = spawn_worker(settings, "credit")
    yield ctx
    stop_worker(proc)


def record(subject: str, record_id: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(example("credit.record"))
    body["subject"]["subject_id"] = subject
    body["record_id"] = record_id
    body.update(changes)
    return body


def uscc(seed: int) -> str:
    from topics.identifiers import uscc_check_char

    first = f"91320100MA{seed:07d}"
    return first + uscc_check_char(first)


def profiles(ctx: Context, until: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
    """Latest profile per subject, read until `until` holds."""
    return latest(ctx, "credit.profile", "subject_id", until, timeout)


def dlq(ctx: Context, count: int, timeout: float = 60) -> list[Any]:
    return dead_letters(ctx, "credit.record", count, timeout)


def metric(name: str, **labels: str) -> float:
    """A sample from the credit worker's metrics endpoint (base port + 1)."""
    return metric_at(METRICS_PORT + 1, name, **labels)


def test_three_cities_merge_into_one_profile(credit: Context) -> None:
    s = uscc(1)
    for city, body in (
        ("320100", record(s, "m-1", severity="GENERAL", domain=None)),
        ("321100", record(s, "m-2", severity="MINOR", domain=None, decision_date=NOW.date().isoformat())),
        ("340500", record(s, "m-3", category="HONOR", polarity="POSITIVE", severity="NONE", domain=None)),
    ):
        with Publisher(credit, city, "test") as pub:
            pub.publish("credit.record", body)
    got = profiles(credit, lambda p: s in p and len(p[s]["active_records"]) == 3)[s]
    assert got["grade"] == "C"
    assert got["cities"] == ["320100", "321100", "340500"]
    assert got["counts"] == {"positive": 1, "neutral": 0, "negative": 2, "minor": 1, "general": 1, "serious": 0}


def test_revoke_and_repair_change_the_grade(credit: Context) -> None:
    a, b = uscc(2), uscc(3)
    with Publisher(credit, "320100", "test") as pub:
        pub.publish("credit.record", record(a, "r-1", severity="SERIOUS"))
        pub.publish("credit.record", record(b, "r-2", severity="GENERAL", domain=None, decision_date="2026-05-01"))
    profiles(credit, lambda p: p.get(a, {}).get("grade") == "D" and p.get(b, {}).get("grade") == "C")
    with Publisher(credit, "320100", "test") as pub:
        pub.publish("credit.record", record(a, "r-1", action="REVOKE"))
        pub.publish(
            "credit.record",
            record(b, "r-2", action="REPAIR", severity="GENERAL", domain=None, decision_date="2026-05-01"),
        )
    got = profiles(credit, lambda p: p[a]["grade"] == "B" and p[b]["grade"] == "B")
    assert got[a]["active_records"] == [] and got[b]["active_records"] == []


def test_duplicate_delivery_leaves_state_unchanged(credit: Context) -> None:
    s = uscc(4)
    with Publisher(credit, "320100", "test") as pub:
        prepared = pub.prepare("credit.record", record(s, "d-1"))
        for _ in range(3):  # the same event, redelivered
            pub.send_prepared(prepared).get(timeout=30)
        pub.publish("credit.record", record(s, "d-1"))  # a second PUBLISH of a known record_id
    got = profiles(credit, lambda p: s in p)[s]
    labels = {"outcome": "duplicate", "service": "credit", "topic": credit.topics.topic("credit.record")}
    deadline = time.monotonic() + 30
    while metric("tongcheng_events_consumed_total", **labels) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert metric("tongcheng_events_consumed_total", **labels) >= 3  # three redeliveries counted, not applied
    got = profiles(credit, lambda p: s in p)[s]
    assert got["revision"] == 1 and len(got["active_records"]) == 1


def test_bad_inputs_go_to_the_dlq_and_the_good_ones_apply(credit: Context) -> None:
    s, other = uscc(5), uscc(6)
    topic = credit.topics.topic("credit.record")
    with Publisher(credit, "320100", "test") as pub:
        pub.publish("credit.record", record(s, "b-1", severity="GENERAL", domain=None))
    raw = KafkaProducer(bootstrap_servers=credit.settings.bootstrap, acks="all", **client_config(credit.settings))
    with Publisher(credit, "321100", "test") as pub:
        good = pub.prepare("credit.record", record(other, "b-2"))
        bad_uscc = pub.prepare("credit.record", record(s, "b-3"))
        bad_event = dict(bad_uscc.event)
        bad_event["subject"] = {**bad_event["subject"], "subject_id": "91320106MA1XY31256"}
        broken = credit.codec.encode(f"{topic}-value", "CreditRecord", bad_event)
        foreign = pub.prepare("credit.record", record(s, "b-1", action="REVOKE"))
        unknown = pub.prepare("credit.record", record(s, "never", action="AMEND"))
    with Publisher(credit, "320100", "test") as pub:
        too_early = pub.prepare("credit.record", record(s, "b-1", action="REPAIR"))
    for key, value, headers in (
        (s, b"\x07garbage", []),
        (s, broken, []),
        (s, foreign.value, list(foreign.headers)),
        (s, unknown.value, list(unknown.headers)),
        (s, too_early.value, list(too_early.headers)),
        (other, good.value, list(good.headers)),
    ):
        raw.send(topic, key=key.encode(), value=value, headers=headers).get(timeout=30)
    raw.close()
    got = dlq(credit, 5)
    reasons = sorted(d.headers["error.reason"] for d in got)
    assert reasons == ["invalid_uscc", "not_owner", "repair_too_early", "undecodable", "unknown_record"]
    for d in got:
        assert d.headers["source.topic"] == topic and d.headers["error.detail"]
        assert int(d.headers["source.offset"]) >= 0 and "source.partition" in d.headers
    assert got[0].value in (b"\x07garbage", broken, foreign.value, unknown.value, too_early.value)
    latest = profiles(credit, lambda p: other in p and s in p)
    assert latest[s]["grade"] == "C"  # b-1 still active: the bad ones changed nothing
    assert metric("tongcheng_events_rejected_total", topic=topic, reason="repair_too_early") == 1


def test_enforcement_findings_become_records_exactly_once(credit: Context) -> None:
    action = example("enforcement.action")
    action["action_id"] = "JE-TEST-1"
    target = uscc(7)
    action["findings"][0]["subject"]["subject_id"] = target
    action["findings"].append({**action["findings"][0], "decision_no": None, "violation": "warning only"})
    with Publisher(credit, "320100", "test") as pub:
        prepared = pub.prepare("enforcement.action", action)
        pub.send_prepared(prepared).get(timeout=30)
        pub.send_prepared(prepared).get(timeout=30)  # redelivered
    got = profiles(credit, lambda p: target in p)[target]
    time.sleep(3)
    got = profiles(credit, lambda p: target in p)[target]
    assert [r["record_id"] for r in got["active_records"]] == ["JE-TEST-1/1"]
    assert got["grade"] == "C" and got["revision"] == 1


def test_expiry_under_the_injected_clock(credit: Context) -> None:
    s = uscc(8)
    decided = (NOW - timedelta(days=80)).date().isoformat()  # MINOR: 3 months of publicity
    with Publisher(credit, "320100", "test") as pub:
        pub.publish("credit.record", record(s, "e-1", severity="MINOR", domain=None, decision_date=decided))
    profiles(credit, lambda p: s in p and len(p[s]["active_records"]) == 1)
    assert credit.settings.clock_file is not None
    credit.settings.clock_file.write_text((NOW + timedelta(days=20)).isoformat())
    try:
        got = profiles(credit, lambda p: p[s]["active_records"] == [])[s]
    finally:
        credit.settings.clock_file.write_text(NOW.isoformat())
    assert got["grade"] == "B" and got["revision"] == 2
