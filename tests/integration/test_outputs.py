"""Batched outputs on the real broker, including aiokafka's metadata trap (see `track_topic`)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from services.common.runtime import Outputs
from topics.context import Context
from topics.kafka_auth import aiokafka_config, client_config


def test_a_batch_for_a_topic_known_only_from_bootstrap_is_delivered(ctx: Context) -> None:
    """The producer learns every topic from an all-topics refresh, then starts tracking another; the next
    metadata refresh then covers only the tracked topics. A batch queued in between must still be
    delivered, not wait for a leader forever (the hang seen in `tongcheng up --demo`)."""
    target = ctx.topics.topic("credit.profile")
    other = ctx.topics.topic("sanction.list")

    async def scenario() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=ctx.settings.bootstrap, acks="all", **aiokafka_config(ctx.settings)
        )
        await producer.start()
        try:
            await producer.client.force_metadata_update()  # tracking nothing, the client fetches every topic
            assert producer.client.cluster.partitions_for_topic(target)  # known, but not tracked
            outputs = Outputs(lambda: producer, {target: 6, other: 6})
            for i in range(50):
                outputs.add(target, f"k{i}".encode(), b"v")
            tracking = producer.client.add_topic(other)  # now only `other` is refreshed, unless tracked
            sent = await asyncio.wait_for(outputs.send(), timeout=30)
            await tracking
            await producer.client.force_metadata_update()
            assert producer.client.cluster.partitions_for_topic(target)  # still tracked after a refresh
            return sent
        finally:
            await producer.stop()

    assert asyncio.run(scenario()) == 50
    consumer = KafkaConsumer(
        bootstrap_servers=ctx.settings.bootstrap, enable_auto_commit=False, **client_config(ctx.settings)
    )
    parts = [TopicPartition(target, p) for p in range(6)]
    assert sum(consumer.end_offsets(parts).values()) == 50
    consumer.close()
