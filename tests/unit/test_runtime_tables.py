"""The runtime's tables without a broker: held writes, the decoded cache, progress, tallies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from services.common.runtime import app as runtime_app
from services.common.runtime.tables import DueIndex, JsonTable, Progress, Tally
from services.common.settings import Settings


def table(tmp_path: Path, name: str = "t") -> tuple[Any, JsonTable]:
    settings = Settings(data_dir=tmp_path, kafka_password="unused")
    app = runtime_app.make_app(SimpleNamespace(settings=settings), "probe")  # type: ignore[arg-type]
    raw = app.Table(name, default=None, partitions=4, key_type=bytes, value_type=bytes, use_partitioner=True)
    return app, JsonTable(raw)


def commit(t: JsonTable) -> list[tuple[str, int, bytes, bytes]]:
    """The held writes' changelog records, and then into the store, as once the changelog took them."""
    records = t.commit()
    t.store({})
    return records


def test_writes_are_held_until_commit_and_dropped_with_the_batch(tmp_path: Path) -> None:
    _, t = table(tmp_path)
    t[b"a"] = {"grade": "A"}
    assert t.get(b"a") == {"grade": "A"}  # a batch reads its own writes
    records = commit(t)
    assert [(key, raw) for _, _, key, raw in records] == [(b"a", b'{"grade":"A"}')]
    t[b"a"] = {"grade": "D"}
    t.discard()  # the batch failed: the store and every read are as the last commit left them
    assert t.get(b"a") == {"grade": "A"}
    assert dict(t.items()) == {b"a": {"grade": "A"}}


def test_progress_counts_what_each_partition_came_to(tmp_path: Path) -> None:
    _, t = table(tmp_path)
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


def test_a_tally_follows_every_write_and_forgets_a_dropped_batch(tmp_path: Path) -> None:
    app, t = table(tmp_path)
    for i, grade in enumerate("AABD"):
        t[b"s%d" % i] = {"grade": grade}
    commit(t)
    grades = Tally(app, t, lambda state: state.get("grade"))
    assert grades.counts() == {"A": 2, "B": 1, "D": 1}  # built from the table at the first look
    t[b"s0"] = {"grade": "C"}
    t[b"s9"] = {"grade": "A"}
    assert grades.counts() == {"A": 2, "B": 1, "C": 1, "D": 1}
    t.discard()
    assert grades.counts() == {"A": 2, "B": 1, "D": 1}
    asyncio.run(app.on_rebalance_complete.send())
    assert grades.counts() == {"A": 2, "B": 1, "D": 1}


def test_a_due_index_gives_the_keys_whose_moment_has_come(tmp_path: Path) -> None:
    app, t = table(tmp_path)
    t[b"early"] = {"due": 5}
    t[b"late"] = {"due": 50}
    t[b"never"] = {"due": None}
    commit(t)
    due = DueIndex(app, t, lambda value: value["due"])
    assert due.ready(10) == [b"early"]
    t[b"late"] = {"due": 7}  # a write moves it
    assert sorted(due.ready(10)) == [b"early", b"late"]
    due.drop(b"early")
    assert due.ready(10) == [b"late"]
    t.discard()  # the batch that moved it was dropped: built again from the table
    assert due.ready(10) == [b"early"]
