"""The runtime's tables without a broker: held writes, progress, counts and the due index kept with the state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from faust.types import TP

from services.common.runtime import app as runtime_app
from services.common.runtime.delivery import partition_of
from services.common.runtime.encoding import Typed
from services.common.runtime.tables import Progress, StateTable
from topics.settings import Settings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def table(tmp_path: Path, store: str = "memory://", held: list[int] | None = None) -> StateTable:
    settings = Settings(data_dir=tmp_path, table_store=store, kafka_password="unused")
    app = runtime_app.make_app(SimpleNamespace(settings=settings), "probe")  # type: ignore[arg-type]
    raw = app.Table("t", default=None, partitions=4, key_type=bytes, value_type=bytes, use_partitioner=True)
    return StateTable(raw, clock=lambda: T0, held=(lambda: held) if held is not None else None)


@pytest.fixture(params=["memory://", "rocksdb://"])
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "rocksdb://":
        pytest.importorskip("rocksdict")
    yield request.param


def graded(t: StateTable) -> StateTable:
    t.count_by(lambda doc, now: [doc["grade"]] if doc.get("grade") else [])
    t.due_by(lambda doc, now: date.fromisoformat(doc["due"]) if doc.get("due") else None)
    return t


def again(t: StateTable, **kwargs: Any) -> StateTable:
    """A new view of the same store, with nothing cached: what a restarted worker reads."""
    fresh = StateTable(t.table, clock=t.clock, **kwargs)
    fresh._labels, fresh._when = t._labels, t._when
    return fresh


def commit(t: StateTable) -> list[tuple[str, int, bytes, bytes | None]]:
    """The held writes' changelog records, and then into the store, as once the changelog took them."""
    records = t.commit()
    t.store({})
    return records


def test_writes_are_held_until_commit_and_dropped_with_the_batch(tmp_path: Path) -> None:
    t = table(tmp_path)
    t[b"a"] = {"grade": "A"}
    assert t.get(b"a") == {"grade": "A"}  # a batch reads its own writes
    records = commit(t)
    assert [key for _, _, key, _ in records] == [b"a"]
    t[b"a"] = {"grade": "D"}
    t.discard()  # the batch failed: the store and every read are as the last commit left them
    assert t.get(b"a") == {"grade": "A"}
    assert dict(t.items()) == {b"a": {"grade": "A"}}


def test_progress_counts_what_each_partition_came_to(tmp_path: Path) -> None:
    t = table(tmp_path)
    progress = Progress(t)
    assert progress.next_offset(3) == 0
    progress.advance(3, 10, {"applied": 7, "duplicate": 1, "rejected": 2}, {"undecodable": 2})
    progress.advance(3, 15, {"applied": 4, "rejected": 1}, {"repair_too_early": 1})
    records = commit(t)
    assert [partition for _, partition, _, _ in records] == [3]  # filed under the input's partition
    doc = progress.of(3)
    assert doc["offset"] == 15 and doc["consumed"] == 15
    assert (doc["applied"], doc["duplicate"], doc["rejected"]) == (11, 1, 3)
    assert doc["reasons"] == {"undecodable": 2, "repair_too_early": 1}


def test_counts_follow_adds_changes_and_removals_and_are_committed_with_them(tmp_path: Path, store: str) -> None:
    t = graded(table(tmp_path, store))
    for i, grade in enumerate("AABD"):
        t[b"s%d" % i] = {"grade": grade}
    assert t.counts() == {"A": 2, "B": 1, "D": 1}  # the batch's own writes count at once
    records = commit(t)
    counted = {key: partition for _, partition, key, _ in records if key.startswith(b"\0n")}
    # one counts document per partition written, on the changelog partition of the keys it counts
    assert set(counted.values()) == {partition_of(b"s%d" % i, 4) for i in range(4)}
    t[b"s0"] = {"grade": "C"}  # a change moves one count
    t[b"s1"] = {"grade": None}  # a removal from every class
    t[b"s9"] = {"grade": "A"}
    assert t.counts() == {"A": 1, "B": 1, "C": 1, "D": 1}
    t.discard()  # a dropped batch takes its changes back
    assert t.counts() == {"A": 2, "B": 1, "D": 1}
    t[b"s3"] = {"grade": "B"}
    commit(t)
    # a restart reads the counts documents, not the documents
    assert again(t).counts() == {"A": 2, "B": 2}
    if store == "memory://":  # (faust's RocksDB store lists only the partitions an assignment gave)
        assert dict(again(t).items()).keys() == {b"s0", b"s1", b"s2", b"s3"}  # the counts are no documents


def test_counts_cover_only_the_partitions_held(tmp_path: Path) -> None:
    t = graded(table(tmp_path))
    keys = {partition_of(b"k%d" % i, 4): b"k%d" % i for i in range(40)}  # one key per partition
    for key in keys.values():
        t[key] = {"grade": "A"}
    commit(t)
    assert again(t, held=lambda: [0, 1]).counts() == {"A": 2}
    assert again(t, held=lambda: []).counts() == {}


