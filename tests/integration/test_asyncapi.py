"""The AsyncAPI document, as the API serves it, validated by the official parser (@asyncapi/parser,
with @asyncapi/avro-schema-parser for the payloads) run by node: ops/asyncapi/validate.mjs. No
broker: the document is made from the catalogue and the schemas alone."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.errors import Reason
from services.api.app import create_app
from services.api.tokens import TokenStore
from topics.asyncapi import document as document_of
from topics.catalog import EVENT_TYPES, OWNER
from topics.circle import DATA_DIR
from topics.context import build_context
from topics.settings import Settings

CHECKER = Path(__file__).resolve().parents[2] / "ops" / "asyncapi"


def served(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """/asyncapi.json from the API, without a token (public, like /openapi.json)."""
    settings = settings.with_(kafka_user="api", kafka_password="unused: no broker is asked")
    app = create_app(build_context(settings), TokenStore(tmp_path / "tokens.json"))
    with TestClient(app) as client:
        answer = client.get("/asyncapi.json")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def official_parser(document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    node = shutil.which("node")
    assert node and (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir(), "run ops/setup.sh (npm ci)"
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([node, "validate.mjs", str(path)], cwd=CHECKER, capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("circle_file", [None, DATA_DIR / "sxcmc.circle.json"], ids=["njmc", "sxcmc"])
def test_the_served_document_is_valid_asyncapi_3_with_avro_payloads(tmp_path: Path, circle_file: Path | None) -> None:
    settings = Settings(data_dir=tmp_path, circle_file=circle_file)
    document = served(settings, tmp_path)
    verdict = official_parser(document, tmp_path)
    assert verdict["valid"], verdict["errors"]
    assert verdict["version"] == "3.0.0"
    topics = len(EVENT_TYPES) * 2 + len(OWNER)  # each type and its DLQ, plus the accepted streams
    assert verdict["channels"] == topics and verdict["avroPayloads"] == len(EVENT_TYPES)
    assert verdict["operations"] == topics + len(OWNER)  # every channel received, every input sent
    prefix = settings.topic_prefix
    assert all(c["address"].startswith(prefix + ".") for c in document["channels"].values())


def test_the_parser_refuses_a_broken_avro_payload_and_a_broken_binding(tmp_path: Path) -> None:
    """The check is not vacuous: an undefined Avro type and partitions that are not a number fail."""
    document = served(Settings(data_dir=tmp_path), tmp_path)
    document["components"]["messages"]["CreditRecord"]["payload"]["schema"]["fields"][1]["type"] = "NoSuchType"
    document["channels"]["creditRecord"]["bindings"]["kafka"]["partitions"] = "six"
    errors = official_parser(document, tmp_path)["errors"]
    assert any("NoSuchType" in e["message"] for e in errors), errors
    assert any(e["path"].endswith("bindings.kafka.partitions") for e in errors), errors


def test_the_document_says_what_a_subscriber_needs(tmp_path: Path) -> None:
    document = served(Settings(data_dir=tmp_path), tmp_path)
    channels = {c["address"]: c for c in document["channels"].values()}
    record = channels["njmc.credit.record.v1"]["bindings"]["kafka"]
    assert (record["partitions"], record["topicConfiguration"]) == (
        6,
        {"cleanup.policy": ["delete"], "retention.ms": -1, "retention.bytes": -1},
    )
    assert channels["njmc.credit.profile.v1"]["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == [
        "compact"
    ]
    messages = document["components"]["messages"]
    profile = messages["CreditProfile"]
    assert profile["payload"]["schemaFormat"] == "application/vnd.apache.avro;version=1.9.0"
    assert profile["payload"]["schema"]["name"] == "CreditProfile"
    assert "subject_id" in profile["bindings"]["kafka"]["key"]["description"]
    assert {"ce_id", "ce_source", "ce_type", "ce_time", "ce_specversion", "content-type"} <= set(
        profile["headers"]["properties"]
    )
    reasons = messages["DeadLetter"]["headers"]["properties"]["error.reason"]["enum"]
    assert reasons == [r.value for r in Reason]
    assert document["components"]["securitySchemes"]["scramSha512"]["type"] == "scramSha512"
    assert document["servers"]["bus"]["protocol"] == "kafka"
    production = document_of(build_context(Settings(data_dir=tmp_path, profile="production")))
    assert production["servers"]["bus"]["protocol"] == "kafka-secure"
