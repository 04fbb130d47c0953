"""At-least-once on the real broker when the broker refuses a processor's outputs.

A processor's state must never run ahead of the events it emitted. Here the broker refuses the
credit worker's profiles (the profile topic's `max.message.bytes` is set below one record) while
the subjects' changelog stays open. The worker must hold the new state back, keep retrying, and
not commit the input's offset; stopped and restarted once the topic is mended, it must emit the
profile. Were the state written first, the restarted worker would find the record already applied
and the profile would be lost for good.
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient

from services.common.context import Context
from services.common.settings import Settings
from tests.conftest import example
from tests.integration.conftest import (
    clocked_settings,
    latest,
    metric_at,
    provisioned,
    spawn_worker,
    stop_worker,
    wait_until,
)
from topics.publisher import Publisher

NOW = datetime.now(UTC)
SUBJECT = "91320106MA1XY31255"


@pytest.fixture(scope="module")
def settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return clocked_settings(stack, tmp_path_factory, "delivery", NOW, 19650)


@pytest.fixture(scope="module")
def admin(stack: Settings) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    yield client
    client.close()


def set_max_message_bytes(admin: KafkaAdminClient, topic: str, value: str | None) -> None:
    op = (AlterConfigOp.SET, value) if value else (AlterConfigOp.DELETE, None)
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": op})])


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.committed(tp) or 0 for tp in parts)
    finally:
        consumer.close()


def record(record_id: str, category: str) -> dict[str, Any]:
    body = copy.deepcopy(example("credit.record"))
    body["subject"]["subject_id"] = SUBJECT
    body.update(record_id=record_id, category=category, polarity="POSITIVE", severity="NONE", domain=None)
    body["decision_date"] = NOW.date().isoformat()
    return body


def test_refused_outputs_hold_the_state_back_and_are_emitted_after_a_restart(
    settings: Settings, admin: KafkaAdminClient
) -> None:
    ctx: Context = provisioned(settings)
    profiles = ctx.topics.topic("credit.profile")
    records = ctx.topics.topic("credit.record")
    group = settings.group_id("credit")
    changelog = f"{group}-subjects-changelog"
    metrics = settings.metrics_port + 1
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    publisher = Publisher(ctx, "320100", "delivery-test", producer=producer)
    worker = spawn_worker(settings, "credit")
    try:
        publisher.publish("credit.record", record("d-1", "HONOR"))
        latest(ctx, "credit.profile", "subject_id", lambda p: p.get(SUBJECT, {}).get("revision") == 1)
        wait_until("the first record's offset committed", lambda: committed(settings.bootstrap, group, records) == 1)
        state_before = end_offset(settings.bootstrap, changelog)

        set_max_message_bytes(admin, profiles, "64")  # smaller than any profile: every send is refused
        publisher.publish("credit.record", record("d-2", "CREDIT_COMMITMENT"))
        applied = {"service": "credit", "topic": records, "outcome": "applied"}
        wait_until(
            "the second record applied", lambda: metric_at(metrics, "tongcheng_events_consumed_total", **applied) == 2
        )
        time.sleep(3)  # several sends refused, several commit intervals passed
        assert end_offset(settings.bootstrap, changelog) == state_before  # the state is held back
        assert end_offset(settings.bootstrap, profiles) == 1
        assert committed(settings.bootstrap, group, records) == 1  # the refused batch is not committed
        assert "not acknowledged" in (settings.data_dir / "credit.log").read_text()  # and the log says so

        stop_worker(worker)  # a clean stop while the broker still refuses: the batch is abandoned
        assert worker.returncode != -signal.SIGKILL, "the worker did not stop by itself"
        set_max_message_bytes(admin, profiles, None)
        worker = spawn_worker(settings, "credit")
        got = latest(ctx, "credit.profile", "subject_id", lambda p: p.get(SUBJECT, {}).get("revision") == 2)
        assert sorted(r["record_id"] for r in got[SUBJECT]["active_records"]) == ["d-1", "d-2"]
        wait_until("both offsets committed", lambda: committed(settings.bootstrap, group, records) == 2)
    finally:
        stop_worker(worker)
        set_max_message_bytes(admin, profiles, None)
        producer.close()
