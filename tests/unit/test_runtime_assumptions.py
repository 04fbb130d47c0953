"""What services/common/runtime assumes about the pinned faust-streaming 0.15.3, mode-streaming and
aiokafka 0.14.0 internals, one test per assumption.

The runtime reaches past faust's public API in a few places (a transport of its own, a consumer
whose fetch loop hands whole fetches to processors, table writes outside a stream event, record
batches built by hand). Each test below fails, on an upgrade, with a message naming what changed
and which runtime code depends on it. No broker is needed: apps are built but never started, and
aiokafka clients point at a closed port and are never started.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import aiokafka
import faust
import pytest
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from faust.exceptions import ImproperlyConfigured
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from mode.utils.imports import FactoryMapping

from services.common.runtime import app as runtime_app  # registers tongcheng:// (TRANSPORTS.aliases)
from services.common.runtime import transport
from services.common.runtime.delivery import partition_of
from services.common.runtime.tables import StateTable, _Placement
from topics.settings import Settings

T = TypeVar("T")

BROKEN = "pinned-version assumption broken"


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make_app(tmp_path: Path, table_store: str = "memory://", **overrides: Any) -> Any:
    """The processors' app, from the runtime's own `make_app` (so its settings are the ones checked)."""
    settings = Settings(data_dir=tmp_path, table_store=table_store, kafka_user="probe", kafka_password="probe-secret")
    return runtime_app.make_app(SimpleNamespace(settings=settings), "probe", **overrides)  # type: ignore[arg-type]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def params(fun: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fun).parameters)


def source(obj: Any) -> str:
    return inspect.getsource(getattr(obj, "fun", obj))  # a mode ServiceTask wraps its function


def record(topic: str = "in", partition: int = 0, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"k",
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=(("h", b"1"),),
    )


# --- 1. the transport registry ----------------------------------------------------------------


def test_tongcheng_scheme_resolves_to_the_batch_transport(tmp_path: Path) -> None:
    """app.py registers `tongcheng` in TRANSPORTS.aliases; make_app's broker URL relies on it."""
    assert isinstance(TRANSPORTS, FactoryMapping), (
        f"{BROKEN}: faust.transport.drivers.TRANSPORTS is no longer a mode FactoryMapping; "
        "runtime/app.py registers tongcheng:// in it"
    )
    assert isinstance(getattr(TRANSPORTS, "aliases", None), dict), (
        f"{BROKEN}: TRANSPORTS.aliases is not a dict; runtime/app.py calls TRANSPORTS.aliases.setdefault"
    )
    assert TRANSPORTS.aliases.get("tongcheng") == "services.common.runtime.transport:Transport"
    resolved = TRANSPORTS.by_url("tongcheng://127.0.0.1:9092")
    assert resolved is transport.Transport, (
        f"{BROKEN}: TRANSPORTS.by_url('tongcheng://...') gives {resolved!r}, not runtime.transport.Transport: "
        "workers would run without the batch path"
    )
    assert issubclass(transport.Transport, driver.Transport), "runtime Transport must extend faust's aiokafka one"
    assert transport.Transport.Consumer is transport.Consumer
    assert issubclass(transport.Consumer, driver.Consumer)

    async def built() -> None:
        app = make_app(tmp_path)
        assert type(app.transport) is transport.Transport, (
            f"{BROKEN}: a faust.App with broker tongcheng://... uses {type(app.transport)!r}"
        )
        assert type(app.consumer) is transport.Consumer, (
            f"{BROKEN}: app.consumer is {type(app.consumer)!r}, not the batch Consumer "
            "(service.py casts app.consumer to it to call commit_processed)"
        )

    run(built())


# --- 2. the consumer members the batch path overrides or calls --------------------------------


