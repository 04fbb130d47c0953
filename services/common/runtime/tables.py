"""State: document tables over faust tables, with their counts and due index, and the per-partition progress."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any, Generic, TypeVar, cast

import faust
import msgspec
from faust.stores import memory
from faust.streams import _current_event
from faust.types import TP

from services.common.runtime.delivery import partition_of
from services.common.runtime.encoding import Codec, Entry, Layout
from services.common.runtime.indexes import (
    FILED,
    RESERVED,
    FiledDict,
    counts_key,
    due_key,
    key_of,
    moment_key,
    rocksdb_ready,
    upto_key,
)
from services.common.runtime.outcomes import Outcome, ProgressDoc


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


class IndexedTable(faust.Table[bytes, bytes]):
    """faust's table, letting the `StateTable` over it see the changelog records it applies (a
    recovery, a standby copy) just before they go into the store, to derive its due index."""

    derive: Callable[[list[Any]], None] | None = None

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        events = list(batch)
        if self.derive is not None:
            self.derive(events)  # before the store records the batch's offsets
        super().apply_changelog_batch(events)


D = TypeVar("D")
Labeller = Callable[[D, datetime], Iterable[str]]
Scheduler = Callable[[D, datetime], date | datetime | None]


class StateTable(Generic[D]):
    """A faust table of state documents under bytes keys, with their counts and due index.

    Writes are held until the batch's outputs are acknowledged (reads see them at once); `commit`
    then returns their changelog records, which the `Processor` sends as record batches, and
    `store` puts them in the store once the changelog has taken them, before the batch's offsets
    commit. So the store never holds a write its changelog lacks, and the changelog offset it
    records (rocksdb: read from there at the next start) never runs ahead of what it holds. A
    key's changelog partition is murmur2 of the key (as with `use_partitioner`), unless the write
    names it (`put(..., partition=)`).

    - `count_by(labels)`: each document is counted under the labels it has (a grade, a list, a city's
      status); the counts of each partition are a document of the table, changed by the writes that
      change them and committed with them, so a gauge reads a few numbers, never the documents.
    - `due_by(when)`: each document is filed under the moment a timer must look at it again (an
      expiry, a deadline); `ready(now)` reads the filed keys up to now, a range read of the store.

    Both are functions of (document, now): a label or a moment that changes on the clock alone must
    be a moment of the due index, so that the timer looks at the document then (and rewrites or
    `touch`es it, which counts and files it again).
    """

    #: decoded documents kept beside the store, newest reads and writes first out last; the
    #: values are the rules' own (they copy on write), so a read costs no decoding
    CACHE = 50_000

    def __init__(
        self,
        table: Any,
        layout: Layout[D] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        held: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self.table = table
        self.partitions = int(table.partitions)
        self.codec = Codec(layout)
        self._plain = Codec()  # the counts documents
        self.clock = clock
        self._held = held  # the partitions this worker holds; None: all of them
        self._labels: Labeller[D] | None = None
        self._when: Scheduler[D] | None = None
        self._pending: dict[bytes, tuple[Entry, int]] = {}
        self._pending_due: dict[bytes, tuple[bool, int]] = {}  # due entry -> (filed, partition)
        self._decoded: dict[bytes, Entry] = {}
        self._counts: dict[int, dict[str, int]] = {}  # partition -> counts, as read or changed
        self._changed: set[int] = set()  # partitions whose counts the held writes changed
        self._committed: list[tuple[bytes, bytes | None, int]] = []  # the writes `store` puts in
        if isinstance(table, IndexedTable):
            table.derive = self._derive
        store = table.data
        if isinstance(store, memory.Store) and not isinstance(store.data, FiledDict):
            filed = FiledDict()
            filed.update(store.data)
            store.data = filed

    def count_by(self, labels: Labeller[D]) -> None:
        self._labels = labels

    def due_by(self, when: Scheduler[D]) -> None:
        self._when = when

    # --- documents --------------------------------------------------------------------------

    def _entry(self, key: bytes) -> Entry | None:
        held = self._pending.get(key)
        if held is not None:
            return held[0]
        entry = self._decoded.get(key)
        if entry is None:
            raw = self.table.get(key)
            if not raw:
                return None
            entry = self._remember(key, self._codec(key).decode(raw))
        return entry

    def _codec(self, key: bytes) -> Codec:
        return self._plain if key.startswith(RESERVED) else self.codec

    def get(self, key: bytes) -> D | None:
        entry = self._entry(key)
        return cast(D, entry.doc) if entry is not None else None

    def _remember(self, key: bytes, entry: Entry) -> Entry:
        cache = self._decoded
        cache.pop(key, None)
        cache[key] = entry
        if len(cache) > self.CACHE:
            del cache[next(iter(cache))]
        return entry

    def __setitem__(self, key: bytes, value: D) -> None:
        self.put(key, value)

    def put(self, key: bytes, value: D, partition: int | None = None) -> None:
        if partition is None:
            partition = partition_of(key, self.partitions)
        if self._labels is None and self._when is None:  # nothing to take back: no read
            self._pending[key] = (Entry(value, None, None), partition)
            return
        old = self._entry(key)
        now = self.clock()
        labels = tuple(self._labels(value, now)) if self._labels is not None else None
        moment = self._when(value, now) if self._when is not None else None
        entry = Entry(value, labels, moment_key(moment) if moment is not None else None)
        old_labels = old.labels if old is not None else None
        if labels != old_labels:
            self._count(partition, old_labels, -1)
            self._count(partition, labels, 1)
        if old is not None and old.due is not None and old.due != entry.due:
            self._pending_due[due_key(old.due, key)] = (False, partition)
        if entry.due is not None and (old is None or old.due != entry.due):
            self._pending_due[due_key(entry.due, key)] = (True, partition)
        self._pending[key] = (entry, partition)

    def touch(self, key: bytes) -> None:
        """Count and file a document again as of now, if the clock has changed either."""
        entry = self._entry(key)
        if entry is None:
            return
        now = self.clock()
        labels = tuple(self._labels(entry.doc, now)) if self._labels is not None else None
        moment = self._when(entry.doc, now) if self._when is not None else None
        if labels != entry.labels or (moment_key(moment) if moment is not None else None) != entry.due:
            self.put(key, entry.doc)

    # --- counts and the due index -----------------------------------------------------------

    def held(self) -> list[int]:
        return sorted(self._held()) if self._held is not None else list(range(self.partitions))

    def _counts_of(self, partition: int) -> dict[str, int]:
        counts = self._counts.get(partition)
        if counts is None:
            entry = self._entry(counts_key(partition))
            counts = self._counts[partition] = dict(entry.doc) if entry is not None else {}
        return counts

    def _count(self, partition: int, labels: tuple[str, ...] | None, step: int) -> None:
        if labels:
            counts = self._counts_of(partition)
            for label in labels:
                counts[label] = counts.get(label, 0) + step
            self._changed.add(partition)

    def counts(self) -> dict[str, int]:
        """The documents per label over the partitions this worker holds."""
        total: dict[str, int] = {}
        for partition in self.held():
            for label, n in self._counts_of(partition).items():
                total[label] = total.get(label, 0) + n
        return {label: n for label, n in total.items() if n}

    def ready(self, now: date | datetime) -> list[bytes]:
        """The keys, in the partitions this worker holds, whose moment is `now` or earlier.

        The store's entries are checked against their documents (the held writes included): an
        entry filed under a moment its document no longer has (left by a recovery, which files
        every version it reads) is skipped, and removed once no held write is at stake."""
        upto = moment_key(now)
        store = self.table.data
        held = set(self.held())
        filed: list[tuple[int, bytes]]
        if isinstance(store, memory.Store):
            placed = store._key_partition
            filed = [(placed[d], d) for d in cast(FiledDict, store.data).ready(upto) if placed.get(d) in held]
        else:
            filed = list(rocksdb_ready([(p, db) for p, db in store._dbs.items() if p in held], upto))
        keys: dict[bytes, None] = {}
        for partition, d in filed:
            key = key_of(d)
            entry = self._entry(key)
            if entry is not None and entry.due is not None and due_key(entry.due, key) == d:
                keys[key] = None
            elif key not in self._pending:
                self._write_local(d, None, partition)
        end = upto_key(upto)
        for d, (filed_, partition) in self._pending_due.items():
            if filed_ and d < end and partition in held:
                keys[key_of(d)] = None
        return list(keys)

    # --- the batch --------------------------------------------------------------------------

    def commit(self) -> list[tuple[str, int, bytes, bytes | None]]:
        """The held writes' changelog records (topic, partition, key, value; None deletes), for
        `store` once the changelog has taken them. Reads see the held writes until then."""
        if not self._pending and not self._pending_due:
            return []
        for partition in self._changed:
            counts = {label: n for label, n in self._counts_of(partition).items() if n}
            self._pending[counts_key(partition)] = (Entry(counts, None, None), partition)
        topic = self.table.changelog_topic.get_topic_name()
        writes: list[tuple[bytes, bytes | None, int]]
        writes = [(key, self._codec(key).encode(entry), p) for key, (entry, p) in self._pending.items()]
        # the due index is the store's own, derived from the documents: never in the changelog
        index = [(key, FILED if filed else None, p) for key, (filed, p) in self._pending_due.items()]
        self._committed = writes + index
        return [(topic, partition, key, raw) for key, raw, partition in writes]

    def store(self, acked: Mapping[tuple[str, int], int]) -> None:
        """Put the committed writes in the store, their changelog records acknowledged (`acked`: the
        last offset taken per changelog partition), then record those offsets in the store, which
        then holds every record up to them (rocksdb; the memory store keeps no offsets)."""
        if not self._committed:
            return
        changelog = self.table.changelog_topic.get_topic_name()
        for key, (entry, _) in self._pending.items():
            self._remember(key, entry)
        for key, raw, partition in self._committed:
            self._write_local(key, raw, partition)  # the store only; the changelog record went out batched
        for (topic, partition), offset in acked.items():
            if topic == changelog:
                self.table.data.set_persisted_offset(TP(topic, partition), offset)
        self._pending, self._pending_due, self._changed, self._committed = {}, {}, set(), []

    def _write_local(self, key: bytes, raw: bytes | None, partition: int) -> None:
        """Write one key of one partition's store (None deletes it), and nothing to the changelog."""
        data = self.table.data
        placement = _Placement(partition)  # held here: the context keeps only a weak reference
        # faust's context var holds a weak reference to an EventT; the store reads only `.message.partition`
        token = _current_event.set(weakref.ref(placement))  # type: ignore[arg-type]
        try:
            if raw is None:
                with contextlib.suppress(KeyError):
                    del data[key]
            else:
                data[key] = raw
        finally:
            _current_event.reset(token)
        # faust's memory store drops, after a rebalance, the keys of partitions this worker no
        # longer holds, but knows a key's partition only from the changelog records it recovered
        key_partition = getattr(data, "_key_partition", None)
        if key_partition is not None:
            if raw is None:
                key_partition.pop(key, None)
            else:
                key_partition[key] = partition

    def _derive(self, events: list[Any]) -> None:
        """File the documents of changelog records about to be applied (a recovery, a standby copy)
        in the store's due index, under the moment each was stored with. An entry a later version
        of its document no longer has is left for `ready` to find stale and remove."""
        if self._when is None:
            return
        for event in events:
            message = event.message
            key, raw = message.key, message.value
            if not raw or key.startswith(RESERVED):
                continue
            try:
                due = self.codec.due_of(raw)
            except (msgspec.DecodeError, ValueError):
                continue  # a value this code cannot read files nothing; reading its document says why
            if due is not None:
                self._write_local(due_key(due, key), FILED, message.partition)

    def forget_decoded(self) -> None:
        """After a rebalance the store holds what recovery read: decode it afresh."""
        self._decoded = {}
        self._counts = {}

    def discard(self) -> None:
        """Drop the held writes, and what they changed of the counts."""
        self._pending, self._pending_due, self._changed, self._committed = {}, {}, set(), []
        self._decoded = {}  # a dropped batch may have changed a document it read
        self._counts = {}

    def items(self) -> Iterator[tuple[bytes, D]]:
        """Every document of the table: for tools and tests, never for a timer."""
        pending = {key: entry.doc for key, (entry, _) in self._pending.items()}
        for key, raw in list(self.table.items()):
            if raw and key not in pending and not key.startswith(RESERVED):
                yield key, self._codec(key).decode(raw).doc
        for key, doc in pending.items():
            if not key.startswith(RESERVED):
                yield key, doc

    def values(self) -> Iterator[D]:
        for _, value in self.items():
            yield value


