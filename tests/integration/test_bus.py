"""The bus contract on the real broker and registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from schemas.convert import JsonConverter, to_json
from schemas.errors import Reason, Rejected
from tests.conftest import EXAMPLES, example
from tests.integration.conftest import fresh_settings
from topics import provision
from topics.catalog import EVENT_TYPES, INPUT_TYPES
from topics.context import Context
from topics.kafka_auth import client_config
from topics.publisher import Publisher
from topics.settings import Settings
from topics.subscriber import Subscriber


def drain(sub: Subscriber, count: int, timeout: float = 20.0) -> list:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += sub.poll(timeout_ms=300)
    return got


def test_every_input_type_round_trips(ctx: Context) -> None:
    assert len(INPUT_TYPES) == 7
    sent = {}
    with Publisher(ctx, "320100", "test") as pub:
        for event_type in INPUT_TYPES:
            prepared = pub.prepare(event_type, example(event_type))
            pub.send_prepared(prepared).get(timeout=30)
            sent[prepared.topic] = prepared
    sub = Subscriber(ctx, list(sent), from_beginning=True)
    try:
        got = drain(sub, len(sent))
    finally:
        sub.close()
    assert len(got) == 7
    for delivery in got:
        p = sent[delivery.topic]
        assert delivery.error is None
        assert delivery.key == p.key
        assert delivery.event == p.event
        # the JSON a city sent comes back field for field
        body = example(p.event_type)
        echoed = to_json(delivery.event)
        for field in body:
            assert echoed[field] == to_json(
                JsonConverter(ctx.schemas).convert(EVENT_TYPES[p.event_type].schema, {**body, "meta": echoed["meta"]})[
                    field
                ]
            )


BAD = [
    ("credit.record", lambda b: b["subject"].update(subject_id="91320106MA1XY31256"), Reason.INVALID_USCC),
    ("enforcement.action", lambda b: b.update(lead_city="310000"), Reason.UNKNOWN_CITY),
    ("emergency.notice", lambda b: b.update(level="V"), Reason.SCHEMA_INVALID),
    ("emergency.ack", lambda b: b.update(acknowledged_at="2099-01-01T00:00:00Z"), Reason.FUTURE_TIMESTAMP),
    ("project.plan", lambda b: b.pop("milestones"), Reason.SCHEMA_INVALID),
    ("project.milestone", lambda b: b.update(status="FINISHED"), Reason.SCHEMA_INVALID),
    ("sanction.feedback", lambda b: b.update(city="999999"), Reason.UNKNOWN_CITY),
]


@pytest.mark.parametrize("event_type,spoil,reason", BAD, ids=[b[0] for b in BAD])
def test_invalid_event_of_each_kind_is_refused(ctx: Context, event_type: str, spoil, reason: Reason) -> None:  # type: ignore[no-untyped-def]
    body = example(event_type)
    spoil(body)
    with Publisher(ctx, "320100", "test") as pub, pytest.raises(Rejected) as info:
        pub.publish(event_type, body)
    assert info.value.reason is reason


def test_forged_source_city_is_refused(ctx: Context) -> None:
    with Publisher(ctx, "320100", "test") as pub, pytest.raises(Rejected) as info:
        pub.publish("emergency.ack", {**example("emergency.ack"), "meta": {"source_city": "340500"}})
    assert info.value.reason is Reason.SOURCE_CITY_MISMATCH


def test_topics_apply_is_idempotent_and_reports_drift(stack: Settings) -> None:
    settings = fresh_settings(stack)
    from topics.context import build_context

    catalog = build_context(settings).topics
    admin = provision.admin_client(settings)
    try:
        first = provision.apply(catalog, admin)
        second = provision.apply(catalog, admin)
        assert len(first.created) == 33 and first.drift == []
        assert second.created == [] and len(second.unchanged) == 33 and second.drift == []
        # someone shrinks retention by hand: reported, not reverted, nothing deleted
        from kafka.admin import ConfigResource, ConfigResourceType

        topic = catalog.topic("credit.record")
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1000"})], incremental=True
        )
        deadline = time.monotonic() + 10  # the change reaches the broker through the metadata log
        while not (third := provision.apply(catalog, admin)).drift and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [(d.topic, d.what, d.actual) for d in third.drift] == [(topic, "retention.ms", "1000")]
        assert topic in provision.existing_topics(admin)
    finally:
        admin.close()


def cli(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(Path.home()),
        "TONGCHENG_TOPIC_PREFIX": settings.topic_prefix,
        "TONGCHENG_KAFKA_PORT": str(settings.kafka_port),
        "TONGCHENG_REGISTRY_PORT": str(settings.registry_port),
        "TONGCHENG_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


def test_publish_cli_sends_the_good_refuses_the_bad_and_tail_reads_them(ctx: Context) -> None:
    good = example("credit.record")
    bad = json.loads(json.dumps(good))
    bad["subject"]["subject_id"] = "91320106MA1XY31256"
    lines = "\n".join(json.dumps(x, ensure_ascii=False) for x in (good, bad, good)) + "\n{not json\n"
    result = cli(ctx.settings, "publish", "credit.record", "-", "--city", "321100", stdin=lines)
    assert result.returncode == 1
    assert "line 2: refused: invalid_uscc: subject.subject_id" in result.stderr
    assert "line 4: refused: schema_invalid" in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "published 2, refused 2 (invalid_uscc 1, schema_invalid 1)"
    tail = cli(ctx.settings, "tail", "credit.record", "--from-beginning", "--max", "2", "--idle-timeout", "20")
    events = [json.loads(line)["event"] for line in tail.stdout.splitlines()]
    assert len(events) == 2 and {e["meta"]["source_city"] for e in events} == {"321100"}
    assert events[0]["fine_amount"] == "200000.00"


def test_readme_walkthrough_examples_publish(ctx: Context) -> None:
    for path in sorted(EXAMPLES.glob("*.json")):
        result = cli(ctx.settings, "publish", path.stem, str(path), "--city", "320100")
        assert result.returncode == 0, result.stderr


def test_registry_refuses_a_breaking_schema(ctx: Context) -> None:
    from schemas.registry import RegistryError

    subject = f"{ctx.topics.topic('emergency.ack')}-value"
    broken = json.loads(ctx.schemas.text("EmergencyAck"))
    broken["fields"].append({"name": "officer", "type": "string"})
    with pytest.raises(RegistryError) as info:
        ctx.registry.register(subject, json.dumps(broken))
    assert info.value.status == 409


def test_dlq_topics_exist_with_thirty_day_retention(ctx: Context) -> None:
    consumer = KafkaConsumer(bootstrap_servers=ctx.settings.bootstrap, **client_config(ctx.settings))
    try:
        assert consumer.partitions_for_topic(ctx.topics.dlq("credit.record")) == {0}
    finally:
        consumer.close()
