"""faust-streaming glue shared by every processor: the app, raw topics, the DLQ path, metrics.

Agents consume raw bytes and decode with the one codec, so a poison message is caught per
message, dead-lettered byte for byte with its reason, counted, and the agent carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import EventT
from prometheus_client import start_http_server

from services.common.context import Context, build_context
from services.common.dlq import dlq_headers, dlq_topic
from services.common.errors import ConfigError, Reason, Rejected
from services.common.metrics import Metrics
from topics.catalog import EVENT_TYPES

log = logging.getLogger("tongcheng")


def make_app(ctx: Context, service: str, **overrides: Any) -> faust.App:
    s = ctx.settings
    if s.table_store == "rocksdb://":
        try:
            import rocksdict  # noqa: F401
        except ImportError as exc:
            raise ConfigError("the rocksdb:// table store needs rocksdict: pip install 'tongcheng[rocksdb]'") from exc
    datadir = s.data_dir / "faust" / service
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        s.group_id(service),
        broker=f"kafka://{s.bootstrap}",
        store=s.table_store,
        web_enabled=False,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_linger=0.005,
        # one record batch per partition holds a whole processing batch of output: when a batch
        # fills, aiokafka waits for it to drain, which made every ~30 profiles wait a linger.
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(datadir),
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        **overrides,
    )


class Processor:
    """The policy every agent follows: decode, apply, emit; reject to the DLQ and carry on."""

    def __init__(self, ctx: Context, app: faust.App, service: str, metrics: Metrics) -> None:
        self.ctx = ctx
        self.app = app
        self.service = service
        self.metrics = metrics
        self._topics: dict[str, Any] = {}
        partitions = {spec.name: spec.partitions for spec in ctx.topics.specs()}
        self.outputs = Outputs(lambda: cast(Any, app.producer)._ensure_producer(), partitions)

    def table(self, name: str, partitions: int) -> JsonTable:
        """A JSON-document table whose changelog is partitioned like its keyed input topic (murmur2 of
        the key), so timers may write it outside a stream event."""
        raw = self.app.Table(
            name, default=None, partitions=partitions, key_type=bytes, value_type=bytes, use_partitioner=True
        )
        return JsonTable(raw, self.outputs)

    def meta(self, event_type: str, event_id: str, city: str, now: Any, cause: str | None) -> dict[str, Any]:
        """`meta` of a derived event: its id derived from what it says, so a replay emits the same id."""
        return {
            "event_id": event_id,
            "event_type": event_type,
            "source_city": city,
            "source_system": f"tongcheng-{self.service}",
            "occurred_at": now,
            "published_at": now,
            "correlation_id": None,
            "causation_id": cause,
        }

    def topic(self, name: str, **kwargs: Any) -> Any:
        if name not in self._topics:
            self._topics[name] = self.app.topic(name, key_type=bytes, value_type=bytes, **kwargs)
        return self._topics[name]

    async def reject(self, event: EventT, reason: Reason, detail: str) -> None:
        msg = event.message
        headers = dlq_headers(reason, detail, msg.topic, msg.partition, msg.offset)
        await track_topic(cast(Any, self.app.producer)._ensure_producer(), dlq_topic(msg.topic))
        await self.topic(dlq_topic(msg.topic)).send(key=msg.key, value=msg.value, headers=headers, force=True)
        self.metrics.events_rejected.labels(topic=msg.topic, reason=reason.value).inc()
        self.count(msg.topic, "rejected")
        log.warning("rejected %s[%d]@%d: %s: %s", msg.topic, msg.partition, msg.offset, reason.value, detail)

    def count(self, topic: str, outcome: str, n: int = 1) -> None:
        self.metrics.events_consumed.labels(service=self.service, topic=topic, outcome=outcome).inc(n)

    def decode(self, event: EventT, event_type: str) -> dict[str, Any]:
        """Decode and contract-check one input event; raises Rejected."""
        kind = self.ctx.topics.event_type_of(event.message.topic)
        schema = kind.schema if kind else None
        record = self.ctx.codec.decode(event.message.value, schema)
        self.ctx.validator.check(event_type, record)
        return record

    async def each(
        self, events: Sequence[EventT], event_type: str, handle: Callable[[EventT, dict[str, Any]], Awaitable[str]]
    ) -> None:
        """Run `handle` on every decodable event of a batch; handle returns the outcome to count."""
        started = time.perf_counter()
        for event in events:
            try:
                record = self.decode(event, event_type)
                outcome = await handle(event, record)
            except Rejected as exc:
                await self.reject(event, exc.reason, exc.detail)
                continue
            except Exception as exc:  # a bug must not stop the worker: dead-letter and go on
                log.exception("internal error on %s@%d", event.message.topic, event.message.offset)
                await self.reject(event, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
                continue
            self.count(event.message.topic, outcome)
        if events:
            self.metrics.processing_seconds.observe((time.perf_counter() - started) / len(events))

    async def emit(self, event_type: str, key: str, body: dict[str, Any]) -> None:
        """Queue one output event; `flush` sends a batch's outputs as one record batch per partition."""
        topic = self.ctx.topics.topic(event_type)
        value = self.ctx.codec.encode(f"{topic}-value", EVENT_TYPES[event_type].schema, body)
        self.outputs.add(topic, key.encode(), value)

    async def flush(self) -> None:
        """Send the queued outputs and wait until every send of this batch (outputs, DLQ, table
        changelogs) is acknowledged, so the batch's offsets are committed only after its effects."""
        await self.outputs.send()
        await self.app.producer.flush()