def test_consumer_methods_have_the_signatures_the_batch_path_uses() -> None:
    """transport.Consumer overrides _drain_messages and wait_empty and calls the rest, as faust's own
    _drain_messages does."""
    C = driver.Consumer
    expected = {
        "_drain_messages": ["self", "fetcher"],
        "_wait_next_records": ["self", "timeout"],
        "wait_empty": ["self"],
        "_to_message": ["self", "tp", "record"],
        "assignment": ["self"],
    }
    for name, names in expected.items():
        assert callable(getattr(C, name, None)), (
            f"{BROKEN}: faust aiokafka Consumer.{name} is gone (runtime/transport.py)"
        )
        assert params(getattr(C, name)) == names, (
            f"{BROKEN}: Consumer.{name}{inspect.signature(getattr(C, name))}, runtime/transport.py "
            f"calls/overrides it as ({', '.join(names)})"
        )
    for name in ("_drain_messages", "_wait_next_records", "wait_empty"):
        assert inspect.iscoroutinefunction(getattr(C, name)), f"{BROKEN}: Consumer.{name} is no longer async"
    wait_first = inspect.signature(C.wait_first).parameters
    assert [p.kind for p in wait_first.values()][:2] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    ], f"{BROKEN}: Service.wait_first(*coros) changed; transport._deliver_each calls wait_first(callback, suspend)"
    assert ConsumerStoppedError in C.consumer_stopped_errors, (
        f"{BROKEN}: Consumer.consumer_stopped_errors no longer holds aiokafka's ConsumerStoppedError "
        "(transport._drain_messages returns quietly on it when stopping)"
    )
    thread = driver.AIOKafkaConsumerThread
    assert params(thread._ensure_consumer) == ["self"], f"{BROKEN}: AIOKafkaConsumerThread._ensure_consumer()"
    call = inspect.signature(thread.call_thread).parameters
    assert list(call)[:2] == ["self", "fun"] and any(p.kind is p.VAR_POSITIONAL for p in call.values()), (
        f"{BROKEN}: AIOKafkaConsumerThread.call_thread(fun, *args) changed; transport.commit_processed "
        "commits through call_thread(aiokafka_consumer.commit, offsets)"
    )


def test_consumer_state_the_batch_path_reads(tmp_path: Path) -> None:
    """An unstarted Consumer of the runtime's app carries the state _drain_messages and _deliver_each read."""

    async def check() -> None:
        app = make_app(tmp_path)
        c = app.consumer
        tp = TP("in", 0)
        assert c.flow_active is True, (
            f"{BROKEN}: Consumer.flow_active (transport._drain_messages drops fetches when False)"
        )
        assert c._read_offset[tp] is None, (
            f"{BROKEN}: Consumer._read_offset is no longer a mapping defaulting to None "
            "(transport._deliver_each reads it with __getitem__ for unseen partitions)"
        )
        c._committed_offset.update({tp: 5})  # commit_processed records its commits there
        assert c._committed_offset[tp] == 5
        assert callable(c.callback), f"{BROKEN}: Consumer.callback (the conductor's on_message, for _deliver_each)"
        assert inspect.iscoroutinefunction(c.suspend_flow.wait), f"{BROKEN}: Consumer.suspend_flow.wait()"
        assert callable(c._stopped.is_set) and c.should_stop is False, f"{BROKEN}: Consumer._stopped / should_stop"
        assert c.transport.app is app and app.consumer_generation_id == 0, (
            f"{BROKEN}: Consumer.transport.app / App.consumer_generation_id (rebalance detection in _drain_messages)"
        )
        assert isinstance(c._thread, driver.AIOKafkaConsumerThread), f"{BROKEN}: Consumer._thread is {c._thread!r}"

        message = c._to_message(tp, record(offset=7))
        assert (message.topic, message.partition, message.offset, message.value) == ("in", 0, 7, b"v"), (
            f"{BROKEN}: Consumer._to_message(tp, record) no longer builds the message from an aiokafka record"
        )

        # the real _wait_next_records returns (records, active partitions)
        fetched = {tp: [record()]}

        async def getmany(active_partitions: Any, timeout: float) -> Any:
            return fetched

        c._get_active_partitions = lambda: {tp}  # type: ignore[method-assign]
        c._getmany = getmany  # type: ignore[method-assign]
        result = await c._wait_next_records(0.01)
        assert isinstance(result, tuple) and len(result) == 2, (
            f"{BROKEN}: Consumer._wait_next_records returns {result!r}; transport._drain_messages unpacks "
            "(records, active_partitions)"
        )
        assert result[0] is fetched and result[1] == {tp}

    run(check())


