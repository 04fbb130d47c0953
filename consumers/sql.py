"""A reusable, batched SQL sink: topics of the catalogue -> upserted rows, on SQLite or PostgreSQL.

One poll of up to `batch_size` records becomes one database transaction:

1. decode every record; an undecodable one goes to its topic's DLQ with the reason, and counts;
2. keep the newest row per key (by the projection's version column) within the batch;
3. read the stored versions of those keys in one query, and upsert only rows that are newer, in
   one multi-row `INSERT .. ON CONFLICT DO UPDATE .. WHERE stored.version < new.version` per table;
   a tombstone (null value on a compacted topic) deletes the row;
4. commit the transaction, wait for the DLQ sends, then commit the Kafka offsets.

Offsets are committed only after the rows are, so a crash replays the tail of the batch; the
version guard makes that replay a counted duplicate rather than a second write. Every record
consumed is counted once as applied, duplicate or rejected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from kafka import KafkaProducer
from sqlalchemy.engine import Connection, Engine

from consumers.subscriber import Delivery, Subscriber
from services.common.context import Context
from services.common.dlq import DeadLetters
from services.common.errors import ConfigError, Reason
from services.common.metrics import Metrics
from topics.publisher import producer_config

log = logging.getLogger("tongcheng.sink")

RowFn = Callable[[dict[str, Any], int, int], dict[str, Any]]
KEY_CHUNK = 500  # keys per IN (...) lookup, well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class Projection:
    """How one topic becomes rows of one table: row(event, partition, offset), its key and version."""

    event_type: str
    table: sa.Table
    row: RowFn
    keys: tuple[str, ...]
    version: str | None = "revision"
    #: the row key of a tombstone's message key; by default the key is the one key column
    tombstone_key: Callable[[bytes], tuple[Any, ...]] | None = None

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.keys)


def _insert(conn: Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise ConfigError(f"the SQL sink supports SQLite and PostgreSQL, not {name}")


def upsert(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], version: str | None
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
    conn.execute(stmt, list(rows))


def _key_clause(table: sa.Table, keys: Sequence[str], values: Sequence[tuple[Any, ...]]) -> Any:
    if len(keys) == 1:
        return table.c[keys[0]].in_([v[0] for v in values])
    return sa.tuple_(*(table.c[k] for k in keys)).in_(values)


def stored_versions(
    conn: Connection, table: sa.Table, keys: Sequence[str], version: str, wanted: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], int]:
    wanted = list(wanted)
    found: dict[tuple[Any, ...], int] = {}
    cols = [table.c[k] for k in keys]
    for i in range(0, len(wanted), KEY_CHUNK):
        chunk = wanted[i : i + KEY_CHUNK]
        query = sa.select(*cols, table.c[version]).where(_key_clause(table, keys, chunk))
        for row in conn.execute(query):
            found[tuple(row[: len(keys)])] = row[-1]
    return found


def delete_keys(conn: Connection, table: sa.Table, keys: Sequence[str], values: Sequence[tuple[Any, ...]]) -> None:
    for i in range(0, len(values), KEY_CHUNK):
        conn.execute(sa.delete(table).where(_key_clause(table, keys, values[i : i + KEY_CHUNK])))


class _Pending:
    """The newest row (or deletion) per key of one projection within a batch, with who wants it."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.rows: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self.versions: list[tuple[tuple[Any, ...], int | None]] = []

    def put(self, key: tuple[Any, ...], row: dict[str, Any] | None) -> None:
        v = self.projection.version
        current = self.rows.get(key)
        if row is None or current is None or not v or row[v] >= current[v]:
            self.rows[key] = row
        self.versions.append((key, row[v] if (row is not None and v) else None))


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
        self.by_topic = {ctx.topics.topic(p.event_type): p for p in projections}
        self._producer = producer or KafkaProducer(**producer_config(ctx.settings.bootstrap, f"tongcheng-{service}"))
        self.dead = DeadLetters(self._send, self.metrics, service)
        self.subscriber = Subscriber(
            ctx,
            list(self.by_topic),
            group_id=group_id,
            from_beginning=True,
            max_poll_records=batch_size,
            fetch_max_bytes=64 * 1024 * 1024,
        )

    def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> Any:
        return self._producer.send(topic, key=key, value=value, headers=headers)

    def count(self, topic: str, outcome: str, n: int = 1) -> None:
        if n:
            self.metrics.events_consumed.labels(service=self.service, topic=topic, outcome=outcome).inc(n)

    def reject(self, d: Delivery, reason: Reason, detail: str) -> Any:
        return self.dead.reject(d, reason, detail)

    def step(self) -> int:
        """One poll, one transaction, one offset commit. Returns the number of records consumed."""
        deliveries = self.subscriber.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
        if not deliveries:
            return 0
        started = time.perf_counter()
        pending: dict[str, _Pending] = {}
        sends = []
        for d in deliveries:
            projection = self.by_topic[d.topic]
            batch = pending.setdefault(d.topic, _Pending(projection))
            if d.value is None:  # tombstone on a compacted topic
                if d.key is None:
                    sends.append(self.reject(d, Reason.UNDECODABLE, "tombstone without a key"))
                    continue
                if projection.tombstone_key is None and len(projection.keys) != 1:
                    sends.append(self.reject(d, Reason.UNDECODABLE, "tombstone on a table with a composite key"))
                    continue
                key = projection.tombstone_key(d.key) if projection.tombstone_key else (d.key.decode(),)
                batch.put(key, None)
                continue
            if d.event is None:
                assert d.error is not None
                sends.append(self.reject(d, d.error.reason, d.error.detail))
                continue
            try:
                row = projection.row(d.event, d.partition, d.offset)
            except Exception as exc:  # a projection bug must not stop the sink
                log.exception("projection of %s@%d failed", d.topic, d.offset)
                sends.append(self.reject(d, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
                continue
            batch.put(projection.key_of(row), row)
        with self.engine.begin() as conn:
            for topic, batch in pending.items():
                self._write(conn, topic, batch)
        for future in sends:
            future.get(timeout=30)
        self.subscriber.commit()
        self.metrics.processing_seconds.observe((time.perf_counter() - started) / len(deliveries))
        return len(deliveries)

    def _write(self, conn: Connection, topic: str, batch: _Pending) -> None:
        p = batch.projection
        deletes = [k for k, row in batch.rows.items() if row is None]
        rows = {k: row for k, row in batch.rows.items() if row is not None}
        stored = stored_versions(conn, p.table, p.keys, p.version, rows) if p.version else {}
        fresh = [row for k, row in rows.items() if p.version is None or k not in stored or stored[k] < row[p.version]]
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
        self.count(topic, "applied", applied)
        self.count(topic, "duplicate", duplicate)

    def run(self, should_stop: Callable[[], bool], on_progress: Callable[[int], None] | None = None) -> None:
        while not should_stop():
            n = self.step()
            if n and on_progress:
                on_progress(n)

    def close(self) -> None:
        self.subscriber.close()
        self._producer.flush(timeout=30)
        self._producer.close(timeout=30)
