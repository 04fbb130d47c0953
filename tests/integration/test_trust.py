"""One verdict per event, on the real broker with every processor and the read model running.

Forged provenance, ownership violations and poison records on every input topic: each bad event
is one dead letter, written by the owner of its type and naming it; none reaches an accepted
stream, so none reaches the read model; no worker dies.
"""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaProducer

from ops.chaos.probes import stop_worker, wait_until
from services.api.reads import ReadModel
from services.api.supervision import Supervision
from services.readmodel.db import make_engine
from services.readmodel.rows import CreditProfileRow
from services.readmodel.tables import credit_profiles
from tests.conftest import example
from tests.integration.conftest import PORT_SHIFT, clocked_settings, provisioned, spawn_worker
from topics.catalog import INPUT_TYPES, OWNER
from topics.context import Context
from topics.kafka_auth import client_config
from topics.provenance import SIGNATURE_HEADER, Signer
from topics.publisher import Prepared, Publisher
from topics.settings import Settings
from topics.subscriber import Delivery, Subscriber

METRICS = 19900 + PORT_SHIFT
SERVICES = ("credit", "sanctions", "emergency", "supervision", "readmodel")
T = datetime.now(UTC).replace(microsecond=0)
SUBJECT = "91320106MA1XY31255"


@pytest.fixture(scope="module")
def bus(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Context, list[Any]]]:
    settings = clocked_settings(stack, tmp_path_factory, "trust", T, METRICS)
    ctx = provisioned(settings)
    procs = [spawn_worker(settings, service) for service in SERVICES]
    yield ctx, procs
    for proc in procs:
        stop_worker(proc)


def prepare(ctx: Context, city: str, event_type: str, body: dict[str, Any]) -> Prepared:
    with Publisher(ctx, city, "trust-test") as pub:
        return pub.prepare(event_type, body)


