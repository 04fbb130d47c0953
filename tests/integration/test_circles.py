"""A second circle, Suzhou-Wuxi-Changzhou (topics/data/sxcmc.circle.json), run from its file alone.

Every processor runs on it, as `tongcheng worker` subprocesses whose only circle setting is
TONGCHENG_CIRCLE_FILE, on the session's broker under a fresh prefix, beside the Nanjing circle's
credit worker under another: every event family goes end to end on the second circle (credit records
and enforcement into profiles and the BLACK list, feedback into tracking, a water-pollution notice
routed down the Yangtze, the Grand Canal and Lake Tai, its acks and the overdue alert on the injected
clock, a project and its milestone report, the read model and the status page in Chinese), and the
two circles never see each other's records, cities or principals. Every output record read here is
also read as a CloudEvent with the CloudEvents Python SDK.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from kafka.errors import KafkaError

from ops.chaos.probes import stop_worker, wait_until
from schemas.errors import Rejected
from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import make_engine
from tests.conftest import example
from tests.integration.conftest import PORT_SHIFT, fresh_settings, latest, provisioned, read_until, spawn_worker
from tests.integration.test_credit import record, uscc
from topics.circle import DATA_DIR
from topics.context import Context
from topics.kafka_auth import city_principal, client_config
from topics.publisher import Publisher
from topics.settings import Settings
from topics.subscriber import Delivery, Subscriber

SXCMC = DATA_DIR / "sxcmc.circle.json"
SUZHOU, WUXI, CHANGZHOU = "320500", "320200", "320400"
METRICS = 21700 + PORT_SHIFT
T = datetime.now(UTC).replace(microsecond=0)
LONG_AGO = (T - timedelta(days=400)).date().isoformat()


@pytest.fixture(scope="module")
def circles(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Context, Context]]:
    """The second circle with every processor, and the Nanjing circle with its credit worker, on one broker."""
    data = tmp_path_factory.mktemp("sxcmc")
    (data / "clock").write_text(T.isoformat())
    sxc = provisioned(
        fresh_settings(
            stack,
            circle_file=SXCMC,
            data_dir=data,
            clock_file=data / "clock",
            sweep_seconds=1.0,
            metrics_port=METRICS,
        )
    )
    nj = provisioned(fresh_settings(stack, data_dir=tmp_path_factory.mktemp("njmc"), metrics_port=METRICS + 10))
    procs = [spawn_worker(sxc.settings, s) for s in ("credit", "sanctions", "emergency", "supervision", "readmodel")]
    procs.append(spawn_worker(nj.settings, "credit"))
    yield sxc, nj
    for proc in procs:
        stop_worker(proc)


def cloudevent(d: Delivery) -> Any:
    """A delivery read with the CloudEvents SDK (Kafka binding, binary mode)."""
    headers = {k: v.encode("utf-8") for k, v in d.headers.items()}
    return from_binary_event(KafkaMessage(headers=headers, key=d.key, value=d.value or b""))


def deliveries(ctx: Context, topic: str, until: Any, timeout: float = 90) -> list[Delivery]:
    got: list[Delivery] = []
    sub = Subscriber(ctx, [topic], from_beginning=True)
    deadline = time.monotonic() + timeout
    try:
        while not until(got):
            assert time.monotonic() < deadline, f"{topic}: {[d.event for d in got]}"
            got += sub.poll(timeout_ms=300)
    finally:
        sub.close()
    return got


def publish(ctx: Context, city: str, event_type: str, body: dict[str, Any]) -> str:
    with Publisher(ctx, city, "sxc-test") as pub:
        return pub.publish(event_type, body)


def test_every_event_family_runs_end_to_end_on_the_second_circle(circles: tuple[Context, Context]) -> None:
    ctx, _ = circles
    assert (
        ctx.topics.prefix.startswith("t")
        and ctx.circle.code == "sxcmc"
        and set(ctx.circle.codes)
        == {
            SUZHOU,
            WUXI,
            CHANGZHOU,
        }
    )
    subject, fined = uscc(1701), "91350100M000100Y43"
    # credit: a SERIOUS penalty from Suzhou; enforcement: Changzhou's closed joint action with a decision
    record_id = publish(ctx, SUZHOU, "credit.record", record(subject, "sxc-1", severity="SERIOUS", domain=None))
    action = copy.deepcopy(example("enforcement.action"))
    action.update(action_id="SXC-JE-1", lead_city=CHANGZHOU, participating_cities=[WUXI, SUZHOU])
    publish(ctx, CHANGZHOU, "enforcement.action", action)
    # emergencies: pollution at Changzhou (level III, nobody declared)
    notice = copy.deepcopy(example("emergency.notice"))
    notice.update(incident_id="SXC-INC-1")
    notice["location"].update(city=CHANGZHOU, district="新北区", water_body="长江")
    publish(ctx, CHANGZHOU, "emergency.notice", notice)
    # projects: Suzhou leads, Wuxi takes part and reports the first milestone
    plan = copy.deepcopy(example("project.plan"))
    plan.update(project_id="SXC-2026-T-001", name="苏锡常南部城际铁路", lead_city=SUZHOU, participating_cities=[WUXI])
    publish(ctx, SUZHOU, "project.plan", plan)
    publish(ctx, WUXI, "project.milestone", {**example("project.milestone"), "project_id": "SXC-2026-T-001"})

    # the profiles: the penalty makes grade D, the closed action's finding a record signed by credit
    profiles = deliveries(
        ctx, ctx.topics.topic("credit.profile"), lambda got: {subject, fined} <= {d.event["subject_id"] for d in got}
    )
    newest = {d.event["subject_id"]: d for d in profiles}
    assert newest[subject].event["grade"] == "D" and newest[subject].event["cities"] == [SUZHOU]
    assert newest[fined].event["cities"] == [CHANGZHOU]
    ce = cloudevent(newest[subject])
    assert ce.get_id() == newest[subject].event["meta"]["event_id"]
    assert ce.get_source() == f"urn:tongcheng:{ctx.topics.prefix}:service:credit"
    assert (ce.get_type(), ce.get_subject()) == ("tongcheng.credit.profile.v1", subject)
    assert ce.get_datacontenttype() == "application/avro"
    assert ctx.codec.decode(newest[subject].value, "CreditProfile")["meta"]["event_id"] == ce.get_id()

    # the list: BLACK in the three cities; Wuxi applies a measure and its feedback is tracked
    entry = latest(ctx, "sanction.list", "subject_id", lambda e: subject in e)[subject]
    assert entry["list"] == "BLACK" and all(
        sorted(m["applies_in"]) == sorted(ctx.circle.codes) for m in entry["measures"]
    )
    feedback = {
        "subject_id": subject,
        "list_revision": entry["revision"],
        "city": WUXI,
        "measure_code": entry["measures"][0]["code"],
        "outcome": "APPLIED",
        "business_ref": "wx-1",
        "reported_at": T.isoformat(),
    }
    publish(ctx, WUXI, "sanction.feedback", feedback)
    tracked = latest(
        ctx,
        "sanction.tracking",
        "subject_id",
        lambda t: subject in t and any(c["status"] == "ANSWERED" for c in t[subject]["cities"]),
    )
    assert {c["city"]: c["status"] for c in tracked[subject]["cities"]}[WUXI] == "ANSWERED"

    # the dispatch: Wuxi and Suzhou are downstream of Changzhou (Yangtze, Grand Canal, Lake Tai)
    dispatch = read_until(ctx, "emergency.dispatch", lambda es: any(e["incident_id"] == "SXC-INC-1" for e in es))[0]
    assert {r["city"]: r["reason"] for r in dispatch["recipients"]} == {WUXI: "DOWNSTREAM", SUZHOU: "DOWNSTREAM"}
    assert dispatch["effective_level"] == "III"  # one province: nothing raises it
    ack = {"incident_id": "SXC-INC-1", "report_seq": 1, "city": WUXI, "acknowledged_at": T.isoformat()}
    publish(ctx, WUXI, "emergency.ack", ack)
    accepted = deliveries(ctx, ctx.topics.accepted("emergency.ack"), lambda got: len(got) >= 1)[0]
    ce = cloudevent(accepted)  # forwarded byte for byte: the ack's own attributes, from Wuxi
    assert (ce.get_source(), ce.get_type()) == (
        f"urn:tongcheng:{ctx.topics.prefix}:city:{WUXI}",
        "tongcheng.emergency.ack.v1",
    )
    # Suzhou stays silent past the 60-minute deadline of level III: one alert, for Suzhou only
    Path(str(ctx.settings.clock_file)).write_text((T + timedelta(minutes=61)).isoformat())
    alerts = read_until(ctx, "supervision.alert", lambda es: any(a["ref"] == "SXC-INC-1#1" for a in es))
    assert {(a["kind"], a["city"]) for a in alerts if a["ref"] == "SXC-INC-1#1"} == {("EMERGENCY_ACK_OVERDUE", SUZHOU)}

    # the read model and the status page, in Chinese with the file's names
    engine = make_engine(ctx.settings.database_url)
    app = create_app(ctx, TokenStore(ctx.settings.data_dir / "tokens.json"), engine=engine)

    def page() -> str:
        with TestClient(app) as client:
            return client.get("/", headers={"Accept-Language": "zh-CN"}).text

    wait_until("the status page shows the milestone and the open incident", lambda: "SXC-INC-1" in page(), 60)
    html = page()
    assert "苏锡常都市圈" in html and all(f"<td>{n}</td>" in html for n in ("苏州", "无锡", "常州"))
    assert "南京" not in html
    assert record_id


def test_two_circles_share_the_broker_without_touching_each_other(circles: tuple[Context, Context]) -> None:
    sxc, nj = circles
    assert sxc.topics.prefix != nj.topics.prefix and nj.circle.code == "njmc"
    subject = uscc(1702)
    publish(nj, "320100", "credit.record", record(subject, "nj-1", severity="SERIOUS", domain=None))
    publish(sxc, CHANGZHOU, "credit.record", record(subject, "sxc-2", severity="MINOR", domain=None))
    in_nj = latest(nj, "credit.profile", "subject_id", lambda p: subject in p)[subject]
    in_sxc = latest(sxc, "credit.profile", "subject_id", lambda p: subject in p)[subject]
    # one subject, two circles: each profile holds its own circle's record only
    assert (in_nj["grade"], in_nj["cities"], [r["record_id"] for r in in_nj["active_records"]]) == (
        "D",
        ["320100"],
        ["nj-1"],
    )
    assert (in_sxc["grade"], in_sxc["cities"], [r["record_id"] for r in in_sxc["active_records"]]) == (
        "B",
        [CHANGZHOU],
        ["sxc-2"],
    )
    # a city of one circle is no member of the other, for the SDK ...
    with pytest.raises(Rejected, match="not a member city"):
        Publisher(sxc, "320100", "sxc-test")
    # ... nor for the broker: Nanjing's principal may not write the second circle's topics
    nanjing = KafkaProducer(
        bootstrap_servers=sxc.settings.bootstrap,
        acks="all",
        max_block_ms=10_000,
        **client_config(sxc.settings.with_(kafka_user=city_principal("320100"))),
    )
    try:
        with pytest.raises(KafkaError):
            nanjing.send(sxc.topics.topic("credit.record"), key=b"k", value=b"v").get(timeout=15)
    finally:
        nanjing.close(timeout=5)
    # and a record of the second circle never reached the first one's topics
    everything = read_until(nj, "credit.profile", lambda es: any(e["subject_id"] == subject for e in es))
    assert all(r["record_id"] != "sxc-2" for e in everything for r in e["active_records"])