class StreamService:
    """The frame of every faust processor: its app, its `Processor`, and agents on catalogue topics."""

    SERVICE = ""

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.app = app or make_app(ctx, self.SERVICE)
        self.proc = Processor(ctx, self.app, self.SERVICE, metrics)

    def partitions(self, event_type: str) -> int:
        return self.ctx.topics.spec(self.ctx.topics.topic(event_type)).partitions

    def agent(
        self,
        event_type: str,
        name: str,
        on_batch: Callable[[list[EventT]], Awaitable[None]],
        batch: int = 500,
        within: float = 0.1,
    ) -> None:
        """The agent `name` on the event type's topic (raw bytes): batches of up to `batch` events,
        or what arrived within `within` seconds, each handed to `on_batch`."""

        async def consume(stream: Any) -> None:
            async for events in stream.take_events(batch, within=within):
                await on_batch(events)

        self.app.agent(self.proc.topic(self.ctx.topics.topic(event_type)), name=name)(consume)

    def each_event(
        self, event_type: str, handle: Callable[[EventT, dict[str, Any]], Awaitable[str]]
    ) -> Callable[[list[EventT]], Awaitable[None]]:
        """A batch handler that applies `handle` to each event, then sends the batch's effects."""

        async def on_batch(events: list[EventT]) -> None:
            await self.proc.each(events, event_type, handle)
            await self.proc.flush()

        return on_batch


def partition_of(key: bytes, partitions: int) -> int:
    """The default partitioner's choice (murmur2, as in the Java client, aiokafka and kafka-python)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def track_topic(producer: Any, topic: str) -> None:
    """Make the aiokafka producer's client keep `topic` in its metadata.

    aiokafka's client fetches metadata for all topics while it tracks none, and for the tracked ones
    only once it tracks any; `send` and `send_batch` skip tracking a topic whose partitions are
    already known. A topic first seen in an all-topics fetch is then dropped by the next refresh,
    and a batch queued for it waits for a leader that no refresh brings back: the sender spins on
    metadata and every flush hangs. Tracking each topic before sending to it avoids that.
    """
    await producer.client.add_topic(topic)


class Outputs:
    """Output records gathered over a batch and sent as one Kafka record batch per partition.

    Sending each record through faust's Topic.send costs a few hundred microseconds of Python per
    record; appending to an aiokafka BatchBuilder costs a few. Partitions follow the default
    partitioner (murmur2 of the key), so keys land where any other Kafka producer puts them.
    """

    def __init__(self, producer: Callable[[], Any], partitions: dict[str, int]) -> None:
        self._producer = producer
        self._partitions = partitions
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []

    def add(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        """Queue one record; by default on its key's partition, as the default partitioner puts it."""
        tp = (topic, partition_of(key, self._partitions[topic]) if partition is None else partition)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._producer().create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: start another
            self._full.append((*tp, batch))
            batch = self._open[tp] = self._producer().create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"one {topic} record of {len(value)} bytes does not fit in a record batch")

    async def send(self) -> int:
        batches = self._full + [(t, p, b) for (t, p), b in self._open.items()]
        self._full, self._open = [], {}
        producer = self._producer()
        for topic in {topic for topic, _, _ in batches}:
            await track_topic(producer, topic)
        futures = [await producer.send_batch(batch, topic, partition=partition) for topic, partition, batch in batches]
        if futures:
            await asyncio.gather(*futures)
        return sum(b.record_count() for _, _, b in batches)


