"""The list chain on the real broker: records -> credit worker -> profiles -> sanctions worker -> list,
the cities' feedback and its overdue alerts, the read model and API over it, and a city's inbox."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from consumers.inbox import Inbox
from ops.chaos.probes import stop_worker, wait_until
from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import make_engine
from services.sanctions.rules import RULES
from tests.integration.conftest import (
    PORT_SHIFT,
    clocked_settings,
    dead_letters,
    latest,
    metric_at,
    provisioned,
    spawn_worker,
)
from tests.integration.test_credit import profiles, record, uscc
from topics.context import Context
from topics.metrics import Metrics
from topics.publisher import Publisher
from topics.settings import Settings

NOW = datetime.now(UTC)
LONG_AGO = (NOW - timedelta(days=400)).date().isoformat()
RECENT = (NOW - timedelta(days=30)).date().isoformat()


@pytest.fixture(scope="module")
def chain(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    settings = clocked_settings(stack, tmp_path_factory, "sanctions", NOW, 19700 + PORT_SHIFT)
    ctx = provisioned(settings)
    procs = [spawn_worker(settings, service) for service in ("credit", "sanctions", "readmodel")]
    yield ctx
    for proc in procs:
        stop_worker(proc)


def entries(ctx: Context, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return latest(ctx, "sanction.list", "subject_id", until)


def test_serious_penalty_blacklists_in_all_cities_and_repair_removes(chain: Context) -> None:
    s = uscc(301)
    with Publisher(chain, "321100", "test") as pub:
        pub.publish("credit.record", record(s, "k-1", severity="SERIOUS", domain=None, decision_date=LONG_AGO))
    got = entries(chain, lambda e: s in e)[s]
    assert (got["list"], got["status"], got["initiated_by"], got["revision"]) == ("BLACK", "LISTED", "321100", 1)
    assert [m["code"] for m in got["measures"]] == list(RULES.lists["BLACK"].measures)
    assert len(got["measures"]) == 6
    assert all(sorted(m["applies_in"]) == sorted(chain.circle.codes) for m in got["measures"])
    assert len(chain.circle.codes) == 10 and got["reasons"] == ["k-1"]
    with Publisher(chain, "321100", "test") as pub:
        pub.publish("credit.record", record(s, "k-1", action="REPAIR", severity="SERIOUS", domain=None))
    got = entries(chain, lambda e: e[s]["status"] == "REMOVED")[s]
    assert got["revision"] == 2 and got["removal_reason"] == "repaired: k-1"


def test_focus_needs_two_cities(chain: Context) -> None:
    two, one = uscc(302), uscc(303)
    for city, subject, rid in (
        ("320100", two, "f-1"),
        ("340500", two, "f-2"),
        ("320100", one, "f-3"),
        ("320100", one, "f-4"),
    ):
        with Publisher(chain, city, "test") as pub:
            pub.publish("credit.record", record(subject, rid, severity="GENERAL", domain=None, decision_date=RECENT))
    profiles(chain, lambda p: one in p and len(p[one]["active_records"]) == 2)
    with Publisher(chain, "320100", "test") as pub:  # then a SERIOUS record for the one-city subject
        pub.publish("credit.record", record(one, "f-5", severity="SERIOUS", domain=None))
    got = entries(chain, lambda e: one in e and two in e)
    assert got[two]["list"] == "FOCUS" and [m["code"] for m in got[two]["measures"]] == ["INSPECTION_INTENSIFIED"]
    # its profiles are decided in order, so revision 1 means the two GENERALs listed nothing before it
    assert (got[one]["list"], got[one]["revision"]) == ("BLACK", 1)


def test_grade_a_with_two_positives_is_red(chain: Context) -> None:
    s = uscc(305)
    with Publisher(chain, "341100", "test") as pub:
        for rid in ("h-1", "h-2"):
            pub.publish(
                "credit.record",
                record(
                    s, rid, category="HONOR", polarity="POSITIVE", severity="NONE", domain=None, decision_date=RECENT
                ),
            )
    got = entries(chain, lambda e: s in e)[s]
    assert got["list"] == "RED" and got["initiated_by"] == "341100"
    assert {m["code"] for m in got["measures"]} == {"GREEN_CHANNEL", "TOLERANT_ACCEPTANCE", "INSPECTION_REDUCED"}


SANCTIONS_METRICS = 19700 + PORT_SHIFT + 3


def ratio(city: str) -> float:
    return metric_at(SANCTIONS_METRICS, "tongcheng_sanction_feedback_ratio", city=city)


def feedback(
    subject: str, revision: int, city: str, code: str = "GOV_PROCUREMENT_BAN", outcome: str = "APPLIED"
) -> dict[str, Any]:
    return {
        "subject_id": subject,
        "list_revision": revision,
        "city": city,
        "measure_code": code,
        "outcome": outcome,
        "business_ref": f"{city}-{subject}",
        "reported_at": NOW.isoformat(),
    }


def statuses(tracking: dict[str, Any]) -> dict[str, str]:
    return {c["city"]: c["status"] for c in tracking["cities"]}


def test_feedback_loop_overdue_alerts_ratio_read_model_and_inbox(chain: Context) -> None:
    ctx = chain
    cities = list(ctx.circle.codes)
    clock_file = Path(str(ctx.settings.clock_file))
    first, second = uscc(310), uscc(311)

    # 1. a listing on which only Huai'an (320800) answers in time
    with Publisher(ctx, "320100", "test") as pub:
        pub.publish("credit.record", record(first, "fb-1", severity="SERIOUS", domain=None, decision_date=LONG_AGO))
    e1 = entries(ctx, lambda e: first in e)[first]
    with Publisher(ctx, "320800", "test") as pub:
        pub.publish("sanction.feedback", feedback(first, e1["revision"], "320800"))
    with Publisher(ctx, "341800", "test") as pub:  # feedback the loop must refuse, each with its reason
        pub.publish("sanction.feedback", feedback(uscc(399), 1, "341800"))
        pub.publish("sanction.feedback", feedback(first, e1["revision"] + 5, "341800"))
        pub.publish("sanction.feedback", feedback(first, e1["revision"], "341800", code="GREEN_CHANNEL"))
    tracked = latest(
        ctx, "sanction.tracking", "subject_id", lambda t: first in t and "ANSWERED" in statuses(t[first]).values()
    )
    assert statuses(tracked[first]) == {c: ("ANSWERED" if c == "320800" else "PENDING") for c in cities}
    refused = dead_letters(ctx, "sanction.feedback", 3)
    assert sorted(d.headers["error.reason"] for d in refused) == [
        "stale_revision",
        "unknown_measure",
        "unknown_subject",
    ]
    wait_until("the ratio gauge", lambda: ratio("320800") == 1.0)  # nothing has fallen due yet

    # 2. the window closes on the injected clock: one alert per silent city, and only one
    clock_file.write_text((NOW + timedelta(days=6)).isoformat())
    ref = f"{first}#{e1['revision']}"
    found: list[dict[str, Any]] = []

    def nine_alerts() -> bool:
        found[:] = [
            a for a in latest(ctx, "supervision.alert", "alert_id", lambda a: True, 5).values() if a["ref"] == ref
        ]
        return len(found) >= 9

    wait_until("overdue alerts", nine_alerts)
    time.sleep(4)  # four more sweeps on the advanced clock
    nine_alerts()
    assert sorted(a["city"] for a in found) == sorted(c for c in cities if c != "320800")
    assert {a["kind"] for a in found} == {"SANCTION_FEEDBACK_OVERDUE"}
    # the BLACK listing of the FOCUS test (uscc(303)) fell due too, with no answers: Huai'an answered
    # 1 of its 2 listings in time, Xuancheng none
    wait_until("ratios after the window", lambda: ratio("341800") == 0.0 and ratio("320800") == 0.5)

    # 3. the whole chain: a SERIOUS penalty from Yangzhou (321000) -> grade D -> BLACK in all 10 cities
    with Publisher(ctx, "321000", "test") as pub:
        pub.publish("credit.record", record(second, "fb-2", severity="SERIOUS", domain=None, decision_date=LONG_AGO))
    assert profiles(ctx, lambda p: second in p)[second]["grade"] == "D"
    e2 = entries(ctx, lambda e: second in e)[second]
    assert (e2["list"], e2["status"], e2["initiated_by"]) == ("BLACK", "LISTED", "321000")
    assert all(sorted(m["applies_in"]) == sorted(cities) for m in e2["measures"])
    # another city, Xuancheng, answers: its ratio rises from 0 of 2 to 1 of 3
    before = ratio("341800")
    with Publisher(ctx, "341800", "test") as pub:
        pub.publish("sanction.feedback", feedback(second, e2["revision"], "341800", outcome="HIT"))
    wait_until("341800's ratio to rise", lambda: ratio("341800") > before)
    assert (before, ratio("341800")) == (0.0, pytest.approx(1 / 3))

    # 4. Ma'anshan's inbox: what its departments must apply, and APPLIED sent back for each measure
    inbox = Inbox(ctx, "340500", outcome="APPLIED", group_id=f"inbox-{ctx.settings.topic_prefix}")
    shown: list[Any] = []
    try:
        inbox.run(shown.append, lambda: False, once=True)
    finally:
        inbox.close()
    mine = {item.subject_id: item for item in shown}
    assert mine[second].action == "APPLY" and len(mine[second].feedback_sent) == 6
    assert [m["code"] for m in mine[second].measures] == list(RULES.lists["BLACK"].measures)
    assert all(m["legal_basis"] for m in mine[second].measures)
    assert mine[uscc(301)].action == "LIFT" and "k-1" in (mine[uscc(301)].removal_reason or "")
    tracked = latest(ctx, "sanction.tracking", "subject_id", lambda t: statuses(t[second]).get("340500") == "ANSWERED")
    assert statuses(tracked[second])["341800"] == "ANSWERED"
    assert statuses(tracked[first])["340500"] == "LATE"  # answered after the window closed

    # 5. the read model and the API
    engine = make_engine(ctx.settings.database_url)
    store = TokenStore(ctx.settings.data_dir / "tokens.json")
    _, token = store.issue("320100", ("read",))
    app = create_app(ctx, store, Metrics(), producer=None, engine=engine)
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})

    def api_shows_inbox_feedback() -> bool:
        r = client.get(f"/v1/sanctions/{second}")
        return (
            r.status_code == 200 and {f["city"]: f["status"] for f in r.json()["feedback"]}.get("340500") == "ANSWERED"
        )

    wait_until("the read model", api_shows_inbox_feedback)
    body = client.get(f"/v1/sanctions/{second}").json()
    assert (body["list"], body["initiated_by"], body["reasons"]) == ("BLACK", "321000", ["fb-2"])
    assert body["measures"][0]["legal_basis"] == RULES.measures[body["measures"][0]["code"]].legal_basis
    assert len(body["feedback"]) == 10 and body["feedback_due_at"]
    black = client.get("/v1/sanctions", params={"list": "BLACK", "city": "320100", "limit": 1})
    page1 = black.json()
    page2 = client.get("/v1/sanctions", params={"list": "BLACK", "city": "320100", "after": page1["next_after"]}).json()
    listed = [e["subject_id"] for e in page1["items"] + page2["items"]]
    assert sorted(listed) == sorted([first, second, uscc(303)]) and page2["next_after"] is None
    removed = client.get("/v1/sanctions", params={"status": "REMOVED"}).json()["items"]
    assert [e["subject_id"] for e in removed] == [uscc(301)]
    assert client.get("/v1/sanctions", params={"city": "999999"}).status_code == 422
    assert client.get(f"/v1/sanctions/{uscc(398)}").status_code == 404
    engine.dispose()