def test_consumer_records_are_aiokafka_consumer_records() -> None:
    """Processors read topic, partition, offset, key, value and headers off each fetched record."""
    fields = {"topic", "partition", "offset", "key", "value", "headers", "timestamp"}
    missing = fields - set(inspect.signature(ConsumerRecord).parameters)
    assert not missing, (
        f"{BROKEN}: aiokafka ConsumerRecord lost {missing} (service.Processor and the processors read them)"
    )


def test_faust_tp_and_aiokafka_topicpartition_are_interchangeable() -> None:
    """Fetches are keyed by aiokafka TopicPartition, the active set and the assignment by faust TP:
    transport._drain_messages (`tp not in active`) and commit_processed (`tp in assignment`) mix them."""
    assert TP("t", 3) == TopicPartition("t", 3) and hash(TP("t", 3)) == hash(TopicPartition("t", 3)), (
        f"{BROKEN}: faust TP and aiokafka TopicPartition no longer compare/hash equal"
    )
    assert TopicPartition("t", 3) in {TP("t", 3)}
    converted = driver.ensure_aiokafka_TP(TP("t", 3))
    assert isinstance(converted, TopicPartition) and converted == ("t", 3), (
        f"{BROKEN}: faust.transport.drivers.aiokafka.ensure_aiokafka_TP (transport.commit_processed)"
    )


# --- 2b. the fetcher drives _drain_messages, and its stop waits for the batch in hand ---------


def test_fetcher_task_calls_consumer_drain_messages() -> None:
    fetcher = faust_consumer.Fetcher
    task = vars(fetcher).get("_fetcher")
    assert task is not None and type(task).__name__ == "ServiceTask", (
        f"{BROKEN}: Fetcher._fetcher is no longer a mode Service task (it runs the batch path)"
    )
    assert "consumer._drain_messages(self)" in source(task), (
        f"{BROKEN}: faust's Fetcher task no longer calls app.consumer._drain_messages(fetcher); "
        "transport.Consumer._drain_messages (the whole batch path) would never run"
    )


def test_stopping_the_fetcher_waits_for_the_batch_in_hand(tmp_path: Path) -> None:
    """transport._drain_messages shields a batch and, when cancelled, finishes it before returning.
    That is only a clean stop if stopping the Fetcher (App._stop_fetcher, called by App._stop_consumer
    before wait_empty) cancels its task and then waits for it without a short timeout.

    Note: in 0.15.3 it is mode's Service.stop (_stop_futures: cancel, then gather with no timeout) that
    does this; Fetcher.on_stop's `_drainer` branch is dead (nothing assigns Fetcher._drainer).
    """

    async def check() -> float:
        app = make_app(tmp_path)
        consumer = app.consumer
        tp = TP("in", 0)
        calls = 0

        async def wait_next_records(timeout: float) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {tp: [record()]}, {tp}
            await asyncio.sleep(timeout)
            return {}, {tp}

        consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
        started = asyncio.Event()
        finished: list[Any] = []

        async def handler(fetched: Any) -> None:
            started.set()
            await asyncio.sleep(0.3)
            finished.append(fetched)

        app.tongcheng_batch_handlers = {"in": handler}  # type: ignore[attr-defined]
        await app._fetcher.start()
        await asyncio.wait_for(started.wait(), 2.0)
        app._stopped.set()  # App.should_stop, as during App.stop
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(app._stop_fetcher(), 5.0)
        assert finished, (
            f"{BROKEN}: App._stop_fetcher() returned before the batch in hand finished: faust/mode no longer "
            "waits for the cancelled Fetcher task, so transport._drain_messages' shield-and-finish "
            "cannot finish a batch on a clean stop"
        )
        return loop.time() - began

    assert run(check()) >= 0.2


# --- 3. faust waits for the consumer on revocation and on stop --------------------------------


