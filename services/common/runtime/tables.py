"""State: JSON-document tables over faust tables, the per-partition progress, and due indexes."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP

from services.common.runtime.delivery import partition_of

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


class _Placement:
    """Stands in for "the current event" when a table is written outside one (after a batch, in a timer).

    faust's RocksDB store files each write under `current_event().message.partition` and refuses a
    write without an event, even for `use_partitioner` tables. Our tables are written once per batch
    and from timers, so each write names the partition its changelog record goes to. Recovery files
    changelog records the same way.
    """

    __slots__ = ("message", "__weakref__")

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


class JsonTable:
    """A faust table of JSON documents under bytes keys (raw changelog, readable by any tool).

    Writes are held until the batch's outputs are acknowledged (reads see them at once); `commit`
    then returns their changelog records, which the `Processor` sends as record batches, and
    `store` puts them in the store once the changelog has taken them, before the batch's offsets
    commit. So the store never holds a write its changelog lacks, and the changelog offset it
    records (rocksdb: read from there at the next start) never runs ahead of what it holds. A
    key's changelog partition is murmur2 of the key (as with `use_partitioner`), unless the write
    names it (`put(..., partition=)`).
    """

    #: decoded documents kept beside the store, newest reads and writes first out last; the
    #: values are the rules' own (they copy on write), so a read costs no JSON parsing
    CACHE = 50_000

    def __init__(self, table: Any) -> None:
        self.table = table
        self.partitions = int(table.partitions)
        self._pending: dict[bytes, tuple[Any, int | None]] = {}
        self._decoded: dict[bytes, Any] = {}
        self._committed: list[tuple[str, int, bytes, bytes]] = []
        self.indexes: list[TableIndex] = []  # kept current by every write

    def get(self, key: bytes) -> Any:
        held = self._pending.get(key)
        if held is not None:
            return held[0]
        value = self._decoded.get(key)
        if value is None:
            raw = self.table.get(key)
            if not raw:
                return None
            value = self._remember(key, _loads(raw))
        return value

    def _remember(self, key: bytes, value: Any) -> Any:
        cache = self._decoded
        cache.pop(key, None)
        cache[key] = value
        if len(cache) > self.CACHE:
            del cache[next(iter(cache))]
        return value

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.put(key, value)

    def put(self, key: bytes, value: Any, partition: int | None = None) -> None:
        self._pending[key] = (value, partition)
        for index in self.indexes:
            index.update(key, value)

    def commit(self) -> list[tuple[str, int, bytes, bytes]]:
        """The held writes' changelog records (topic, partition, key, value), for `store` after."""
        if not self._pending:
            return []
        topic = self.table.changelog_topic.get_topic_name()
        records = []
        for key, (value, partition) in self._pending.items():
            raw = _dumps(value).encode()
            if partition is None:
                partition = partition_of(key, self.partitions)
            records.append((topic, partition, key, raw))
        self._committed = records
        return records

    def store(self, acked: Mapping[tuple[str, int], int]) -> None:
        """Put the committed writes in the store, their changelog records acknowledged (`acked`: the
        last offset taken per changelog partition), then record those offsets in the store, which
        then holds every record up to them (rocksdb; the memory store keeps no offsets)."""
        if not self._committed:
            return
        changelog = self.table.changelog_topic.get_topic_name()
        data = self.table.data
        # faust's memory store drops, after a rebalance, the keys of partitions this worker no
        # longer holds, but knows a key's partition only from the changelog records it recovered
        key_partition = getattr(data, "_key_partition", None)
        for _, partition, key, raw in self._committed:
            self._remember(key, self._pending.pop(key)[0])
            placement = _Placement(partition)  # held here: the context keeps only a weak reference
            token = _current_event.set(weakref.ref(placement))  # type: ignore[arg-type]
            try:
                data[key] = raw  # the store only; the changelog record went out batched
            finally:
                _current_event.reset(token)
            if key_partition is not None:
                key_partition[key] = partition
        for (topic, partition), offset in acked.items():
            if topic == changelog:
                data.set_persisted_offset(TP(topic, partition), offset)
        self._committed = []

    def forget_decoded(self) -> None:
        """After a rebalance the store holds what recovery read: decode it afresh."""
        self._decoded = {}

    def discard(self) -> None:
        """Drop the held writes; the indexes, which saw them, are built again at their next look."""
        self._pending = {}
        self._committed = []
        self._decoded = {}  # a dropped batch may have changed a document it read
        for index in self.indexes:
            index.forget()

    def items(self) -> Iterator[tuple[bytes, Any]]:
        pending = dict(self._pending)
        for key, raw in list(self.table.items()):
            if raw and key not in pending:
                yield key, _loads(raw)
        for key, (value, _) in pending.items():
            yield key, value

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value


