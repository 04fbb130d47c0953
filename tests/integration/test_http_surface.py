"""The HTTP surface on the real stack: `tongcheng api` as a process, on a read model in SQLite, with
tokens from the `tongcheng token` command; schemathesis against the document it serves."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ops.chaos.probes import stop_worker, wait_until, worker_env
from schemas.errors import Rejected
from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import make_engine, migrate
from services.readmodel.sql import upsert
from services.readmodel.tables import PROJECTIONS, credit_profiles, sanction_entries
from tests.conftest import example
from tests.integration.conftest import TEST_PORTS, fresh_settings, provisioned
from tests.integration.test_read_model import profile, uscc
from tests.unit.stub_http import closed_port
from topics.context import Context, build_context
from topics.identifiers import id_number_check_char, person_subject_id
from topics.metrics import Metrics
from topics.publisher import Publisher
from topics.settings import ENV, Settings
from topics.subscriber import Subscriber

CITY = "320100"
ID_NUMBER = "32010219900307123" + id_number_check_char("32010219900307123")
PURPOSE = "%E4%BF%A1%E7%94%A8%E4%BF%AE%E5%A4%8D%E5%AE%A1%E6%A0%B8"  # 信用修复审核, percent-encoded
HOOKS = "tests.integration.schemathesis_hooks"
YEAR_1 = "0001-01-01T00:00:00+08:00"  # year 0 in UTC: once accepted, then undecodable downstream


@dataclass
class Served:
    url: str
    ctx: Context
    settings: Settings
    env: dict[str, str]
    person: str
    company: str

    def token(self, *args: str) -> str:
        """`tongcheng token issue CITY ...` as a user runs it; the clear token it prints."""
        out = self.cli("token", "issue", CITY, *args)
        return out.stdout.strip()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "ops.cli", *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + path, headers=headers, timeout=30)


def seed(engine: Any, person: str, company: str) -> None:
    """A natural person and a company in the read model, as its projections write them."""
    person_profile = {**profile(person, 3, "D"), "subject_kind": "NATURAL_PERSON", "name": "王小明"}
    rows = [PROJECTIONS["credit.profile"].row(p, 0, i) for i, p in enumerate([person_profile, profile(company, 2)])]
    entry = {
        "meta": person_profile["meta"],
        "subject_id": person,
        "name": "王小明",
        "list": "BLACK",
        "status": "LISTED",
        "measures": [{"code": "M01", "applies_in": [CITY]}],
        "reasons": ["r1"],
        "initiated_by": CITY,
        "effective_from": datetime(2026, 11, 1, tzinfo=UTC),
        "expires_at": None,
        "revision": 1,
        "removal_reason": None,
    }
    with engine.begin() as conn:
        upsert(conn, credit_profiles, rows, ("subject_id",), None)
        upsert(conn, sanction_entries, [PROJECTIONS["sanction.list"].row(entry, 0, 9)], ("subject_id",), None)


@pytest.fixture(scope="module")
def served(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("http")
    settings = fresh_settings(stack, database_url=f"sqlite:///{data / 'read.db'}", tokens_file=data / "tokens.json")
    ctx = provisioned(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)
    person, company = person_subject_id(ID_NUMBER, settings.person_salt), uscc(777)
    seed(engine, person, company)
    engine.dispose()
    port = TEST_PORTS["api_port"]
    env = worker_env(settings, **{ENV["tokens_file"]: str(settings.tokens_file), ENV["api_port"]: str(port)})
    with open(data / "api.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("the API answers", lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60)
        yield Served(url, ctx, settings, env, person, company)
    finally:
        stop_worker(proc, timeout=20)


def test_reads_need_a_token_with_the_read_scope(served: Served) -> None:
    assert served.get(f"/v1/credit/{served.company}").status_code == 401
    publisher = served.token("--scope", "publish")
    refused = served.get(f"/v1/credit/{served.company}", publisher)
    assert refused.status_code == 403 and refused.json()["reason"] == "missing_scope"
    reader = served.token("--scope", "read")
    assert served.get(f"/v1/credit/{served.company}", reader).status_code == 200
    posted = httpx.post(
        f"{served.url}/v1/events/credit.record",
        json=example("credit.record"),
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert posted.status_code == 403
    # the public pages show aggregates only: no subject's name or id
    page = served.get("/").text
    assert served.person not in page and "王小明" not in page and served.company not in page
    assert served.get("/v1/tokens", reader).status_code == 403
    listed = served.get("/v1/tokens", served.token("--scope", "admin")).json()["items"]
    assert {t["scopes"][0] for t in listed} >= {"publish", "read", "admin"}
    assert all("sha256" not in t for t in listed)


def test_a_person_is_masked_unless_pii_with_a_purpose_and_each_unmasked_read_is_audited(served: Served) -> None:
    reader = served.token("--scope", "read")
    masked = served.get(f"/v1/credit/{served.person}", reader).json()
    assert (masked["name"], masked["masked"]) == ("王**", True)
    company = served.get(f"/v1/credit/{served.company}", reader).json()
    assert company["name"] == "南京某某科技有限公司" and "masked" not in company  # organisations in full
    listed = served.get("/v1/sanctions", reader).json()["items"]
    assert [(e["subject_id"], e["name"]) for e in listed] == [(served.person, "王**")]
    lookup = httpx.post(
        f"{served.url}/v1/credit/lookup", json={"id_number": ID_NUMBER}, headers={"Authorization": f"Bearer {reader}"}
    ).json()
    assert (lookup["subject_id"], lookup["id_number"]) == (served.person, "3201**********" + ID_NUMBER[-4:])

    pii = served.token("--scope", "read,pii", "--label", "credit repair desk")
    pii_id = pii.split("_")[1]
    without = served.get(f"/v1/credit/{served.person}", pii)
    assert without.status_code == 400 and without.json()["field"] == "X-Tongcheng-Purpose"
    full = served.get(f"/v1/credit/{served.person}", pii, **{"X-Tongcheng-Purpose": PURPOSE}).json()
    assert full["name"] == "王小明" and "masked" not in full
    entry = served.get(f"/v1/sanctions/{served.person}", pii, **{"X-Tongcheng-Purpose": PURPOSE}).json()
    assert entry["name"] == "王小明"
    # a company read with pii is not personal data: nothing to audit
    served.get(f"/v1/credit/{served.company}", pii, **{"X-Tongcheng-Purpose": PURPOSE})

    sub = Subscriber(served.ctx, ["audit.read"], from_beginning=True)
    try:
        trail: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while len(trail) < 2 and time.monotonic() < deadline:
            trail += [d.event for d in sub.poll(timeout_ms=300) if d.event is not None]
    finally:
        sub.close()
    assert [(a["token_id"], a["city"], a["subject_id"], a["purpose"], a["endpoint"]) for a in trail] == [
        (pii_id, CITY, served.person, "信用修复审核", f"GET /v1/credit/{served.person}"),
        (pii_id, CITY, served.person, "信用修复审核", f"GET /v1/sanctions/{served.person}"),
    ]
    assert all(a["meta"]["source_system"] == "tongcheng-api" for a in trail)


def test_an_issue_and_a_revocation_count_in_the_running_api_within_5_s(served: Served) -> None:
    issued_at = time.monotonic()
    token = served.token("--scope", "read")
    wait_until("the new token counts", lambda: served.get("/v1/supervision/cities", token).status_code == 200, 5, 0.1)
    issue_s = time.monotonic() - issued_at
    token_id = token.split("_")[1]
    revoked_at = time.monotonic()
    served.cli("token", "revoke", token_id)
    wait_until("the revocation counts", lambda: served.get("/v1/supervision/cities", token).status_code == 401, 5, 0.1)
    revoke_s = time.monotonic() - revoked_at
    refused = served.get("/v1/supervision/cities", token).json()
    assert refused["detail"] == f"the bearer token {token_id} is revoked"
    listed = json.loads(served.cli("token", "list", "--json").stdout)
    assert {t["id"]: t["state"] for t in listed}[token_id] == "revoked"
    print(f"issue counted after {issue_s:.2f} s (CLI run included), revocation after {revoke_s:.2f} s")


def test_a_token_over_its_rate_gets_429_with_retry_after(served: Served) -> None:
    token = served.token("--scope", "read", "--rate", "0.5")  # a burst of 1, then one per 2 s
    answers = [served.get("/v1/supervision/cities", token) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 429, 429]
    assert int(answers[1].headers["Retry-After"]) >= 1
    assert answers[1].headers["content-type"] == "application/problem+json"


def bad_inputs() -> list[tuple[str, str, bytes, int, str | None]]:
    """(case, event type, body, status, field) for each input that once gave a 5xx or a later failure."""
    action = example("enforcement.action")
    record = example("credit.record")

    def with_(base: dict[str, Any], **changes: Any) -> bytes:
        return json.dumps({**copy.deepcopy(base), **changes}).encode()

    return [
        ("meta not an object", "credit.record", with_(record, meta="x"), 422, "meta"),
        ("meta a list", "credit.record", with_(record, meta=[1]), 422, "meta"),
        ("deep nesting", "credit.record", b"[" * 100_000 + b"]" * 100_000, 422, None),
        ("5,000-digit integer", "credit.record", b'{"n": ' + b"9" * 5000 + b"}", 422, None),
        ("huge decimal", "credit.record", with_(record, fine_amount="1e999999999"), 422, "fine_amount"),
        ("decimal of 5,000 digits", "credit.record", with_(record, fine_amount="9" * 5000), 422, "fine_amount"),
        (
            "year 1",
            "credit.record",
            with_(record, meta={"occurred_at": "0001-01-01T00:00:00+08:00"}),
            422,
            "meta.occurred_at",
        ),
        ("year 9999", "credit.record", with_(record, decision_date="9999-12-31"), 422, "decision_date"),
        ("epoch ms 10^18", "credit.record", with_(record, meta={"occurred_at": 10**18}), 422, "meta.occurred_at"),
        ("lone surrogate", "credit.record", with_(record, content="\ud800"), 422, "content"),
        ("surrogate in a field name", "credit.record", with_(record, **{"\udc00": 1}), 422, "\udc00"),
        ("targets []", "enforcement.action", with_(action, targets=[]), 202, None),
        ("not JSON", "emergency.ack", b"{", 422, None),
        ("a JSON string", "emergency.ack", b'"ack"', 422, None),
    ]


@pytest.mark.parametrize(
    ("case", "event_type", "body", "status", "field"), bad_inputs(), ids=[c[0] for c in bad_inputs()]
)
def test_bad_input_gets_a_4xx_naming_the_field(
    served: Served, case: str, event_type: str, body: bytes, status: int, field: str | None
) -> None:
    token = served.token("--scope", "publish")
    r = httpx.post(
        f"{served.url}/v1/events/{event_type}",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == status, r.text
    if status != 202:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json().get("field") == field


def test_a_chunked_body_over_the_limit_is_413(served: Served) -> None:
    token = served.token("--scope", "publish")

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # 1.25 MiB in all, with no Content-Length

    r = httpx.post(
        f"{served.url}/v1/events/credit.record",
        content=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413 and r.json()["reason"] == "payload_too_large"


def test_the_sdk_raises_typed_errors(served: Served) -> None:
    with Publisher(served.ctx, CITY, "test") as pub:
        with pytest.raises(Rejected) as raised:
            pub.prepare("credit.record", {**example("credit.record"), "meta": "x"})
        assert raised.value.field == "meta"
        assert (
            pub.prepare("enforcement.action", {**example("enforcement.action"), "targets": []}).event["targets"] == []
        )
    publish = subprocess.run(
        [sys.executable, "-m", "ops.cli", "publish", "enforcement.action", "--city", CITY, "-"],
        input=json.dumps({**example("enforcement.action"), "targets": []}),
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert publish.returncode == 0 and "published 1, refused 0" in publish.stdout, publish.stderr


def test_a_broker_or_registry_that_is_down_is_503_with_retry_after(stack: Settings, tmp_path: Path) -> None:
    down = closed_port()
    for changes in ({"registry_port": down}, {"kafka_port": down}):
        settings = stack.with_(topic_prefix="unreachable", tokens_file=tmp_path / "t.json", **changes)
        ctx = build_context(settings)
        store = TokenStore(settings.tokens_file)
        _, token = store.issue(CITY, ("publish",))
        with TestClient(create_app(ctx, store, Metrics())) as client:
            r = client.post(
                "/v1/events/emergency.ack", json=example("emergency.ack"), headers={"Authorization": f"Bearer {token}"}
            )
        assert r.status_code == 503, (changes, r.text)
        assert int(r.headers["Retry-After"]) > 0 and r.headers["content-type"] == "application/problem+json"


def schemathesis(served: Served, *args: str, hooks: bool = False) -> int:
    """Runs schemathesis; the number of test cases it generated, all of which passed."""
    env = {**os.environ, **({"SCHEMATHESIS_HOOKS": HOOKS} if hooks else {})}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{served.url}/openapi.json",
            "--workers",
            "2",
            "--seed",
            "20261203",
            "--generation-database",
            "none",
            "--no-color",
            "--suppress-health-check",
            "all",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout[-3000:])
    Path(os.environ.get("TONGCHENG_SCHEMATHESIS_LOG", os.devnull)).write_text(done.stdout)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert counts is not None and counts[1] == counts[2], done.stdout[-3000:]
    assert "Server error" not in done.stdout
    return int(counts[1])


def test_schemathesis_finds_no_server_error(served: Served) -> None:
    token = served.token("--scope", "publish,read,admin", "--rate", "10000")
    cases = schemathesis(
        served,
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        "100",
        "--checks",
        "not_a_server_error",
        "-H",
        f"Authorization: Bearer {token}",
    )
    operations = len(httpx.get(f"{served.url}/openapi.json").json()["paths"])
    assert cases >= 100 * operations // 2  # operations without inputs have few distinct cases
    print(f"schemathesis: {cases} test cases over {operations} paths, 0 server errors")


def test_every_operation_but_the_public_ones_answers_401_without_a_token(served: Served) -> None:
    document = httpx.get(f"{served.url}/openapi.json").json()
    operations = [(m.upper(), p, op) for p, item in document["paths"].items() for m, op in item.items()]
    public = sorted(p for _, p, op in operations if op.get("security") == [])
    assert public == ["/healthz", "/metrics", "/readyz"]
    assert all(op.get("security") == [{"token": []}] for _, p, op in operations if p not in public)
    cases = schemathesis(
        served,
        "--phases",
        "fuzzing",
        "--max-examples",
        "10",
        "--checks",
        "answers_401",
        "--exclude-path-regex",
        "^/(healthz|readyz|metrics)$",
        hooks=True,
    )
    print(f"schemathesis without a token: {cases} test cases, every one answered 401")
