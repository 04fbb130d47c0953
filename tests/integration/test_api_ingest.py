"""HTTP ingestion on the real broker: tokens fix the city; errors are problem+json."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.tokens import TokenStore
from tests.conftest import example
from topics.catalog import INPUT_TYPES
from topics.context import Context
from topics.metrics import Metrics
from topics.subscriber import Subscriber


@pytest.fixture
def api(ctx: Context, tmp_path) -> tuple[TestClient, dict[str, str], Context]:  # type: ignore[no-untyped-def]
    store = TokenStore(tmp_path / "tokens.json")
    tokens = {city: store.issue(city)[1] for city in ("320100", "340500")}
    app = create_app(ctx, TokenStore(tmp_path / "tokens.json"), Metrics())
    with TestClient(app) as client:
        yield client, tokens, ctx


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_unauthenticated_call_is_401(api) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = api
    for headers in ({}, bearer("tc_320100_not-a-token"), bearer("tc_0000abcd_" + "x" * 43)):
        r = client.post("/v1/events/emergency.ack", json=example("emergency.ack"), headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401


def test_forged_source_city_is_403(api) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = api
    body = {**example("emergency.ack"), "meta": {"source_city": "320100"}}
    r = client.post("/v1/events/emergency.ack", json=body, headers=bearer(tokens["340500"]))
    assert r.status_code == 403
    assert r.json()["reason"] == "source_city_mismatch"


def test_invalid_event_is_422_naming_field_and_too_large_is_413(api) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = api
    body = example("credit.record")
    body["subject"]["subject_id"] = "91320106MA1XY31256"
    r = client.post("/v1/events/credit.record", json=body, headers=bearer(tokens["320100"]))
    assert r.status_code == 422
    assert (r.json()["reason"], r.json()["field"]) == ("invalid_uscc", "subject.subject_id")
    r = client.post(
        "/v1/events/credit.record",
        content=b"x" * (1024 * 1024 + 1),
        headers={**bearer(tokens["320100"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


def test_accepted_event_is_on_the_topic_as_the_tokens_city(api) -> None:  # type: ignore[no-untyped-def]
    client, tokens, ctx = api
    r = client.post("/v1/events/emergency.ack", json=example("emergency.ack"), headers=bearer(tokens["340500"]))
    assert r.status_code == 202
    event_id = r.json()["event_id"]
    sub = Subscriber(ctx, ["emergency.ack"], from_beginning=True, verify=True)
    try:
        got = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = sub.poll(timeout_ms=300)
    finally:
        sub.close()
    assert [(d.event["meta"]["event_id"], d.event["meta"]["source_city"]) for d in got] == [(event_id, "340500")]
    assert got[0].origin == "340500"  # signed with the token city's key, which the bus holds
    assert "tongcheng_http_ingest_total" in client.get("/metrics").text
    assert client.get("/healthz").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {f"/v1/events/{t}" for t in INPUT_TYPES} <= set(paths)  # one typed operation per input type