OUTCOMES = ("applied", "duplicate", "rejected")


class Progress:
    """Where each input partition's processing stands, kept in the state itself.

    One document per partition of an input topic, in a table partitioned like the topic and
    written in the same changelog step as the batch's state: the next offset to process and what
    the records before it came to (consumed, applied, duplicate, rejected, and rejections by
    reason). After a crash between the state's write and the offset commit, the records below
    `offset` are delivered again, and skipped here: they are neither applied nor counted twice,
    so consumed = applied + duplicate + rejected holds exactly, whatever the kill point.
    """

    def __init__(self, table: JsonTable) -> None:
        self.table = table

    @staticmethod
    def _key(partition: int) -> bytes:
        return b"p%d" % partition

    def of(self, partition: int) -> dict[str, Any]:
        doc = self.table.get(self._key(partition))
        return doc or {"offset": 0, "consumed": 0, **{o: 0 for o in OUTCOMES}, "reasons": {}}

    def next_offset(self, partition: int) -> int:
        return int(self.of(partition)["offset"])

    def advance(
        self, partition: int, next_offset: int, outcomes: dict[str, int], reasons: dict[str, int]
    ) -> dict[str, Any]:
        doc = self.of(partition)
        doc["offset"] = next_offset
        doc["consumed"] += sum(outcomes.values())
        for outcome, n in outcomes.items():
            doc[outcome] = doc.get(outcome, 0) + n
        for reason, n in reasons.items():
            doc["reasons"][reason] = doc["reasons"].get(reason, 0) + n
        self.table.put(self._key(partition), doc, partition=partition)
        return doc

    def documents(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for key, doc in self.table.items():
            if key.startswith(b"p"):
                yield int(key[1:]), doc


class TableIndex:
    """A view of a table's documents, one entry per key, kept current by every write to the table.

    It is built from the table at its first look and again after every rebalance (faust's
    `on_rebalance_complete`, sent once the assigned partitions' tables are recovered, so the keys
    of partitions this worker takes over are in it) and after a dropped batch.
    """

    def __init__(self, app: faust.App, table: JsonTable, of: Callable[[Any], Any]) -> None:
        self.table = table
        self.of = of  # value -> its entry, or None for none
        self._entries: dict[bytes, Any] | None = None
        table.indexes.append(self)
        app.on_rebalance_complete.connect(self._on_rebalance)

    async def _on_rebalance(self, *_: Any, **__: Any) -> None:
        self.forget()

    def forget(self) -> None:
        self._entries = None

    def update(self, key: bytes, value: Any) -> None:
        if self._entries is not None:
            self._set(self._entries, key, self.of(value) if value else None)

    def _set(self, entries: dict[bytes, Any], key: bytes, entry: Any) -> None:
        if entry is None:
            entries.pop(key, None)
        else:
            entries[key] = entry

    def entries(self) -> dict[bytes, Any]:
        if self._entries is None:
            self._reset()
            entries: dict[bytes, Any] = {}
            for key, value in self.table.items():
                self._set(entries, key, self.of(value) if value else None)
            self._entries = entries
        return self._entries

    def _reset(self) -> None:
        """Before a rebuild: drop what is derived from the entries."""


class Tally(TableIndex):
    """How many of a table's documents fall in each class (a grade, a list).

    A gauge then reads the counts instead of decoding every document on a timer.
    """

    def __init__(self, app: faust.App, table: JsonTable, label: Callable[[Any], str | None]) -> None:
        self._counts: dict[str, int] = {}
        super().__init__(app, table, label)

    def _set(self, entries: dict[bytes, Any], key: bytes, entry: Any) -> None:
        old = entries.get(key)
        if old is not None:
            self._counts[old] -= 1
        if entry is not None:
            self._counts[entry] = self._counts.get(entry, 0) + 1
        super()._set(entries, key, entry)

    def _reset(self) -> None:
        self._counts = {}

    def counts(self) -> dict[str, int]:
        self.entries()
        return {label: n for label, n in self._counts.items() if n}


class DueIndex(TableIndex):
    """The keys of a table by when a timer must look at them next (an expiry, a deadline).

    A timer then reads only the keys whose moment has come, not the whole table.
    """

    def __init__(self, app: faust.App, table: JsonTable, when: Callable[[Any], Any]) -> None:
        super().__init__(app, table, when)  # value -> the moment to look again, or None for never

    def drop(self, key: bytes) -> None:
        if self._entries is not None:
            self._entries.pop(key, None)

    def ready(self, now: Any) -> list[bytes]:
        """The keys whose moment is `now` or earlier."""
        return [key for key, moment in self.entries().items() if moment <= now]
