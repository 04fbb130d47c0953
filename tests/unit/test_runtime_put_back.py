"""Fetched records that the batch path does not deliver go back to the consumer's position.

Taking records from aiokafka moves a partition's position past them. When a fetch comes back while
a rebalance has stopped the flow, faust seeks back only the partitions that have committed offsets;
a changelog partition that a recovery had already sought stayed past the dropped records, and the
recovery waited for them for ever (a SIGKILLed worker's partitions were then never taken over).
These tests drive the consumer's fetch loop without a broker: apps are built, never started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from faust.types import TP

from tests.unit.test_runtime_assumptions import make_app, record, run

CHANGELOG = TP("probe-subjects-changelog", 3)
INPUT = TP("in", 0)


def fetch_loop(app: Any, fetches: list[tuple[dict[TP, list[Any]], set[TP]]], flow: list[bool]) -> list[dict[TP, int]]:
    """Run the consumer's fetch loop over `fetches` (the flow active or not as `flow` says, one per
    fetch); the partitions it asked to move back, with the offsets, one mapping per request."""
    consumer = app.consumer
    rewinds: list[dict[TP, int]] = []
    fetcher = SimpleNamespace(_stopped=asyncio.Event())

    async def wait_next_records(timeout: float) -> Any:
        if not fetches:
            fetcher._stopped.set()
            return {}, set()
        consumer.flow_active = flow.pop(0)
        return fetches.pop(0)

    async def rewind(firsts: Mapping[TP, int]) -> list[TP]:
        rewinds.append(dict(firsts))
        return list(firsts)

    async def perform_seek() -> None:
        pass

    async def wait_first(delivery: Any, *others: Any) -> None:
        # mode's wait_first schedules on the service's own loop, which an unstarted app lacks
        for other in others:
            other.close()
        await delivery

    consumer._wait_next_records = wait_next_records
    consumer.wait_first = wait_first
    consumer._rewind = rewind
    consumer.perform_seek = perform_seek

    async def drive() -> None:
        await asyncio.wait_for(consumer._drain_messages(fetcher), 5.0)

    run(drive())
    return rewinds


def test_a_fetch_returned_while_the_flow_is_stopped_goes_back_to_its_first_records(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    handled: list[Any] = []

    async def handler(fetched: Any) -> None:
        handled.append(fetched)

    app.tongcheng_batch_handlers = {"in": handler}
    changelog = [record(CHANGELOG.topic, 3, offset) for offset in range(20, 41)]
    inputs = [record("in", 0, offset) for offset in range(7, 9)]
    rewinds = fetch_loop(app, [({CHANGELOG: changelog, INPUT: inputs}, {CHANGELOG, INPUT})], [False])
    assert rewinds == [{CHANGELOG: 20, INPUT: 7}]
    assert handled == []
    assert app.consumer._read_offset[CHANGELOG] == 20  # delivered from offset 20 when fetched again


def test_records_of_a_paused_partition_go_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    delivered: list[int] = []

    async def callback(message: Any) -> None:
        delivered.append(message.offset)

    app.consumer.callback = callback
    other = TP(CHANGELOG.topic, 4)
    fetch = {
        CHANGELOG: [record(CHANGELOG.topic, 3, 5)],
        other: [record(CHANGELOG.topic, 4, 9), record(CHANGELOG.topic, 4, 10)],
    }
    rewinds = fetch_loop(app, [(fetch, {CHANGELOG})], [True])
    assert delivered == [5]
    assert rewinds == [{other: 9}]


def test_a_delivery_cut_short_by_a_rebalance_puts_back_the_rest_of_the_fetch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    consumer = app.consumer
    delivered: list[int] = []

    async def callback(message: Any) -> None:
        delivered.append(message.offset)
        if message.offset == 2:
            consumer.flow_active = False  # a revocation began while this record was delivered

    consumer.callback = callback
    handled: list[Any] = []

    async def handler(fetched: Any) -> None:
        handled.append(fetched)

    app.tongcheng_batch_handlers = {"in": handler}
    other = TP(CHANGELOG.topic, 5)
    fetch = {
        INPUT: [record("in", 0, 30)],
        CHANGELOG: [record(CHANGELOG.topic, 3, offset) for offset in range(5)],
        other: [record(CHANGELOG.topic, 5, 12)],
    }
    rewinds = fetch_loop(app, [(fetch, {INPUT, CHANGELOG, other})], [True])
    assert delivered == [0, 1, 2]
    # the record whose delivery the rebalance cut short, the rest of its partition, the partitions
    # after it and the batch held for the processor
    assert rewinds == [{CHANGELOG: 2}, {other: 12, INPUT: 30}]
    assert handled == []


class FakeAiokafka:
    """The aiokafka consumer as `_rewind` uses it: assignment, position, seek."""

    def __init__(self, positions: dict[TopicPartition, int | None]) -> None:
        self.positions = positions
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def position(self, tp: TopicPartition) -> int:
        position = self.positions[tp]
        if position is None:
            raise IllegalStateError("no position")
        return position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_a_partition_moves_only_backwards_and_only_if_assigned(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    past, sought_back, gone, unknown = (TopicPartition("c", p) for p in range(4))
    fake = FakeAiokafka({past: 41, sought_back: 0, unknown: None})

    async def call_thread(fun: Any) -> Any:
        return await fun()

    app.consumer._thread = SimpleNamespace(_ensure_consumer=lambda: fake, call_thread=call_thread)
    moved = run(app.consumer._rewind({TP("c", 0): 20, TP("c", 1): 20, TP("c", 2): 20, TP("c", 3): 20}))
    assert fake.seeks == [(past, 20)]
    assert moved == [TP("c", 0)]