def test_app_calls_wait_empty_on_revocation_and_on_stop(tmp_path: Path) -> None:
    """transport.Consumer.wait_empty waits for the batch in hand; it matters only if faust calls it."""
    assert "self._consumer_wait_empty" in source(faust.App._on_partitions_revoked), (
        f"{BROKEN}: App._on_partitions_revoked no longer waits for the consumer (wait_empty): a revocation "
        "would not wait for the batch in hand (transport.Consumer.wait_empty)"
    )
    stop = source(faust.App._stop_consumer)
    assert "self._stop_fetcher()" in stop and "self._consumer_wait_empty" in stop, (
        f"{BROKEN}: App._stop_consumer no longer stops the fetcher and waits for the consumer"
    )
    assert stop.index("self._stop_fetcher()") < stop.index("self._consumer_wait_empty"), (
        f"{BROKEN}: App._stop_consumer waits for the consumer before stopping the fetcher"
    )
    assert "self.wait_empty()" in source(faust_consumer.Consumer.on_stop)

    async def check() -> None:
        app = make_app(tmp_path)
        assert app.conf.stream_wait_empty is True, (
            f"{BROKEN}: stream_wait_empty is not true by default (runtime/app.py relies on the default)"
        )
        waited: list[str] = []

        async def wait_empty() -> None:
            waited.append("wait_empty")

        fake = SimpleNamespace(wait_empty=wait_empty)
        await app._consumer_wait_empty(fake, app.log)  # type: ignore[arg-type]
        assert waited == ["wait_empty"], f"{BROKEN}: App._consumer_wait_empty does not call consumer.wait_empty()"

        consumer = app.consumer
        consumer.wait_empty = wait_empty  # type: ignore[method-assign]
        await consumer.on_stop()
        assert waited == ["wait_empty", "wait_empty"], (
            f"{BROKEN}: the aiokafka Consumer's on_stop no longer calls wait_empty (stream_wait_empty)"
        )

    run(check())


def test_rebalances_are_visible_to_the_batch_path() -> None:
    """transport._drain_messages drops a fetch made across a rebalance: it sees the rebalance through
    flow_active (stop_flow on revocation) and App.consumer_generation_id (set on assignment), and
    relies on the recovery seeking back to the committed offsets before the flow resumes."""
    assert "consumer_generation_id = generation" in source(driver.ConsumerRebalanceListener.on_partitions_assigned), (
        f"{BROKEN}: the rebalance listener no longer sets App.consumer_generation_id"
    )
    assert "consumer.stop_flow" in source(faust.App._on_partitions_revoked), (
        f"{BROKEN}: a revocation no longer stops the consumer's flow (flow_active)"
    )
    stop_flow = source(faust_consumer.Consumer.stop_flow)
    assert "self.flow_active = False" in stop_flow
    from faust.tables.recovery import Recovery

    for name in ("on_recovery_completed", "_resume_streams"):
        body = source(getattr(Recovery, name))
        assert "perform_seek()" in body and body.index("perform_seek()") < body.index("resume_flow()"), (
            f"{BROKEN}: Recovery.{name} no longer seeks to the committed offsets before resuming the flow; "
            "the fetches transport._drain_messages drops during a rebalance would be lost"
        )


# --- 4. table writes outside a stream event ---------------------------------------------------


def test_current_event_is_a_contextvar_of_a_weakref() -> None:
    from faust import streams

    assert isinstance(streams._current_event, ContextVar), (
        f"{BROKEN}: faust.streams._current_event is not a ContextVar (tables._Placement sets it)"
    )
    placement = _Placement(5)
    token = streams._current_event.set(weakref.ref(placement))  # type: ignore[arg-type]
    try:
        event: Any = streams.current_event()
        assert event is placement and event.message.partition == 5, (
            f"{BROKEN}: faust.streams.current_event() no longer dereferences the weakref in _current_event"
        )
    finally:
        streams._current_event.reset(token)
    assert streams.current_event() is None


def test_memory_table_written_outside_an_event(tmp_path: Path) -> None:
    """StateTable.store writes `table.data[key] = raw` with a _Placement as the current event."""

    async def check() -> None:
        app = make_app(tmp_path)
        raw = app.Table("t", default=None, partitions=4, key_type=bytes, value_type=bytes, use_partitioner=True)
        table = StateTable(raw)
        table.put(b"a", {"n": 1}, partition=2)
        table[b"b"] = {"n": 2}
        records = table.commit()
        table.store({})
        assert {(p, k) for _, p, k, _ in records} == {(2, b"a"), (partition_of(b"b", 4), b"b")}
        assert table.codec.decode(raw.get(b"a")).doc == {"n": 1} and table.get(b"b") == {"n": 2}, (
            f"{BROKEN}: a memory-store table written through table.data outside a stream event lost the write"
        )
        assert dict(table.items()) == {b"a": {"n": 1}, b"b": {"n": 2}}

    run(check())


