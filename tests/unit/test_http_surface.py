"""The API's tokens, masking and input checks, without a broker (tests/integration/test_http_surface.py
runs them on the real stack)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from schemas.catalogue import SchemaCatalogue
from schemas.convert import JsonConverter
from schemas.errors import Rejected
from schemas.jsonschema import JsonSchemas
from services.api.auth import RateLimiter, check_purpose
from services.api.privacy import mask_id_number, mask_name, masked
from services.api.problems import Problem
from services.api.tokens import TokenStore
from tests.conftest import example
from topics.catalog import EVENT_TYPES, INPUT_TYPES
from topics.circle import load_circle
from topics.validation import MAX_PAYLOAD_BYTES, check_depth, loads_event

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
CITIES = load_circle(None, "njmc").codes


def test_a_token_is_stored_hashed_scoped_and_expiring(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, clear = store.issue("320100", ("read", "pii"), timedelta(days=30), "credit desk", now=NOW)
    text = (tmp_path / "tokens.json").read_text()
    assert clear not in text and clear.split("_", 2)[2] not in text  # never in clear
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    assert clear.startswith(f"tc_{token.id}_")
    assert store.check(clear, NOW).token == token and token.scopes == ("read", "pii")
    assert store.check(clear, NOW + timedelta(days=30)).problem == f"the bearer token {token.id} is expired"
    assert store.check(clear[:-1] + ("A" if clear[-1] != "A" else "B"), NOW).token is None
    assert store.check("tc_nothing", NOW).token is None


def test_issue_refuses_what_makes_no_sense(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(ValueError, match="unknown scope"):
        store.issue("320100", ("write",))
    with pytest.raises(ValueError, match="pii scope widens read"):
        store.issue("320100", ("pii",))
    with pytest.raises(ValueError, match="397 days"):
        store.issue("320100", ttl=timedelta(days=400))


def test_a_running_store_sees_issues_and_revocations_of_another_process(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    api = TokenStore(path)  # the API's store
    cli = TokenStore(path)  # `tongcheng token`, another process
    token, clear = cli.issue("340500", now=NOW)
    assert api.check(clear, NOW).token is not None
    cli.revoke(token.id, now=NOW)
    assert api.check(clear, NOW).problem == f"the bearer token {token.id} is revoked"
    assert [t.public(NOW)["state"] for t in api.tokens()] == ["revoked"]
    assert "sha256" not in api.tokens()[0].public(NOW)


def test_a_token_from_before_scopes_never_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    old = "tc_320100_" + "x" * 32
    import hashlib

    path.write_text(json.dumps({"tokens": [{"city": "320100", "sha256": hashlib.sha256(old.encode()).hexdigest()}]}))
    store = TokenStore(path)
    assert store.legacy == 1 and store.check(old, NOW).token is None


def test_the_rate_limit_allows_a_burst_then_says_when_to_retry(tmp_path: Path) -> None:
    token, _ = TokenStore(tmp_path / "t.json").issue("320100", rate_per_s=2.0, now=NOW)
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take(token) for _ in range(4)] == [None] * 4  # a burst of twice the rate
    wait = limiter.take(token)
    assert wait == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take(token) is None


def test_masks() -> None:
    assert mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧***" and mask_name("李") == "*"
    assert mask_id_number("32010219900307123X") == "3201**********123X"
    body = masked({"subject_id": "P" + "a" * 64, "name": "王小明", "grade": "C"})
    assert body == {"subject_id": "P" + "a" * 64, "name": "王**", "grade": "C", "masked": True}


def test_purpose_is_percent_decoded_and_bounded() -> None:
    assert check_purpose("%E4%BF%A1%E7%94%A8%E4%BF%AE%E5%A4%8D%E5%AE%A1%E6%A0%B8") == "信用修复审核"
    for bad in ("ab", "x" * 201, "%FF%FE%FD%FC", "line\x01break"):
        with pytest.raises(Problem) as raised:
            check_purpose(bad)
        assert raised.value.status == 400 and raised.value.extra["field"] == "X-Tongcheng-Purpose"


# --- inputs that once gave a 500 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
        ('{"n": ' + "9" * 5000 + "}", "not JSON"),
        ("\xff", "not JSON"),
    ],
)
def test_unparseable_bodies_are_refused(text: str, detail: str) -> None:
    with pytest.raises(Rejected, match=detail):
        loads_event(text.encode("latin-1") if text == "\xff" else text)


def test_an_event_nested_deeper_than_any_schema_is_refused_before_it_is_read() -> None:
    with pytest.raises(Rejected, match="nested deeper than 32 levels"):
        check_depth(json.loads('{"a":' * 40 + "1" + "}" * 40))
    check_depth(json.loads('{"a":' * 30 + "1" + "}" * 30))  # within the limit: no error


def test_an_oversized_body_is_refused() -> None:
    with pytest.raises(Rejected, match="limit"):
        loads_event(b" " * (MAX_PAYLOAD_BYTES + 1))


def _meta(event_type: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "source_city": "320100",
        "source_system": "test",
        "occurred_at": "2026-12-01T09:00:00+08:00",
        "published_at": "2026-12-01T09:00:00+08:00",
    }


def convert(event_type: str, changes: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> Any:
    body = {**example(event_type), **(changes or {}), "meta": {**_meta(event_type), **(meta or {})}}
    return JsonConverter(SchemaCatalogue()).convert(EVENT_TYPES[event_type].schema, body)


@pytest.mark.parametrize(
    ("event_type", "changes", "meta", "field", "detail"),
    [
        ("credit.record", None, {"occurred_at": "0001-01-01T00:00:00+08:00"}, "meta.occurred_at", "outside years"),
        ("credit.record", None, {"occurred_at": 10**18}, "meta.occurred_at", "outside years"),
        ("credit.record", None, {"occurred_at": "9999-12-31T23:59:59-14:00"}, "meta.occurred_at", "outside years"),
        ("credit.record", {"decision_date": "0001-01-01"}, None, "decision_date", "outside years"),
        ("credit.record", {"fine_amount": "1e999999999"}, None, "fine_amount", "digits before the decimal point"),
        ("credit.record", {"fine_amount": "9" * 5000}, None, "fine_amount", "digits before the decimal point"),
        ("credit.record", {"fine_amount": "1e-999999999"}, None, "fine_amount", "decimal places"),
        ("credit.record", {"content": "\ud800"}, None, "content", "lone surrogate"),
        (
            "credit.record",
            {"subject": {"subject_id": "x", "subject_kind": 5, "name": "n"}},
            None,
            "subject.subject_kind",
            "",
        ),
    ],
)
def test_values_no_avro_type_can_hold_are_refused_naming_the_field(
    event_type: str, changes: Any, meta: Any, field: str, detail: str
) -> None:
    with pytest.raises(Rejected) as raised:
        convert(event_type, changes, meta)
    assert raised.value.field == field and detail in raised.value.detail


def test_an_action_without_targets_converts() -> None:
    # the Subject type is defined at its first use, inside `targets`: an empty list once left it
    # undefined for the rest of the event (KeyError 'tongcheng.v1.Subject')
    event = convert("enforcement.action", {"targets": []})
    assert event["targets"] == []


# --- the typed OpenAPI --------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", INPUT_TYPES)
def test_each_example_matches_its_request_schema(event_type: str) -> None:
    schema = JsonSchemas(SchemaCatalogue(), CITIES).event(EVENT_TYPES[event_type].schema)
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    body = example(event_type)
    assert validator.is_valid(body), [e.message for e in validator.iter_errors(body)]
    assert validator.is_valid({**body, "meta": _meta(event_type)})
    assert not validator.is_valid({**body, "unknown_field": 1})  # records are closed
    assert not validator.is_valid({**body, "meta": {"source_city": "110000"}})  # Beijing is not a member


def test_the_request_schema_says_what_the_converter_accepts() -> None:
    schema = JsonSchemas(SchemaCatalogue()).event("CreditRecord")
    subject = schema["properties"]["subject"]
    assert subject["oneOf"] == [{"required": ["subject_id"]}, {"required": ["id_number"]}]
    assert schema["properties"]["fine_amount"]["anyOf"][1]["pattern"] == r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"
    assert "meta" not in schema["required"] and schema["properties"]["meta"]["required"] == []