def send(ctx: Context, items: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
    """Raw records (topic, key, value, headers), as any client with write access could send them."""
    producer = KafkaProducer(bootstrap_servers=ctx.settings.bootstrap, acks="all", **client_config(ctx.settings))
    try:
        for topic, key, value, headers in items:
            producer.send(topic, key=key, value=value, headers=headers).get(timeout=30)
    finally:
        producer.close()


def signed(p: Prepared) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    return p.topic, p.key, p.value, list(p.headers)


def read(ctx: Context, topics: list[str], until: Any, timeout: float = 60, settle: float = 2.0) -> list[Delivery]:
    """Every record of `topics` from the beginning, once `until(records)` holds and then `settle`
    seconds more (so a record sent twice would be seen)."""
    sub = Subscriber(ctx, topics, from_beginning=True)
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(got):
            assert time.monotonic() < deadline, f"{topics}: {len(got)} records after {timeout}s"
            got += sub.poll(timeout_ms=300)
        calm = time.monotonic() + settle
        while time.monotonic() < calm:
            got += sub.poll(timeout_ms=300)
    finally:
        sub.close()
    return got


def event_id(d: Delivery) -> str | None:
    return d.event["meta"]["event_id"] if d.event else None


def test_forgeries_and_ownership_violations_are_one_dead_letter_each_and_never_served(
    bus: tuple[Context, list[Any]],
) -> None:
    ctx, procs = bus
    # what the owners hold: Wuhu's incident, Nanjing's project (Yangzhou takes part), Nanjing's record
    notice = example("emergency.notice")
    notice.update(incident_id="INC-TRUST", report_seq=1, report_kind="INITIAL", level="III", subtype="WATER_POLLUTION")
    notice["location"]["city"], notice["affected_cities"] = "340200", []
    plan = example("project.plan")
    plan.update(project_id="P-TRUST", name="Ningwu rail link", lead_city="320100", participating_cities=["321000"])
    record = example("credit.record")
    record["subject"]["subject_id"], record["record_id"] = SUBJECT, "r-trust-1"
    good = [
        prepare(ctx, "340200", "emergency.notice", notice),
        prepare(ctx, "320100", "project.plan", plan),
        prepare(ctx, "320100", "credit.record", record),
    ]
    send(ctx, [signed(p) for p in good])

    final = {**copy.deepcopy(notice), "report_seq": 2, "report_kind": "FINAL"}

    def ack(city: str) -> dict[str, Any]:
        at = (T + timedelta(minutes=3)).isoformat()
        return {"incident_id": "INC-TRUST", "report_seq": 1, "city": city, "acknowledged_at": at}

    milestone = {**example("project.milestone"), "project_id": "P-TRUST"}
    milestone["milestone_id"] = plan["milestones"][0]["milestone_id"]
    # forged provenance: Nanjing's record signed by Zhenjiang's key; a value changed after signing; no signature
    forged = prepare(ctx, "320100", "credit.record", {**record, "record_id": "r-forged"})
    zhenjiang = Signer.for_city(ctx.settings, ctx.circle, "321100")
    tampered = prepare(ctx, "320100", "credit.record", {**record, "record_id": "r-tampered"})
    other = prepare(ctx, "320100", "credit.record", {**record, "record_id": "r-other"})
    with Publisher(ctx, "320100", "trust-test", sign=False) as unsigned_pub:
        unsigned = unsigned_pub.prepare("credit.record", {**record, "record_id": "r-unsigned"})
    bad = {
        # event_type: [(prepared, expected reason, what is sent)]
        "credit.record": [
            (
                forged,
                "source_mismatch",
                (forged.topic, forged.key, forged.value, zhenjiang.headers(forged.topic, forged.value)),
            ),
            # another event under this one's signature: the signature covers the exact value bytes
            (other, "bad_signature", (tampered.topic, tampered.key, other.value, list(tampered.headers))),
            (unsigned, "unsigned", signed(unsigned)),
            # Zhenjiang revokes Nanjing's record: only the issuing city lifts or changes it
            (p := prepare(ctx, "321100", "credit.record", {**record, "action": "REVOKE"}), "not_owner", signed(p)),
        ],
        "emergency.notice": [  # Nanjing closes Wuhu's incident
            (p := prepare(ctx, "320100", "emergency.notice", final), "not_owner", signed(p)),
        ],
        "emergency.ack": [
            (p := prepare(ctx, "320800", "emergency.ack", ack("320800")), "not_owner", signed(p)),  # not a recipient
            (p := prepare(ctx, "320100", "emergency.ack", ack("340500")), "not_owner", signed(p)),  # for another city
        ],
        "project.plan": [  # Yangzhou, a participant, re-plans Nanjing's project
            (
                p := prepare(ctx, "321000", "project.plan", {**plan, "lead_city": "321000", "name": "taken"}),
                "not_owner",
                signed(p),
            ),
        ],
        "project.milestone": [  # Huai'an does not take part
            (p := prepare(ctx, "320800", "project.milestone", milestone), "not_owner", signed(p)),
        ],
    }
    # the good events first, so the violations meet the state they violate
    accepted = read(
        ctx,
        [ctx.topics.accepted(t) for t in ("emergency.notice", "project.plan", "credit.record")],
        lambda got: {p.event_id for p in good} <= set(map(event_id, got)),
        settle=0,
    )
    assert len(accepted) == 3
    send(ctx, [sent for cases in bad.values() for _, _, sent in cases])

    expected = sum(len(cases) for cases in bad.values())
    dead = read(ctx, [ctx.topics.dlq(t) for t in bad], lambda got: len(got) >= expected)
    assert len(dead) == expected  # one dead letter per bad event, not one per consuming service
    for event_type, cases in bad.items():
        mine = [d for d in dead if d.topic == ctx.topics.dlq(event_type)]
        assert sorted(d.headers["error.reason"] for d in mine) == sorted(reason for _, reason, _ in cases)
        assert {d.headers["error.service"] for d in mine} == {OWNER[event_type]}
        assert sorted(d.value or b"" for d in mine) == sorted(sent[2] or b"" for _, _, sent in cases)  # byte for byte

    # no accepted stream carries any of them ...
    bad_ids = {p.event_id for cases in bad.values() for p, _, _ in cases} | {tampered.event_id}
    streams = [ctx.topics.accepted(t) for t in bad]
    assert not bad_ids & set(map(event_id, read(ctx, streams, lambda got: len(got) >= 3)))
    # ... so the read model serves only what the owners applied
    engine = make_engine(ctx.settings.database_url)
    model = ReadModel(engine)
    figures = Supervision(model, ctx.circle, ctx.clock)
    try:
        wait_until(
            "the read model has the incident, the project and the profile",
            lambda: (
                "INC-TRUST" in figures.incidents(False)
                and figures.project("P-TRUST") is not None
                and model.one(credit_profiles, credit_profiles.c.subject_id == SUBJECT, CreditProfileRow) is not None
            ),
            60,
        )
        time.sleep(2)  # the sink's next batches, had anything been forwarded
        (incident,) = [i for i in figures.emergencies(False) if i["incident_id"] == "INC-TRUST"]
        assert incident["open"] and [r["report_kind"] for r in incident["reports"]] == ["INITIAL"]
        assert "320800" not in incident["acknowledgement"]  # not a recipient
        assert "ACKNOWLEDGED" not in incident["acknowledgement"].values()  # 340500's ack was sent by Nanjing
        project = figures.project("P-TRUST")
        assert project is not None and (project["name"], project["lead_city"]) == ("Ningwu rail link", "320100")
        assert {m["status"] for m in project["milestones"]} == {"NOT_STARTED"}  # Huai'an's report is not served
        profile = model.one(credit_profiles, credit_profiles.c.subject_id == SUBJECT, CreditProfileRow)
        assert [r["record_id"] for r in profile.active_records] == ["r-trust-1"] and profile.revision == 1
    finally:
        engine.dispose()
    assert all(proc.poll() is None for proc in procs)


def poison(ctx: Context, event_type: str) -> list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Three bad records for an input topic: bytes that are not Avro (under a signature header), a
    null value (a tombstone, which must delete nothing), and a good event that no city signed."""
    topic = ctx.topics.topic(event_type)
    with Publisher(ctx, "320100", "trust-test", sign=False) as pub:
        p = pub.prepare(event_type, example(event_type))
    return [
        (topic, b"poison", b"\x07not avro at all", [(SIGNATURE_HEADER, base64.b64encode(bytes(64)))]),
        (topic, b"poison", None, []),
        (topic, b"poison", p.value, []),
    ]


def test_poison_on_every_input_topic_is_one_dead_letter_each_and_no_worker_dies(bus: tuple[Context, list[Any]]) -> None:
    ctx, procs = bus
    sent = {t: poison(ctx, t) for t in INPUT_TYPES}
    send(ctx, [r for records in sent.values() for r in records])
    dlqs = [ctx.topics.dlq(t) for t in INPUT_TYPES]

    def poisoned(got: list[Delivery]) -> list[Delivery]:
        return [d for d in got if d.headers.get("source.key") == "poison"]

    dead = poisoned(read(ctx, dlqs, lambda got: len(poisoned(got)) >= 3 * len(INPUT_TYPES)))
    assert len(dead) == 3 * len(INPUT_TYPES)
    for event_type in INPUT_TYPES:
        mine = [d for d in dead if d.topic == ctx.topics.dlq(event_type)]
        assert sorted(d.headers["error.reason"] for d in mine) == ["null_value", "undecodable", "unsigned"], event_type
        assert {d.headers["error.service"] for d in mine} == {OWNER[event_type]}
    assert all(proc.poll() is None for proc in procs)  # 0 worker crashes