def test_rocksdb_table_files_writes_under_the_current_events_partition(tmp_path: Path) -> None:
    """faust's RocksDB store puts a write in the DB of current_event().message.partition and refuses a
    write without an event: the reason for tables._Placement."""
    pytest.importorskip("rocksdict")
    from faust.stores import rocksdb

    assert "current_event()" in source(rocksdb.Store._set)

    async def check() -> None:
        app = make_app(tmp_path, table_store="rocksdb://")
        raw = app.Table("t", default=None, partitions=12, key_type=bytes, value_type=bytes, use_partitioner=True)
        assert type(raw.data) is rocksdb.Store
        try:
            table = StateTable(raw)
            table.put(b"a", {"n": 1}, partition=5)
            table.commit()
            table.store({})
            assert raw.data._key_index[b"a"] == 5, (
                f"{BROKEN}: the RocksDB store no longer files a write under current_event().message.partition "
                "(tables._Placement names the changelog partition that way)"
            )
            assert table.codec.decode(raw.get(b"a")).doc == {"n": 1}
            with pytest.raises(AssertionError):
                raw.data[b"b"] = b"x"  # without an event: why _Placement exists
        finally:
            for db in raw.data._dbs.values():
                db.close()

    run(check())


# --- 5. changelog topic names and the rebalance-complete signal -------------------------------


def test_changelog_topic_name_and_rebalance_complete_signal(tmp_path: Path) -> None:
    """StateTable.commit names the changelog topic; Processor._read_progress listens to
    on_rebalance_complete, which the recovery sends once the assigned tables are recovered."""

    async def check() -> None:
        app = make_app(tmp_path)
        raw = app.Table("t", default=None, partitions=4, key_type=bytes, value_type=bytes, use_partitioner=True)
        assert raw.changelog_topic.get_topic_name() == f"{app.conf.id}-t-changelog", (
            f"{BROKEN}: Table.changelog_topic.get_topic_name() (tables.StateTable.commit sends there)"
        )
        assert int(raw.partitions) == 4
        heard: list[tuple[Any, ...]] = []

        async def receiver(*args: Any, **kwargs: Any) -> None:
            heard.append(args)

        app.on_rebalance_complete.connect(receiver)
        await app.on_rebalance_complete.send()
        assert heard == [(app,)], f"{BROKEN}: App.on_rebalance_complete.connect/send (service.Processor._read_progress)"

    run(check())
    from faust.tables.recovery import Recovery

    assert "on_rebalance_complete.send()" in source(Recovery.on_recovery_completed), (
        f"{BROKEN}: Recovery.on_recovery_completed no longer sends on_rebalance_complete "
        "(the tables would keep stale decoded documents and counts; progress metrics would go stale)"
    )
    restart = source(Recovery._restart_recovery)
    assert restart.index("signal_recovery_end.wait()") < restart.index("self.on_recovery_completed"), (
        f"{BROKEN}: the recovery no longer completes the active tables before on_recovery_completed"
    )


def test_memory_table_forgets_keys_of_revoked_partitions(tmp_path: Path) -> None:
    """faust's memory store drops, when a recovery completes, the keys of partitions no longer held,
    but only those it knows the partition of (Store._key_partition). StateTable.store records the
    partition of each key it writes; otherwise StateTable.items(), its due index and the sweep timers would
    keep seeing, and writing, keys of partitions another worker now owns."""

    async def check() -> None:
        app = make_app(tmp_path)
        raw = app.Table("t", default=None, partitions=4, key_type=bytes, value_type=bytes, use_partitioner=True)
        table = StateTable(raw)
        table.put(b"a", {"n": 1}, partition=1)
        table.commit()
        table.store({})
        changelog = raw.changelog_topic.get_topic_name()
        await raw.data.on_recovery_completed({TP(changelog, 0)}, set())  # partition 1 went elsewhere
        assert dict(table.items()) == {}, "the key of revoked partition 1 is still in the table"

    run(check())


