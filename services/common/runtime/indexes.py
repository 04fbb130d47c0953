"""What a table keeps beside its documents, in the same store: counts and the due index.

Both live under keys that begin with a NUL byte, which no document key does:

- `\\0n<partition>`: the counts document of one partition, {label: documents counted under it};
- `\\0d<moment>\\0<key>`: one entry of the due index, ordered by moment (an ISO date or a UTC
  ISO timestamp, both of fixed width, so that byte order is time order).

The counts are written in the same commit as the documents they describe, changelog included, and
recovered with them, so a restart or a rebalance finds them as the last acknowledged batch left
them, with no scan. The due index is the store's own: a document's stored value names the moment
it is filed under, so the index is written beside each committed document and derived from each
changelog record a recovery or a standby copy applies, and never takes changelog records (a full
rebuild reads about one record per document, not two). A recovery files every version it reads;
`StateTable.ready` drops an entry its document no longer has when it meets it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

RESERVED = b"\x00"
COUNTS = b"\x00n"
DUE = b"\x00d"
#: the value of a due entry: everything is in its key, but a store takes an empty value for none
FILED = b"\x01"


def moment_key(moment: date | datetime) -> str:
    """A moment as a string whose order is time order: a date as YYYY-MM-DD, a datetime in UTC."""
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return moment.isoformat()


def counts_key(partition: int) -> bytes:
    return COUNTS + str(partition).encode()


def due_key(moment: str, key: bytes) -> bytes:
    return DUE + moment.encode() + RESERVED + key


def key_of(due: bytes) -> bytes:
    """The document key of a due entry."""
    return due[due.index(RESERVED, len(DUE)) + 1 :]


def upto_key(moment: str) -> bytes:
    """The first due key after every entry filed at `moment` or earlier."""
    return DUE + moment.encode() + b"\x01"


def rocksdb_ready(dbs: Iterable[tuple[int, Any]], moment: str) -> Iterator[tuple[int, bytes]]:
    """The due entries at `moment` or earlier, with their partition, in some partitions' RocksDB
    databases ((partition, database) pairs), by range read."""
    end = upto_key(moment)
    for partition, db in dbs:
        it = db.iter()
        it.seek(DUE)
        while it.valid():
            key = it.key()
            if key >= end:
                break
            yield partition, key
            it.next()


class FiledDict(dict[bytes, Any]):
    """The memory store's dict, which also keeps its due entries in moment order.

    faust's memory store writes this dict by item, by `update` (a recovered changelog batch), and
    removes by `pop` (tombstones, and the keys of partitions no longer held); each of these files
    or unfiles a due entry here, so the order is kept from the changelog as the store is.
    """

    def __init__(self) -> None:
        super().__init__()
        self._moments: list[bytes] = []  # sorted
        self._filed: dict[bytes, set[bytes]] = {}  # moment -> due entries

    def _file(self, key: bytes) -> None:
        moment = key[len(DUE) : key.index(RESERVED, len(DUE))]
        bucket = self._filed.get(moment)
        if bucket is None:
            bucket = self._filed[moment] = set()
            bisect.insort(self._moments, moment)
        bucket.add(key)

    def _unfile(self, key: bytes) -> None:
        moment = key[len(DUE) : key.index(RESERVED, len(DUE))]
        bucket = self._filed.get(moment)
        if bucket is not None:
            bucket.discard(key)
            if not bucket:
                del self._filed[moment]
                del self._moments[bisect.bisect_left(self._moments, moment)]

    def __setitem__(self, key: bytes, value: Any) -> None:
        if key.startswith(DUE) and key not in self:
            self._file(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        super().__delitem__(key)
        if key.startswith(DUE):
            self._unfile(key)

    def pop(self, key: bytes, *default: Any) -> Any:
        if key in self and key.startswith(DUE):
            self._unfile(key)
        return super().pop(key, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        super().clear()
        self._moments, self._filed = [], {}

    def ready(self, moment: str) -> Iterator[bytes]:
        """The due entries at `moment` or earlier."""
        upto = bisect.bisect_right(self._moments, moment.encode())
        for m in self._moments[:upto]:
            yield from list(self._filed[m])
