"""Output records of a batch, sent as one Kafka record batch per partition and retried until taken."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.partitioner import murmur2

log = logging.getLogger("tongcheng.runtime")

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
_NO_HEADERS: list[tuple[str, bytes]] = []  # aiokafka's batch builder takes a list; never written to


@functools.lru_cache(maxsize=1 << 16)
def _murmur2(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_of(key: bytes, partitions: int) -> int:
    """The default partitioner's choice (murmur2, as in the Java client, aiokafka and kafka-python).

    murmur2 is pure Python in aiokafka; a key's hash is remembered, since a subject's profile,
    its state and its next records all hash the same key.
    """
    return _murmur2(key) % partitions


async def track_topic(producer: Any, topic: str) -> None:
    """Make the aiokafka producer's client keep `topic` in its metadata.

    aiokafka's client fetches metadata for all topics while it tracks none, and for the tracked ones
    only once it tracks any; `send` and `send_batch` skip tracking a topic whose partitions are
    already known. A topic first seen in an all-topics fetch is then dropped by the next refresh,
    and a batch queued for it waits for a leader that no refresh brings back: the sender spins on
    metadata and every flush hangs. Tracking each topic before sending to it avoids that.
    """
    await producer.client.add_topic(topic)


class Abandoned(Exception):
    """A batch's outputs were not all acknowledged when the worker began to stop."""


class Outputs:
    """Output records gathered over a batch and sent as one Kafka record batch per partition.

    Appending to an aiokafka BatchBuilder costs a few microseconds a record; faust's Topic.send a
    few hundred. Partitions follow the default partitioner (murmur2 of the key), so keys land
    where any other Kafka producer puts them.

    `send` returns only once every record is acknowledged. The records of a partition the broker
    refuses are sent again, after a pause that doubles up to `MAX_PAUSE` seconds, until they are
    taken: a batch's effects are never given up, and its offsets wait (its consumer lag shows it).
    Only a stopping worker abandons them (`Abandoned`): its batch is then not committed.
    """

    FIRST_PAUSE = 0.5
    MAX_PAUSE = 30.0

    def __init__(
        self,
        producer: Callable[[], Any],
        partitions: dict[str, int],
        what: str = "outputs",
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._producer = producer
        self._partitions = partitions
        self._what = what
        self._sleep = sleep  # returns early when the worker stops
        self._stopping = stopping
        self._records: dict[tuple[str, int], list[Record]] = {}
        #: the offset of the last record each partition took in the last `send`
        self.acked: dict[tuple[str, int], int] = {}

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue one record; by default on its key's partition, as the default partitioner puts it."""
        if partition is None:
            if key is None:
                raise ValueError(f"a record for {topic} needs a key or a partition")
            partition = partition_of(key, self._partitions[topic])
        self._records.setdefault((topic, partition), []).append((key, value, headers or _NO_HEADERS))

    def clear(self) -> None:
        self._records = {}

    def __len__(self) -> int:
        return sum(len(records) for records in self._records.values())

    async def send(self) -> int:
        pending, self._records = self._records, {}
        self.acked = {}
        sent, pause = 0, self.FIRST_PAUSE
        while pending:
            producer = self._producer()
            for topic in {topic for topic, _ in pending}:
                await track_topic(producer, topic)  # a set lookup once tracked
            results = await asyncio.gather(
                *(self._send_partition(producer, tp, records) for tp, records in pending.items()),
                return_exceptions=True,
            )
            refused: dict[tuple[str, int], list[Record]] = {}
            for (tp, records), result in zip(pending.items(), results, strict=True):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    refused[tp] = records
                    log.error(
                        "%s: records for a partition not acknowledged (%s: %s); sending again in %.1fs",
                        self._what,
                        type(result).__name__,
                        result,
                        pause,
                    )
                else:
                    sent += len(records)
                    self.acked[tp] = result
            pending = refused
            if pending:
                await self._sleep(pause)
                pause = min(pause * 2, self.MAX_PAUSE)
                if self._stopping():
                    raise Abandoned(f"{self._what}: the worker is stopping; the batch will be delivered again")
        return sent

    async def _send_partition(self, producer: Any, tp: tuple[str, int], records: list[Record]) -> int:
        """Send one partition's records; the offset the broker gave the last of them."""
        topic, partition = tp
        batches = [producer.create_batch()]
        for key, value, headers in records:
            if batches[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                batches.append(producer.create_batch())  # an empty batch takes any one record
                batches[-1].append(key=key, value=value, timestamp=None, headers=headers)
        futures = [await producer.send_batch(batch, topic, partition=partition) for batch in batches]
        taken = await asyncio.gather(*futures)  # each batch's metadata: the offset of its first record
        count: int = batches[-1].record_count()  # aiokafka's BatchBuilder is unannotated
        return int(taken[-1].offset) + count - 1