class _Placement:
    """Stands in for "the current event" when a table is written outside one (after a batch, in a timer).

    faust's RocksDB store files each write under `current_event().message.partition` and refuses a
    write without an event, even for `use_partitioner` tables. Our tables are written once per batch
    and from timers, so each write names the partition the changelog record goes to: murmur2 of the
    key, as the producer's partitioner computes it. Recovery files changelog records the same way.
    """

    __slots__ = ("message", "__weakref__")

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


class JsonTable:
    """A faust table of JSON documents under bytes keys (raw changelog, readable by any tool).

    Writes go to the table's store, and their changelog records join the batch's `Outputs`, so a
    batch's changelog is sent as record batches and acknowledged before its offsets commit. faust
    recovers the table from the same changelog topic and partitions (murmur2 of the key, as with
    `use_partitioner`).
    """

    def __init__(self, table: Any, outputs: Outputs) -> None:
        self.table = table
        self.outputs = outputs
        self.partitions = int(table.partitions)

    def get(self, key: bytes) -> Any:
        raw = self.table.get(key)
        return json.loads(raw) if raw else None

    def __setitem__(self, key: bytes, value: Any) -> None:
        raw = json.dumps(value, separators=(",", ":")).encode()
        partition = partition_of(key, self.partitions)
        placement = _Placement(partition)
        token = _current_event.set(weakref.ref(placement))  # type: ignore[arg-type]
        try:
            self.table.data[key] = raw  # the store only; the changelog record goes out batched
        finally:
            _current_event.reset(token)
        self.outputs.add(self.table.changelog_topic.get_topic_name(), key, raw, partition)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        for key, raw in list(self.table.items()):
            if raw:
                yield key, json.loads(raw)

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value


class DueIndex:
    """The keys of a table by when a timer must look at them next (an expiry, a deadline).

    A timer then reads only the keys whose moment has come, not the whole table. The index is
    built from the table at the first look and again after every rebalance (faust's
    `on_rebalance_complete`, sent once the assigned partitions' tables are recovered), so the keys
    of partitions this worker takes over are indexed too; writes keep it current in between.
    """

    def __init__(self, app: faust.App, table: JsonTable, when: Callable[[Any], Any]) -> None:
        self.table = table
        self.when = when  # value -> the moment to look again, or None for never
        self._index: dict[bytes, Any] | None = None
        app.on_rebalance_complete.connect(self._forget)

    async def _forget(self, *_: Any, **__: Any) -> None:
        self._index = None

    def update(self, key: bytes, value: Any) -> None:
        if self._index is None:
            return
        moment = self.when(value) if value else None
        if moment is None:
            self._index.pop(key, None)
        else:
            self._index[key] = moment

    def drop(self, key: bytes) -> None:
        if self._index is not None:
            self._index.pop(key, None)

    def ready(self, now: Any) -> list[bytes]:
        """The keys whose moment is `now` or earlier."""
        if self._index is None:
            self._index = {}
            for key, value in self.table.items():
                moment = self.when(value)
                if moment is not None:
                    self._index[key] = moment
        return [key for key, moment in self._index.items() if moment <= now]


def run_worker(settings: Any, build: Callable[[Context, Metrics], Any], metrics_offset: int) -> int:
    """Run one faust processor: `build(ctx, metrics)` returns the service (with `.app`); metrics on
    TONGCHENG_METRICS_PORT + `metrics_offset`."""
    metrics = Metrics()
    service = build(build_context(settings), metrics)
    serve_metrics(metrics, settings.metrics_port + metrics_offset, settings.metrics_host)
    worker = faust.Worker(service.app, loglevel="WARNING", quiet=True)
    quiet_clients()
    worker.execute_from_commandline()
    return 0


def quiet_clients() -> None:
    """Client libraries log at DEBUG on every send; below WARNING that costs ~8% of the hot path."""
    for name in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> None:
    start_http_server(port, addr=host, registry=metrics.registry)
