"""Emergency routing and project supervision on the real broker, with their metrics and API.

The emergency, supervision and readmodel workers run as subprocesses on one injected clock (a
file); deadlines are reached by moving that clock, never by sleeping through them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ops.chaos.probes import stop_worker, wait_until
from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import make_engine
from tests.conftest import example
from tests.integration.conftest import (
    PORT_SHIFT,
    clocked_settings,
    dead_letters,
    metric_at,
    provisioned,
    read_until,
    spawn_worker,
)
from topics.context import Context
from topics.metrics import Metrics
from topics.publisher import Publisher
from topics.settings import Settings

METRICS = 19800 + PORT_SHIFT
EMERGENCY, SUPERVISION = METRICS + 4, METRICS + 5
T = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def bus(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    settings = clocked_settings(stack, tmp_path_factory, "emergency", T, METRICS)
    ctx = provisioned(settings)
    # credit owns enforcement actions: supervision counts those it accepted
    procs = [spawn_worker(settings, service) for service in ("emergency", "supervision", "readmodel", "credit")]
    yield ctx
    for proc in procs:
        stop_worker(proc)


def set_clock(ctx: Context, when: datetime) -> None:
    Path(str(ctx.settings.clock_file)).write_text(when.isoformat())


def dispatch(ctx: Context, incident: str, seq: int = 1) -> dict[str, Any]:
    def match(e: dict[str, Any]) -> bool:
        return e["incident_id"] == incident and e["report_seq"] == seq

    return next(e for e in read_until(ctx, "emergency.dispatch", lambda es: any(map(match, es))) if match(e))


def alerts(ctx: Context, ref: str, count: int) -> list[dict[str, Any]]:
    """The alerts for `ref` once there are `count`, and again after a few more sweeps."""
    read_until(ctx, "supervision.alert", lambda es: sum(a["ref"] == ref for a in es) >= count)
    time.sleep(3)  # three more sweeps on the same clock: nothing may be raised twice
    return [a for a in read_until(ctx, "supervision.alert", lambda es: True, 5) if a["ref"] == ref]


def notice(incident: str, city: str, level: str, subtype: str, seq: int = 1, kind: str = "INITIAL", **kw: Any):
    body = copy.deepcopy(example("emergency.notice"))
    body.update(incident_id=incident, report_seq=seq, report_kind=kind, level=level, subtype=subtype)
    body["location"]["city"] = city
    body["affected_cities"] = kw.get("declared", [])
    return body


def ack(incident: str, city: str, seq: int = 1, at: datetime | None = None) -> dict[str, Any]:
    at = at or T + timedelta(minutes=2)
    return {"incident_id": incident, "report_seq": seq, "city": city, "acknowledged_at": at.isoformat()}


def wait_metric(port: int, name: str, want: float, timeout: float = 30, **labels: str) -> None:
    wait_until(f"{name}{labels} = {want}", lambda: metric_at(port, name, **labels) == pytest.approx(want), timeout)


def test_water_pollution_at_wuhu_reaches_downstream_and_silent_cities_are_alerted_once(bus: Context) -> None:
    with Publisher(bus, "340200", "test") as pub:
        pub.publish("emergency.notice", notice("INC-WUHU", "340200", "III", "WATER_POLLUTION"))
    d = dispatch(bus, "INC-WUHU")
    assert (d["effective_level"], d["raised_from"]) == ("III", None)
    assert {r["city"]: r["reason"] for r in d["recipients"]} == {
        "320100": "DOWNSTREAM",  # Nanjing
        "321100": "DOWNSTREAM",  # Zhenjiang
        "321000": "DOWNSTREAM",  # Yangzhou
        "340500": "DOWNSTREAM",  # Ma'anshan: downstream outranks adjacent
        "341800": "ADJACENT",  # Xuancheng
    }
    assert {r["ack_deadline"] for r in d["recipients"]} == {T + timedelta(minutes=60)}
    for city in ("320100", "340500"):
        with Publisher(bus, city, "test") as pub:
            pub.publish("emergency.ack", ack("INC-WUHU", city))
    wait_metric(EMERGENCY, "tongcheng_emergency_ack_seconds_count", 2, level="III")
    assert metric_at(EMERGENCY, "tongcheng_emergency_ack_seconds_sum", level="III") == 240.0  # 2 x 2 minutes
    wait_metric(EMERGENCY, "tongcheng_emergency_unacknowledged", 1, city="321100")
    assert metric_at(EMERGENCY, "tongcheng_emergency_unacknowledged", city="320100") == 0
    assert metric_at(EMERGENCY, "tongcheng_emergency_open_incidents", level="III") == 1

    set_clock(bus, T + timedelta(minutes=59))
    time.sleep(2)
    assert not [a for a in read_until(bus, "supervision.alert", lambda es: True, 3) if a["ref"] == "INC-WUHU#1"]
    set_clock(bus, T + timedelta(minutes=61))
    raised = alerts(bus, "INC-WUHU#1", 3)
    assert sorted(a["city"] for a in raised) == ["321000", "321100", "341800"]
    assert {a["kind"] for a in raised} == {"EMERGENCY_ACK_OVERDUE"}
    assert {a["due_at"] for a in raised} == {T + timedelta(minutes=60)}


def test_declared_city_in_the_other_province_raises_level_iv_to_ii(bus: Context) -> None:
    with Publisher(bus, "340500", "test") as pub:
        pub.publish("emergency.notice", notice("INC-DECL", "340500", "IV", "HAZMAT_SPILL", declared=["320100"]))
    d = dispatch(bus, "INC-DECL")
    assert (d["effective_level"], d["raised_from"]) == ("II", "IV")
    reasons = {r["city"]: r["reason"] for r in d["recipients"]}
    assert reasons["320100"] == "DECLARED"
    # level II fans out to Ma'anshan's neighbours: Wuhu, Chuzhou, Xuancheng (Nanjing is declared)
    assert reasons == {"320100": "DECLARED", "340200": "ADJACENT", "341100": "ADJACENT", "341800": "ADJACENT"}


def test_a_level_iv_flood_goes_to_no_one(bus: Context) -> None:
    with Publisher(bus, "341100", "test") as pub:
        pub.publish("emergency.notice", notice("INC-FLOOD", "341100", "IV", "FLOOD"))
    d = dispatch(bus, "INC-FLOOD")
    assert (d["effective_level"], d["recipients"]) == ("IV", [])


def test_report_order_and_acks_from_non_recipients_are_refused(bus: Context) -> None:
    with Publisher(bus, "320100", "test") as pub:
        pub.publish("emergency.notice", notice("INC-ORD", "320100", "III", "AIR_POLLUTION"))
        pub.publish("emergency.notice", notice("INC-ORD", "320100", "III", "AIR_POLLUTION", seq=2, kind="FINAL"))
        pub.publish("emergency.notice", notice("INC-ORD", "320100", "III", "AIR_POLLUTION", seq=3, kind="UPDATE"))
    assert dispatch(bus, "INC-ORD", 2)["report_seq"] == 2
    with Publisher(bus, "320800", "test") as pub:  # Huai'an does not border Nanjing
        pub.publish("emergency.ack", ack("INC-ORD", "320800", at=datetime.now(UTC)))
        pub.publish("emergency.ack", ack("INC-NONE", "320800", at=datetime.now(UTC)))
    notices = dead_letters(bus, "emergency.notice", 1)
    assert [d.headers["error.reason"] for d in notices] == ["incident_closed"]
    acks = dead_letters(bus, "emergency.ack", 2)
    assert sorted(d.headers["error.reason"] for d in acks) == ["not_owner", "unknown_incident"]


def test_project_with_three_milestones_and_the_enforcement_count(bus: Context) -> None:
    now = T + timedelta(minutes=61)  # the clock the first test left
    today = now.date()
    plan = copy.deepcopy(example("project.plan"))
    plan.update(project_id="NJMC-TEST-1", lead_city="321000")
    plan["milestones"] = [
        {"milestone_id": "M1", "title": "on time", "planned_date": str(today - timedelta(days=10))},
        {"milestone_id": "M2", "title": "late", "planned_date": str(today - timedelta(days=10))},
        {"milestone_id": "M3", "title": "overdue", "planned_date": str(today - timedelta(days=5))},
    ]

    def report(mid: str, status: str, actual: Any = None, project: str = "NJMC-TEST-1") -> dict[str, Any]:
        return {"project_id": project, "milestone_id": mid, "status": status, "actual_date": actual}

    with Publisher(bus, "321000", "test") as pub:
        pub.publish("project.plan", plan)
        # a plan and its reports are on two topics, which Kafka does not order between them: a
        # report the processor reads before its plan is refused (unknown_project), as it must be
        plans = bus.topics.topic("project.plan")
        wait_metric(
            SUPERVISION, "tongcheng_events_consumed_total", 1, outcome="applied", topic=plans, service="supervision"
        )
        pub.publish("project.milestone", report("M1", "DONE", str(today - timedelta(days=11))))
        pub.publish("project.milestone", report("M2", "DONE", str(today - timedelta(days=2))))
        pub.publish("project.milestone", report("M3", "IN_PROGRESS"))
        pub.publish("project.milestone", report("M9", "DONE", str(today)))
        pub.publish("project.milestone", report("M1", "DONE", str(today), project="NJMC-NOPE"))
    with Publisher(bus, "320100", "test") as pub:  # an action is reported by its lead city
        action = example("enforcement.action")
        prepared = pub.prepare("enforcement.action", action)
        pub.send_prepared(prepared).get(timeout=30)
        pub.send_prepared(prepared).get(timeout=30)  # the same event again: counted once
    raised = alerts(bus, "NJMC-TEST-1/M3", 1)
    assert [(a["kind"], a["city"]) for a in raised] == [("MILESTONE_OVERDUE", "321000")]
    wait_metric(SUPERVISION, "tongcheng_project_ontime_ratio", 1 / 3, city="321000")
    for state, n in (("DONE_ON_TIME", 1), ("DONE_LATE", 1), ("OVERDUE", 1), ("UPCOMING", 0)):
        assert metric_at(SUPERVISION, "tongcheng_project_milestones", city="321000", state=state) == n
    refused = dead_letters(bus, "project.milestone", 2)
    assert sorted(d.headers["error.reason"] for d in refused) == ["unknown_milestone", "unknown_project"]
    wait_metric(SUPERVISION, "tongcheng_enforcement_actions_total", 1, domain="FISHING_BAN")

    # the API, from the read model: YELLOW now, RED once M3 is more than 30 days overdue
    engine = make_engine(bus.settings.database_url)
    store = TokenStore(bus.settings.data_dir / "tokens.json")
    _, token = store.issue("320100", ("read",))
    app = create_app(bus, store, Metrics(), None, engine=engine)
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 60
    while (r := client.get("/v1/projects/NJMC-TEST-1")).status_code != 200 or "DONE_LATE" not in r.text:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)
    body = r.json()
    assert body["traffic_light"] == "YELLOW"
    assert [m["state"] for m in body["milestones"]] == ["DONE_ON_TIME", "DONE_LATE", "OVERDUE"]
    set_clock(bus, now + timedelta(days=26))  # M3 now 31 days overdue
    assert client.get("/v1/projects/NJMC-TEST-1").json()["traffic_light"] == "RED"
    assert len(alerts(bus, "NJMC-TEST-1/M3", 1)) == 1
    assert client.get("/v1/projects/NJMC-NOPE").status_code == 404

    # the scoreboard and the open emergencies
    board = {c["city"]: c for c in client.get("/v1/supervision/cities").json()["cities"]}
    assert board["321000"]["ontime_ratio"] == pytest.approx(1 / 3) and board["321000"]["milestones_overdue"] == 1
    assert board["321100"]["emergencies_unacknowledged"] >= 1 and board["320100"]["ontime_ratio"] == 1.0
    items = {i["incident_id"]: i for i in client.get("/v1/emergencies", params={"open": "true"}).json()["items"]}
    assert "INC-ORD" not in items and items["INC-WUHU"]["open"]
    assert items["INC-WUHU"]["acknowledgement"] == {
        "320100": "ACKNOWLEDGED",
        "321000": "OVERDUE",
        "321100": "OVERDUE",
        "340500": "ACKNOWLEDGED",
        "341800": "OVERDUE",
    }
    engine.dispose()


def test_prometheus_exposition_has_every_supervision_metric(bus: Context) -> None:
    text = (
        httpx.get(f"http://127.0.0.1:{EMERGENCY}/metrics").text
        + httpx.get(f"http://127.0.0.1:{SUPERVISION}/metrics").text
    )
    for name, kind in (
        ("tongcheng_emergency_open_incidents", "gauge"),
        ("tongcheng_emergency_unacknowledged", "gauge"),
        ("tongcheng_emergency_ack_seconds", "histogram"),
        ("tongcheng_project_milestones", "gauge"),
        ("tongcheng_project_ontime_ratio", "gauge"),
        ("tongcheng_enforcement_actions_total", "counter"),
    ):
        # prometheus-client names a counter's family with or without _total, by version
        assert f"# TYPE {name} {kind}" in text or f"# TYPE {name.removesuffix('_total')} {kind}" in text, name
        assert f"\n{name}" in text, name  # and it has samples