def test_the_due_index_is_a_range_read_kept_by_writes(tmp_path: Path, store: str) -> None:
    t = graded(table(tmp_path, store))
    t[b"early"] = {"due": "2026-03-05"}
    t[b"late"] = {"due": "2026-04-01"}
    t[b"never"] = {"due": None}
    assert t.ready(date(2026, 3, 10)) == [b"early"]  # held writes are read as they will be
    commit(t)
    assert t.ready(date(2026, 3, 4)) == []
    assert t.ready(date(2026, 3, 5)) == [b"early"]  # its moment included
    t[b"late"] = {"due": "2026-03-07"}  # a write moves it
    t[b"early"] = {"due": None}  # and this one leaves the index
    assert t.ready(date(2026, 3, 10)) == [b"late"]
    t.discard()
    assert t.ready(date(2026, 3, 10)) == [b"early"]
    t[b"early"] = {"due": "2026-05-01"}
    commit(t)
    assert again(t).ready(date(2026, 4, 1)) == [b"late"]  # read from the store after a restart
    assert sorted(again(t).ready(date(2026, 6, 1))) == [b"early", b"late"]


def test_the_due_index_sweeps_only_the_partitions_held(tmp_path: Path, store: str) -> None:
    t = graded(table(tmp_path, store))
    keys = {partition_of(b"k%d" % i, 4): b"k%d" % i for i in range(40)}
    for key in keys.values():
        t[key] = {"due": "2026-03-01"}
    commit(t)
    assert sorted(again(t, held=lambda: [2]).ready(date(2026, 3, 1))) == [keys[2]]


def test_a_recovery_derives_the_due_index_from_the_documents_of_the_changelog(tmp_path: Path, store: str) -> None:
    """The changelog holds the documents and the counts, not the due index: a worker recovering the
    records (a rebuild, a standby copy) files each document under the moment it was stored with,
    on either store. An entry that an older version left behind is not ready, and goes when met."""
    t = graded(table(tmp_path, store))
    t[b"a"] = {"due": "2026-03-02", "grade": "A"}
    t[b"b"] = {"due": "2026-03-03"}
    t[b"c"] = {"due": "2026-03-04"}
    records = commit(t)
    t[b"a"] = {"due": "2026-03-09", "grade": "A"}
    t[b"c"] = {"due": None}
    records += commit(t)
    assert not [key for _, _, key, _ in records if key.startswith(b"\x00d")], "due entries in the changelog"
    fresh = graded(table(tmp_path / "other", store))
    events = [
        SimpleNamespace(key=k, value=v, message=SimpleNamespace(key=k, value=v, partition=p, tp=TP(topic, p), offset=i))
        for i, (topic, p, k, v) in enumerate(records)
    ]
    fresh.table.apply_changelog_batch(events)
    assert fresh.ready(date(2026, 3, 5)) == [b"b"]  # a's first moment and c's are stale
    assert sorted(fresh.ready(date(2026, 3, 9))) == [b"a", b"b"]
    assert fresh.counts() == {"A": 1}
    stale = [
        k for k, _ in fresh.table.data.items() if k.startswith(b"\x00d2026-03-02") or k.startswith(b"\x00d2026-03-04")
    ]
    assert stale == [], "a stale entry met by the sweep stays in the store"


def test_a_touch_counts_and_files_again_what_the_clock_changed(tmp_path: Path) -> None:
    now = [T0]
    t = table(tmp_path)
    t.clock = lambda: now[0]
    deadline = T0 + timedelta(hours=2)
    t.count_by(lambda doc, at: ["late"] if at > deadline else ["waiting"])
    t.due_by(lambda doc, at: None if at > deadline else deadline)
    t[b"x"] = {}
    commit(t)
    assert t.counts() == {"waiting": 1} and t.ready(deadline) == [b"x"]
    now[0] = deadline + timedelta(seconds=1)
    t.touch(b"x")
    assert commit(t), "a touch that changes the counts is a write"
    assert t.counts() == {"late": 1} and t.ready(now[0]) == []
    t.touch(b"x")
    assert commit(t) == [], "a touch that changes nothing writes nothing"


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: str
    since: date
    cities: list[str] = msgspec.field(default_factory=list)


def test_a_table_of_structs_reads_back_its_struct_and_the_plain_documents_before_it(tmp_path: Path) -> None:
    t = table(tmp_path)
    typed = StateTable(t.table, Typed(Listing), clock=t.clock)
    typed[b"s1"] = Listing(subject_id="s1", since=date(2026, 3, 1), cities=["320100"])
    commit(typed)
    # documents written before the table was typed: plain msgpack maps, and the older JSON
    plain = StateTable(t.table, clock=t.clock)
    plain[b"s2"] = {"subject_id": "s2", "since": "2026-02-01"}
    commit(plain)
    plain._write_local(b"s3", b'{"subject_id": "s3", "since": "2026-01-01", "cities": ["320200"]}', 0)
    fresh = StateTable(t.table, Typed(Listing), clock=t.clock)
    assert fresh.get(b"s1") == Listing(subject_id="s1", since=date(2026, 3, 1), cities=["320100"])
    assert fresh.get(b"s2") == Listing(subject_id="s2", since=date(2026, 2, 1))
    assert fresh.get(b"s3") == Listing(subject_id="s3", since=date(2026, 1, 1), cities=["320200"])
    assert dict(fresh.items()).keys() == {b"s1", b"s2", b"s3"}
