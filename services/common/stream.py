"""faust-streaming glue shared by every processor: the app, raw topics, the DLQ path, metrics.

Agents consume raw bytes and decode with the one codec, so a poison message is caught per
message, dead-lettered byte for byte with its reason, counted, and the agent carries on.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import EventT
from prometheus_client import start_http_server

from services.common.context import Context
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
        producer_linger=0.01,
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

    def topic(self, name: str, **kwargs: Any) -> Any:
        if name not in self._topics:
            self._topics[name] = self.app.topic(name, key_type=bytes, value_type=bytes, **kwargs)
        return self._topics[name]

    async def reject(self, event: EventT, reason: Reason, detail: str) -> None:
        msg = event.message
        headers = dlq_headers(reason, detail, msg.topic, msg.partition, msg.offset)
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
        topic = self.ctx.topics.topic(event_type)
        value = self.ctx.codec.encode(f"{topic}-value", EVENT_TYPES[event_type].schema, body)
        # force: send now rather than attach to the event (attached sends wait for the commit interval);
        # `flush` after each batch makes every effect durable before the batch's offsets can commit.
        await self.topic(topic).send(key=key.encode(), value=value, force=True)

    async def flush(self) -> None:
        """Wait until every send of this batch (outputs, DLQ, table changelogs) is acknowledged."""
        await self.app.producer.flush()


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
    """A faust table of JSON documents under bytes keys (raw changelog, readable by any tool)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.partitions = int(table.partitions)

    def get(self, key: bytes) -> Any:
        raw = self.table.get(key)
        return json.loads(raw) if raw else None

    def __setitem__(self, key: bytes, value: Any) -> None:
        placement = _Placement((murmur2(key) & 0x7FFFFFFF) % self.partitions)
        token = _current_event.set(weakref.ref(placement))  # type: ignore[arg-type]
        try:
            self.table[key] = json.dumps(value, separators=(",", ":")).encode()
        finally:
            _current_event.reset(token)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        for key, raw in list(self.table.items()):
            if raw:
                yield key, json.loads(raw)

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value


def serve_metrics(metrics: Metrics, port: int) -> None:
    start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
