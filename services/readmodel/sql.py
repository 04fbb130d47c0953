"""A reusable, batched SQL sink: topics of the catalogue -> upserted rows, on SQLite or PostgreSQL.

One poll of up to `batch_size` records becomes one database transaction:

1. decode every record and make it its row (`Projection.row`: the event as its Struct, then the
   table's row Struct); an undecodable one goes to its topic's DLQ with the reason, and counts;
2. keep the newest row per key (by the projection's version column) within the batch;
3. read the stored versions of those keys in one query, and upsert only rows that are newer, in
   one multi-row `INSERT .. ON CONFLICT DO UPDATE .. WHERE stored.version < new.version` per table;
   a tombstone (null value on a compacted topic) deletes the row;
4. commit the transaction, wait for the DLQ sends, then commit the Kafka offsets.

Offsets are committed only after the rows are, so a crash replays the tail of the batch; the
version guard makes that replay a counted duplicate rather than a second write. Every record
consumed is counted once as applied, duplicate or rejected.

A transient fault is never the data's fault, and never ends the worker (`SqlSink.run`): the schema
registry cannot be reached (`Unavailable` from the codec), the broker fails a poll, a DLQ send or
the offset commit (`KafkaError`), or the database connection is lost (an `OperationalError` that
says so). The batch's transaction is rolled back, the consumer is moved back to the batch's first
offset per partition so its records are read again, and the sink waits 0.5 s, doubling to 30 s,
before it goes on; one warning per kind of fault (at most one per 30 s once `logs.install()` has
run). Only bad data goes to the DLQ. A commit that failed after the rows were written is not
undone: the rows stay and the offsets are committed again before anything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from kafka import KafkaProducer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import TopicPartition
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from schemas.errors import ConfigError, Reason, Unavailable
from topics.context import Context
from topics.dlq import DeadLetters
from topics.metrics import Metrics
from topics.publisher import HealingProducer, producer_config
from topics.subscriber import Delivery, Subscriber

log = logging.getLogger("tongcheng.sink")


class TableRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of a read-model table: a subclass's fields are its table's columns, by name. The sink
    writes it (`upsert`); the API reads it back (services/api/reads.py, `ReadModel.rows`)."""


#: the row of one decoded event (the codec's mapping), from its partition and offset
RowFn = Callable[[Mapping[str, object], int, int], TableRow]
#: a row's key: its key columns' values, in the projection's order
Key = tuple[object, ...]
KEY_CHUNK = 500  # keys per IN (...) lookup, well under SQLite's bound-parameter limit
FIRST_PAUSE = 0.5  # after a transient fault; doubled after each fault in a row
MAX_PAUSE = 30.0
#: a SIGKILLed sink's partitions move to another member of its group once the broker has missed its
#: heartbeats this long, as the stream workers' do (kafka-python's default is 45 s)
SESSION_TIMEOUT_MS = 8_000
HEARTBEAT_INTERVAL_MS = 1_000
COMMIT_TIMEOUT_MS = 10_000  # kafka-python's commit() retries until this passes while the broker is away
#: what a lost database connection says, where the driver does not flag it as a disconnect
LOST_CONNECTION = (
    "server closed the connection",
    "could not connect",
    "connection refused",
    "connection reset",
    "connection timed out",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "ssl syscall error",
    "database is locked",  # SQLite: another writer holds the file longer than the busy timeout
)


def transient(exc: BaseException) -> bool:
    """Is `exc` a fault of a dependency (registry, broker, database connection), to wait out?"""
    if isinstance(exc, Unavailable):
        return True
    if isinstance(exc, KafkaError):  # a refused or oversized record is not waited out
        return bool(exc.retriable) or isinstance(exc, CommitFailedError)  # a rebalance: read the batch again
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig or exc).lower()
        return any(phrase in text for phrase in LOST_CONNECTION)
    return False


@dataclass(frozen=True)
class Projection:
    """How one topic becomes rows of one table: row(decoded event, partition, offset), its key and
    version (services/readmodel/tables.py `projected` makes `row` of a function of the event's Struct)."""

    event_type: str
    table: sa.Table
    row: RowFn
    keys: tuple[str, ...]
    version: str | None = "revision"
    #: the row key of a tombstone's message key; by default the key is the one key column
    tombstone_key: Callable[[bytes], Key] | None = None

    def key_of(self, row: TableRow) -> Key:
        return tuple(getattr(row, k) for k in self.keys)


def _insert(conn: Connection, table: sa.Table) -> PostgresInsert | SqliteInsert:
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise ConfigError(f"the SQL sink supports SQLite and PostgreSQL, not {name}")


def upsert(
    conn: Connection, table: sa.Table, rows: Sequence[TableRow], keys: Sequence[str], version: str | None
) -> None:
    """Insert or update `rows` in one statement; with `version`, never replace a newer stored row."""
    if not rows:
        return
    stmt = _insert(conn, table)
    columns = [c.name for c in table.columns if c.name not in keys]
    guard = table.c[version] < stmt.excluded[version] if version else None
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys], set_={c: stmt.excluded[c] for c in columns}, where=guard
    )
    conn.execute(stmt, [msgspec.structs.asdict(row) for row in rows])


