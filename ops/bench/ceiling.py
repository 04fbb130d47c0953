"""The raw ceiling: how fast a bare consumer reads and decodes a backlog on this machine.

A plain aiokafka `AIOKafkaConsumer` (no group, every partition assigned, from the first offset of
each range) reads the records and decodes every value with fastavro's `schemaless_reader` against
the parsed writer schema (the 5-byte Confluent header skipped, its schema id looked up once). No
contract checks, no state, no outputs: what is left is the client and Avro, which bound any
processor written in Python on the same broker.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, TopicPartition

from topics import kafka_auth
from topics.settings import Settings


@dataclass
class Ceiling:
    records: int
    seconds: float  # from the first record read to the last

    @property
    def per_s(self) -> float | None:
        return self.records / self.seconds if self.seconds > 0 else None


async def _read(
    settings: Settings, ranges: dict[tuple[str, int], tuple[int, int]], schema_text: Callable[[int], str]
) -> Ceiling:
    writers: dict[int, Any] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        **kafka_auth.aiokafka_config(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        todo = {TopicPartition(t, p): end for (t, p), (start, end) in ranges.items() if end > start}
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, ranges[(tp.topic, tp.partition)][0])
        n = 0
        first = last = 0.0
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=1000, max_records=20000)
            if batches and not first:
                first = time.perf_counter()  # the first records are here: the clock starts
            for tp, messages in batches.items():
                end = todo.get(tp)
                if end is None:
                    continue
                for m in messages:
                    if m.offset >= end:
                        break
                    value = m.value
                    assert value is not None
                    schema_id = int.from_bytes(value[1:5], "big")
                    writer = writers.get(schema_id)
                    if writer is None:
                        writer = writers[schema_id] = fastavro.parse_schema(json.loads(schema_text(schema_id)))
                    fastavro.schemaless_reader(io.BytesIO(value[5:]), writer)
                    n += 1
                if messages:
                    last = time.perf_counter()
                    if messages[-1].offset >= end - 1:
                        del todo[tp]
                        consumer.pause(tp)
        return Ceiling(n, last - first)
    finally:
        await consumer.stop()


def measure(
    settings: Settings, ranges: dict[tuple[str, int], tuple[int, int]], schema_text: Callable[[int], str]
) -> Ceiling:
    """Read and decode the records [start, end) of each (topic, partition) in `ranges`."""
    return asyncio.run(_read(settings, ranges, schema_text))
