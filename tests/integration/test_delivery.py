"""At-least-once on the real broker when the broker refuses a processor's outputs.

A processor's state must never run ahead of the events it emitted. Here the broker refuses the
credit worker's profiles (the profile topic's `max.message.bytes` is set below one record) while
the subjects' changelog stays open. The worker must hold the new state back, keep retrying, and
not commit the input's offset; once the topic is mended, the profile, the state and the offset
follow. Stopped while refused, it must leave both the offset and the state as they were, so that
the next worker applies the record again. Were the state written first, the next worker would find
the record already applied, and the profile would be lost for good.
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

from ops.chaos.probes import stop_worker, wait_until
from tests.conftest import example
from tests.integration.conftest import clocked_settings, latest, metric_at, provisioned, spawn_worker
from topics.context import Context
from topics.kafka_auth import client_config
from topics.publisher import Publisher
from topics.settings import Settings

NOW = datetime.now(UTC)
SUBJECT = "91320106MA1XY31255"


@pytest.fixture(scope="module")
def settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return clocked_settings(stack, tmp_path_factory, "delivery", NOW, 19650)


@pytest.fixture(scope="module")
def admin(stack: Settings) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=stack.bootstrap, **client_config(stack))
    yield client
    client.close()


def set_max_message_bytes(admin: KafkaAdminClient, topic: str, value: str | None) -> None:
    op = (AlterConfigOp.SET, value) if value else (AlterConfigOp.DELETE, None)
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": op})])


def end_offset(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, **client_config(settings))
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def committed(settings: Settings, group: str, topic: str) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=group, enable_auto_commit=False, **client_config(settings)
    )
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


def test_refused_outputs_hold_the_state_back_until_the_broker_takes_them(
    settings: Settings, admin: KafkaAdminClient
) -> None:
    ctx: Context = provisioned(settings)
    profiles = ctx.topics.topic("credit.profile")
    records = ctx.topics.topic("credit.record")
    group = settings.group_id("credit")
    changelog = f"{group}-subjects-changelog"
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", **client_config(settings))
    publisher = Publisher(ctx, "320100", "delivery-test", producer=producer)

    def refused_while_applied(record_id: str, category: str, n: int) -> int:
        """Refuse every profile, publish record n, and check what the worker did with it; the
        changelog's end offset, which must not have moved."""
        state = end_offset(settings, changelog)
        set_max_message_bytes(admin, profiles, "64")  # smaller than any profile: every send is refused
        publisher.publish("credit.record", record(record_id, category))
        wait_until(  # one batch a record, observed once applied (it is counted as consumed once sent)
            f"record {n} applied",
            lambda: metric_at(settings.metrics_port + 1, "tongcheng_event_processing_seconds_count") == n,
        )
        time.sleep(3)  # several sends refused, several commit intervals passed
        assert end_offset(settings, changelog) == state  # the state is held back
        assert end_offset(settings, profiles) == n - 1  # nothing half sent
        assert committed(settings, group, records) == n - 1  # the refused batch is not committed
        return state

    worker = spawn_worker(settings, "credit")
    try:
        publisher.publish("credit.record", record("d-1", "HONOR"))
        latest(ctx, "credit.profile", "subject_id", lambda p: p.get(SUBJECT, {}).get("revision") == 1)
        wait_until("the first record's offset committed", lambda: committed(settings, group, records) == 1)

        # 1. the worker keeps sending; once the topic takes the profile, the state and offset follow
        state = refused_while_applied("d-2", "CREDIT_COMMITMENT", 2)
        assert "not acknowledged" in (settings.data_dir / "credit.log").read_text()  # and the log says why
        set_max_message_bytes(admin, profiles, None)
        got = latest(ctx, "credit.profile", "subject_id", lambda p: p.get(SUBJECT, {}).get("revision") == 2)
        assert sorted(r["record_id"] for r in got[SUBJECT]["active_records"]) == ["d-1", "d-2"]
        wait_until("the second offset committed", lambda: committed(settings, group, records) == 2)
        assert end_offset(settings, changelog) > state  # the subject, with its counts and due entries

        # 2. stopped while the broker refuses, the worker abandons the batch without committing it,
        # so the next worker reads the record again and finds the state without it
        state = refused_while_applied("d-3", "HONOR", 3)
        stop_worker(worker)
        assert worker.returncode != -signal.SIGKILL, "the worker did not stop by itself"
        assert committed(settings, group, records) == 2
        assert end_offset(settings, changelog) == state
    finally:
        stop_worker(worker)
        set_max_message_bytes(admin, profiles, None)
        producer.close()