def test_memory_store_writes_its_dict_by_item_update_and_pop(tmp_path: Path) -> None:
    """indexes.FiledDict keeps the memory store's due entries in moment order by overriding the
    dict's item writes, `update` and `pop`: the only ways faust's memory store changes its dict
    (writes, recovered changelog batches, tombstones, partitions given away)."""
    from faust.stores import memory

    assert "self.data.update(" in source(memory.Store.apply_changelog_batch), (
        f"{BROKEN}: the memory store no longer applies a changelog batch with dict.update (indexes.FiledDict)"
    )
    assert "self.data.pop" in source(memory.Store.apply_changelog_batch)
    assert "self.data.pop(" in source(memory.Store.on_recovery_completed), (
        f"{BROKEN}: the memory store no longer drops a partition's keys with dict.pop (indexes.FiledDict)"
    )


def test_rocksdb_databases_read_a_range_from_a_seek(tmp_path: Path) -> None:
    """indexes.rocksdb_ready reads the due entries of a partition's database from a seek."""
    rocksdict = pytest.importorskip("rocksdict")
    from services.common.runtime.indexes import due_key, rocksdb_ready

    db = rocksdict.Rdict(str(tmp_path / "db"), options=rocksdict.Options(raw_mode=True))
    try:
        for key in (due_key("2026-03-02", b"b"), due_key("2026-03-01", b"a"), due_key("2026-03-09", b"c"), b"doc"):
            db.put(key, b"\x01")
        assert list(rocksdb_ready([(3, db)], "2026-03-02")) == [
            (3, due_key("2026-03-01", b"a")),
            (3, due_key("2026-03-02", b"b")),
        ], f"{BROKEN}: rocksdict's Rdict.iter()/seek/valid/key/next (indexes.rocksdb_ready)"
    finally:
        db.close()


# --- 6. aiokafka producer: record batches and topic tracking ----------------------------------


def test_producer_batches_and_topic_tracking(tmp_path: Path) -> None:
    """delivery.Outputs builds record batches by hand and delivery.track_topic tracks topics."""

    async def check() -> None:
        app = make_app(tmp_path)
        assert callable(getattr(app.producer, "_ensure_producer", None)), (
            f"{BROKEN}: faust's aiokafka Producer._ensure_producer (service.Processor gets aiokafka's producer so)"
        )
        conf = app.producer._settings_default()
        assert conf["max_batch_size"] == 512 * 1024 and conf["acks"] == -1, (
            f"{BROKEN}: producer_max_batch_size / producer_acks no longer reach AIOKafkaProducer: {conf}"
        )
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{closed_port()}", max_batch_size=1024)
        try:
            batch = producer.create_batch()
            appended = [
                batch.append(key=b"k", value=b"x" * 100, timestamp=None, headers=[("h", b"1")]) for _ in range(20)
            ]
            assert appended[0] is not None and appended[-1] is None, (
                f"{BROKEN}: BatchBuilder.append(key=, value=, timestamp=, headers=) no longer returns None when "
                "the batch is full (delivery.Outputs._send_partition starts a new batch on None)"
            )
            assert params(producer.send_batch) == ["batch", "topic", "partition"]
            assert inspect.signature(producer.send_batch).parameters["partition"].kind is inspect.Parameter.KEYWORD_ONLY
            # send_batch, once metadata is known, queues the batch and returns the delivery future
            producer.client._wait_on_metadata = _no_metadata_wait  # type: ignore[method-assign]
            producer._partition = lambda topic, partition, *_: partition  # type: ignore[method-assign]
            future = await producer.send_batch(producer.create_batch(), "out", partition=3)
            assert isinstance(future, asyncio.Future) and not future.done(), (
                f"{BROKEN}: AIOKafkaProducer.send_batch no longer returns the batch's delivery future "
                "(delivery.Outputs gathers them)"
            )
            future.cancel()

            client = producer.client
            first = client.add_topic("out")
            assert "out" in client._topics, (
                f"{BROKEN}: AIOKafkaClient.add_topic no longer tracks the topic (delivery.track_topic)"
            )
            again = client.add_topic("out")
            assert again.done() and again.result() is True, (
                f"{BROKEN}: add_topic of a tracked topic is no longer an immediate no-op (delivery.track_topic "
                "awaits it before every send)"
            )
            first.cancel()
        finally:
            await producer.client.close()
            producer._closed = True

    run(check())