def _key_clause(table: sa.Table, keys: Sequence[str], values: Sequence[Key]) -> sa.ColumnElement[bool]:
    if len(keys) == 1:
        return table.c[keys[0]].in_([v[0] for v in values])
    return sa.tuple_(*(table.c[k] for k in keys)).in_(values)


def stored_versions(
    conn: Connection, table: sa.Table, keys: Sequence[str], version: str, wanted: Iterable[Key]
) -> dict[Key, int]:
    wanted = list(wanted)
    found: dict[Key, int] = {}
    cols = [table.c[k] for k in keys]
    for i in range(0, len(wanted), KEY_CHUNK):
        chunk = wanted[i : i + KEY_CHUNK]
        query = sa.select(*cols, table.c[version]).where(_key_clause(table, keys, chunk))
        for row in conn.execute(query):
            found[tuple(row[: len(keys)])] = row[-1]
    return found


def delete_keys(conn: Connection, table: sa.Table, keys: Sequence[str], values: Sequence[Key]) -> None:
    for i in range(0, len(values), KEY_CHUNK):
        conn.execute(sa.delete(table).where(_key_clause(table, keys, values[i : i + KEY_CHUNK])))


class _Pending:
    """The newest row (or deletion) per key of one projection within a batch, with who wants it."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.rows: dict[Key, TableRow | None] = {}
        self.versions: list[tuple[Key, int | None]] = []

    def put(self, key: Key, row: TableRow | None) -> None:
        v = self.projection.version
        current = self.rows.get(key)
        if row is None or current is None or not v or getattr(row, v) >= getattr(current, v):
            self.rows[key] = row
        self.versions.append((key, getattr(row, v) if (row is not None and v) else None))


class SqlSink:
    """Consumes the projections' topics in a consumer group and keeps their tables current."""

    def __init__(
        self,
        ctx: Context,
        engine: Engine,
        projections: Iterable[Projection],
        *,
        group_id: str,
        service: str = "readmodel",
        metrics: Metrics | None = None,
        batch_size: int = 2000,
        poll_timeout_ms: int = 500,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.service = service
        self.metrics = metrics or Metrics()
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        # an input type is read from its accepted stream: only what its owner applied is served
        self.by_topic = {ctx.topics.stream(p.event_type): p for p in projections}
        # a raw kafka-python producer can stay stuck for good after an outage longer than its delivery
        # timeout (topics/publisher.py); a HealingProducer replaces it. A send waits at most 10 s for
        # metadata, so a DLQ send during an outage fails (and the batch is read again) instead of
        # blocking the sink for kafka-python's default minute.
        config = {**producer_config(ctx.settings, f"tongcheng-{service}"), "max_block_ms": 10_000}
        self._producer = HealingProducer(config, producer)
        self.dead = DeadLetters(self._send, self.metrics, service)
        self.subscriber = Subscriber(
            ctx,
            list(self.by_topic),
            group_id=group_id,
            from_beginning=True,
            max_poll_records=batch_size,
            fetch_max_bytes=64 * 1024 * 1024,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )
        #: the subscriber's consumer, polled here directly so a batch's first offsets are known
        self._consumer = self.subscriber._consumer
        #: the batch in hand: per partition, its first offset (where a transient fault seeks back to)
        self._batch_start: dict[TopicPartition, int] = {}
        #: rows written but their offsets not committed (the commit failed): commit before going on
        self._uncommitted = False
        self.faults = 0

    # Any: kafka-python's FutureRecordMetadata (the library is unannotated)
    def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        return self._producer.producer.send(topic, key=key, value=value, headers=headers)

    def count(self, topic: str, outcome: str, n: int = 1) -> None:
        if n:
            self.metrics.events_consumed.labels(service=self.service, topic=topic, outcome=outcome).inc(n)

    def reject(self, d: Delivery, reason: Reason, detail: str) -> Any:
        return self.dead.reject(d, reason, detail, count=False)  # counted once the batch is in

    def step(self) -> int:
        """One poll, one transaction, one offset commit. Returns the number of records consumed.

        A transient fault (see `transient`) is raised with the transaction rolled back; `recover`
        then moves the consumer back so the batch is read again. `run` does both and waits.
        """
        if self._uncommitted:
            self._commit()
        polled = self._consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
        records = [r for batch in polled.values() for r in batch]
        if not records:
            return 0
        self._batch_start = {tp: batch[0].offset for tp, batch in polled.items() if batch}
        started = time.perf_counter()
        # every record is decoded before anything is sent or written: a registry that cannot be
        # asked (Unavailable) stops the batch here, with nothing dead-lettered
        deliveries = [
            self.subscriber.decode(r.topic, r.partition, r.offset, r.key, r.value, r.headers) for r in records
        ]
        pending: dict[str, _Pending] = {}
        rejects: list[tuple[Delivery, Reason, str]] = []
        for d in deliveries:
            projection = self.by_topic[d.topic]
            batch = pending.setdefault(d.topic, _Pending(projection))
            if d.value is None:  # tombstone on a compacted topic
                if d.key is None:
                    rejects.append((d, Reason.UNDECODABLE, "tombstone without a key"))
                    continue
                if projection.tombstone_key is None and len(projection.keys) != 1:
                    rejects.append((d, Reason.UNDECODABLE, "tombstone on a table with a composite key"))
                    continue
                key = projection.tombstone_key(d.key) if projection.tombstone_key else (d.key.decode(),)
                batch.put(key, None)
                continue
            if d.event is None:
                assert d.error is not None
                rejects.append((d, d.error.reason, d.error.detail))
                continue
            try:
                row = projection.row(d.event, d.partition, d.offset)
            except Exception as exc:  # a projection bug must not stop the sink
                log.exception("projection of %s@%d failed", d.topic, d.offset)
                rejects.append((d, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
                continue
            batch.put(projection.key_of(row), row)
        # one verdict per event: a record of an accepted stream was judged by its owner; one this
        # sink cannot use is counted and logged, not dead-lettered a second time
        sends = [
            self.reject(d, reason, detail) for d, reason, detail in rejects if not self.ctx.topics.is_accepted(d.topic)
        ]
        counts: list[tuple[str, int, int]] = []
        with self.engine.begin() as conn:
            for topic, batch in pending.items():
                counts.append((topic, *self._write(conn, topic, batch)))
        for future in sends:
            future.get(timeout=30)
        # the rows and dead letters are in: a fault from here on does not read the batch again,
        # so the batch is counted now, once
        self._batch_start = {}
        for topic, applied, duplicate in counts:
            self.count(topic, "applied", applied)
            self.count(topic, "duplicate", duplicate)
        for d, reason, _ in rejects:
            self.dead.count(d, reason)
        self._uncommitted = True
        self._commit()
        self.metrics.processing_seconds.observe((time.perf_counter() - started) / len(deliveries))
        return len(deliveries)

    def _commit(self) -> None:
        self._consumer.commit(timeout_ms=COMMIT_TIMEOUT_MS)
        self._uncommitted = False

    def recover(self) -> None:
        """After a transient fault: read the batch in hand again, from its first offset per partition
        (the database transaction was rolled back as the fault left `step`)."""
        start, self._batch_start = self._batch_start, {}
        owned = self._consumer.assignment()
        for tp, offset in start.items():
            if tp in owned:  # a partition moved to another member is read from its committed offset
                self._consumer.seek(tp, offset)

    def _write(self, conn: Connection, topic: str, batch: _Pending) -> tuple[int, int]:
        """Write one topic's rows of the batch; returns (applied, duplicate), to count once committed."""
        p = batch.projection
        deletes = [k for k, row in batch.rows.items() if row is None]
        rows = {k: row for k, row in batch.rows.items() if row is not None}
        stored = stored_versions(conn, p.table, p.keys, p.version, rows) if p.version else {}
        v = p.version
        fresh = [row for k, row in rows.items() if v is None or k not in stored or stored[k] < getattr(row, v)]
        upsert(conn, p.table, fresh, p.keys, p.version)
        delete_keys(conn, p.table, p.keys, deletes)
        applied = duplicate = 0
        newest = dict(stored)  # a record no newer than what is stored, or seen earlier in the batch, is stale
        for key, version in batch.versions:
            if version is not None and key in newest and newest[key] >= version:
                duplicate += 1
                continue
            applied += 1
            if version is not None:
                newest[key] = version
        return applied, duplicate

    def run(
        self,
        should_stop: Callable[[], bool],
        on_progress: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Step until `should_stop()`; a transient fault is waited out (0.5 s doubling to 30 s) and
        the batch read again. Any other exception is a bug or bad configuration, and ends the run."""
        pause = FIRST_PAUSE
        while not should_stop():
            try:
                n = self.step()
            except Exception as exc:
                if not transient(exc):
                    raise
                self.faults += 1
                try:
                    self.recover()
                except Exception as again:  # nothing to seek (a rebalance in between): read from the commit
                    log.info("the batch could not be sought back (%s); it is read from the committed offsets", again)
                # one line per kind of fault and 30 s: the kind is in the message template, which is
                # what services.common.logs tells lines apart by
                log.warning(
                    f"{self.service}: {type(exc).__name__}, a transient fault: %s; the batch is rolled back "
                    "and read again in %.1f s",
                    _brief(exc),
                    pause,
                )
                waited = 0.0
                while waited < pause and not should_stop():
                    sleep(min(0.25, pause - waited))
                    waited += 0.25
                pause = min(pause * 2, MAX_PAUSE)
                continue
            pause = FIRST_PAUSE
            if n and on_progress:
                on_progress(n)

    def close(self) -> None:
        self.subscriber.close()
        self._producer.close(timeout=30)


def _brief(exc: BaseException) -> str:
    """The first line of an exception (SQLAlchemy's carry the statement and its parameters)."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
