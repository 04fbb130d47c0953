"""The lag exporter against the real broker: kafka_exporter's names, and lag = end - committed."""

from __future__ import annotations

import re

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from ops.lag_exporter import serve
from tests.integration.conftest import PORT_SHIFT
from topics.context import Context
from topics.kafka_auth import client_config


def samples(text: str, name: str) -> dict[tuple[str, ...], float]:
    """name{labels} value lines -> {(consumergroup?, topic, partition?): value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            body, value = line.rsplit(" ", 1)
            labels = dict(re.findall(r'(\w+)="([^"]*)"', body))
            key = tuple(labels[k] for k in ("consumergroup", "topic", "partition") if k in labels)
            out[key] = float(value)
    return out


def test_lag_is_end_offset_minus_committed_offset(ctx: Context) -> None:
    topic = ctx.topics.topic("credit.record")
    group = f"lag-test-{ctx.settings.topic_prefix}"
    producer = KafkaProducer(bootstrap_servers=ctx.settings.bootstrap, **client_config(ctx.settings))
    for i in range(30):
        producer.send(topic, key=b"k", value=b"v", partition=i % 3)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=ctx.settings.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        **client_config(ctx.settings),
    )
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    consumer.commit(
        {
            TopicPartition(topic, 0): OffsetAndMetadata(4, "", -1),
            TopicPartition(topic, 1): OffsetAndMetadata(10, "", -1),
        }
    )
    consumer.close()

    port = 19308 + PORT_SHIFT
    serve(ctx.settings, port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    assert "kafka_up 1.0" in text
    ends = samples(text, "kafka_topic_partition_current_offset")
    assert [ends[(topic, str(p))] for p in range(6)] == [10, 10, 10, 0, 0, 0]
    lag = samples(text, "kafka_consumergroup_lag")
    assert {k: v for k, v in lag.items() if k[0] == group} == {(group, topic, "0"): 6, (group, topic, "1"): 0}
    current = samples(text, "kafka_consumergroup_current_offset")
    assert current[(group, topic, "0")] == 4 and current[(group, topic, "1")] == 10
    assert samples(text, "kafka_consumergroup_lag_sum")[(group, topic)] == 6