async def _no_metadata_wait(topic: str) -> None:
    return None


def test_an_empty_batch_takes_any_one_record() -> None:
    """delivery.Outputs._send_partition starts a new batch when one is full and appends the record
    to it unchecked: aiokafka (like the Java client) takes the first record of an empty batch,
    whatever its size. (A record above the topic's max.message.bytes is then refused by the broker
    and retried, with the batch's offsets held back: its lag shows it.)"""

    async def check() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{closed_port()}", max_batch_size=1024)
        try:
            batch = producer.create_batch()
            assert batch.append(key=b"k", value=b"x" * 5000, timestamp=None, headers=[]) is not None
        finally:
            await producer.client.close()
            producer._closed = True

    run(check())


# --- 7. the default partitioner ---------------------------------------------------------------

#: murmur2 of these keys in the Java client (Kafka's UtilsTest.testMurmur2), and the partition of
#: 12 that DefaultPartitioner gives them: toPositive(murmur2(key)) % 12
JAVA_MURMUR2 = {
    b"21": (-973932308, 0),
    b"foobar": (-790332482, 6),
    b"a-little-bit-long-string": (-985981536, 8),
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": (-58897971, 5),
}


def test_murmur2_matches_the_java_client() -> None:
    """delivery.partition_of puts output records and table changelogs where any Kafka producer puts
    them, and Progress/StateTable assume the changelog partition equals the input partition."""
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    for key, (java_hash, java_partition) in JAVA_MURMUR2.items():
        assert aiokafka_murmur2(key) & 0xFFFFFFFF == java_hash & 0xFFFFFFFF, (
            f"{BROKEN}: aiokafka.partitioner.murmur2({key!r}) differs from the Java client's"
        )
        assert kafka_python_murmur2(key) & 0xFFFFFFFF == java_hash & 0xFFFFFFFF
        assert partition_of(key, 12) == java_partition, (
            f"runtime.delivery.partition_of({key!r}, 12) = {partition_of(key, 12)}, Java puts it on {java_partition}"
        )


# --- 8. offsets commit ------------------------------------------------------------------------


def test_offset_commit_api() -> None:
    """transport.Consumer.commit_processed commits {TopicPartition: OffsetAndMetadata(offset, "")}
    through AIOKafkaConsumer.commit and sorts its errors from the most to the least specific."""
    om = OffsetAndMetadata(12, "")
    assert (om.offset, om.metadata) == (12, ""), f"{BROKEN}: aiokafka OffsetAndMetadata(offset, metadata)"
    assert params(aiokafka.AIOKafkaConsumer.commit) == ["self", "offsets"], (
        f"{BROKEN}: AIOKafkaConsumer.commit{inspect.signature(aiokafka.AIOKafkaConsumer.commit)}"
    )
    assert inspect.iscoroutinefunction(aiokafka.AIOKafkaConsumer.commit)
    assert issubclass(CommitFailedError, KafkaError) and issubclass(IllegalStateError, KafkaError), (
        f"{BROKEN}: CommitFailedError/IllegalStateError no longer KafkaErrors (commit_processed's except order)"
    )


# --- 9. the settings runtime/app.py passes ----------------------------------------------------