class Progress:
    """Where each input partition's processing stands, kept in the state itself.

    One document per partition of an input topic, in a table partitioned like the topic and
    written in the same changelog step as the batch's state: the next offset to process and what
    the records before it came to (consumed, applied, duplicate, rejected, and rejections by
    reason). After a crash between the state's write and the offset commit, the records below
    `offset` are delivered again, and skipped here: they are neither applied nor counted twice,
    so consumed = applied + duplicate + rejected holds exactly, whatever the kill point.
    """

    def __init__(self, table: StateTable[ProgressDoc]) -> None:
        self.table = table

    @staticmethod
    def _key(partition: int) -> bytes:
        return b"p%d" % partition

    def of(self, partition: int) -> ProgressDoc:
        doc: ProgressDoc | None = self.table.get(self._key(partition))
        return doc or {"offset": 0, "consumed": 0, "applied": 0, "duplicate": 0, "rejected": 0, "reasons": {}}

    def next_offset(self, partition: int) -> int:
        return int(self.of(partition)["offset"])

    def advance(
        self, partition: int, next_offset: int, outcomes: Mapping[Outcome, int], reasons: Mapping[str, int]
    ) -> ProgressDoc:
        doc = self.of(partition)
        doc["offset"] = next_offset
        doc["consumed"] += sum(outcomes.values())
        for outcome, n in outcomes.items():
            doc[outcome] = doc.get(outcome, 0) + n
        for reason, n in reasons.items():
            doc["reasons"][reason] = doc["reasons"].get(reason, 0) + n
        self.table.put(self._key(partition), doc, partition=partition)
        return doc

    def documents(self) -> Iterator[tuple[int, ProgressDoc]]:
        for key, doc in self.table.items():
            if key.startswith(b"p"):
                yield int(key[1:]), doc