@pytest.fixture
def worker_consumer_kwargs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], dict[str, Any]]]:
    """The kwargs faust gives AIOKafkaConsumer for a worker of `app` (the consumer is not built)."""
    seen: dict[str, Any] = {}

    def fake_consumer(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return SimpleNamespace()

    monkeypatch.setattr(driver.aiokafka, "AIOKafkaConsumer", fake_consumer)

    def kwargs_of(app: Any) -> dict[str, Any]:
        seen.clear()
        app.consumer._thread._create_worker_consumer(app.transport)
        return dict(seen)

    yield kwargs_of


def test_consumer_settings_reach_aiokafka(tmp_path: Path, worker_consumer_kwargs: Any) -> None:
    real_init = inspect.signature(aiokafka.AIOKafkaConsumer)

    async def check() -> None:
        app = make_app(tmp_path)
        kwargs = worker_consumer_kwargs(app)
        expected = {
            "session_timeout_ms": int(runtime_app.SESSION_TIMEOUT * 1000),
            "heartbeat_interval_ms": int(runtime_app.HEARTBEAT_INTERVAL * 1000),
            "max_poll_records": 2000,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            # the worker authenticates (topics/kafka_auth.py): SCRAM over SASL_PLAINTEXT
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "probe",
            "sasl_plain_password": "probe-secret",
        }
        got = {name: kwargs.get(name) for name in expected}
        assert got == expected, (
            f"{BROKEN}: runtime/app.py's broker settings no longer reach AIOKafkaConsumer as expected: {got}"
        )
        assert kwargs["request_timeout_ms"] >= kwargs["session_timeout_ms"]
        assert kwargs["heartbeat_interval_ms"] < kwargs["session_timeout_ms"]
        real_init.bind(**kwargs)  # every kwarg faust passes is still an AIOKafkaConsumer parameter
        assert app.conf.broker_session_timeout == runtime_app.SESSION_TIMEOUT  # wait_empty's bound
        assert app.conf.broker_session_timeout <= app.conf.broker_request_timeout

        too_long = make_app(tmp_path, broker_session_timeout=app.conf.broker_request_timeout + 1)
        with pytest.raises(ImproperlyConfigured):
            worker_consumer_kwargs(too_long)

    run(check())


def test_max_poll_records_bounds_a_fetch(tmp_path: Path) -> None:
    """A batch is one fetch: faust's getmany asks aiokafka for at most _consumer._max_poll_records."""
    assert "max_records=_consumer._max_poll_records" in source(driver.AIOKafkaConsumerThread.getmany)

    async def check() -> None:
        c = aiokafka.AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{closed_port()}", max_poll_records=2000)
        try:
            assert c._max_poll_records == 2000, f"{BROKEN}: AIOKafkaConsumer._max_poll_records"
        finally:
            await c.stop()

    run(check())


# --- the faust App API the processor frame uses ------------------------------------------------


def test_app_api_used_by_the_processor_frame(tmp_path: Path) -> None:
    """stream.StreamService, service.Processor: app.Table(..., use_partitioner=), app.topic, app.topics.add,
    app.timer(seconds, name=), app.sleep, app.should_stop."""
    assert "name" in params(faust.App.timer), f"{BROKEN}: App.timer(seconds, name=) (StreamService.timer)"
    assert inspect.iscoroutinefunction(faust.App.sleep)

    async def check() -> None:
        app = make_app(tmp_path)
        raw = app.Table("t", default=None, partitions=4, key_type=bytes, value_type=bytes, use_partitioner=True)
        assert raw.use_partitioner is True
        topic = app.topic("in", key_type=bytes, value_type=bytes)
        app.topics.add(topic)
        assert topic in app.topics, f"{BROKEN}: app.topics.add no longer subscribes the topic (StreamService.agent)"
        assert app.should_stop is False

    run(check())


def test_a_metrics_scrape_before_the_worker_starts_does_not_make_its_consumer(tmp_path: Path) -> None:
    """The progress collector runs in the metrics server's thread. faust makes `app.consumer` on first
    use, bound to the loop of the thread that asks; made there, the worker's start fails with "got
    Future attached to a different loop". A scrape before the start must leave it unmade."""
    from services.common.runtime.progress import ProgressCollector

    app = make_app(tmp_path)
    assert app._consumer is None, f"{BROKEN}: faust's App keeps its consumer in _consumer, made on first use"
    proc = SimpleNamespace(app=app, progress_seen={"t": {0: {"offset": 3}}}, service="probe")
    scraped: list[Any] = []
    thread = threading.Thread(target=lambda: scraped.extend(ProgressCollector(proc).collect()))  # type: ignore[arg-type]
    thread.start()
    thread.join()
    assert app._consumer is None and len(scraped) == 2
