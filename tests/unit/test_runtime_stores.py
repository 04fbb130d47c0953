"""Where the tables' stores live, what they record of their changelog, and how they are sized,
without a broker; with the faust internals each of these relies on."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from faust.types import TP

from schemas.errors import ConfigError
from services.common.runtime import app as runtime_app
from services.common.runtime.tables import StateTable
from topics.settings import Settings

T = TypeVar("T")
BROKEN = "pinned-version assumption broken"


def run(coro: Awaitable[T]) -> T:
    return asyncio.new_event_loop().run_until_complete(coro)


def settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(data_dir=tmp_path, kafka_user="probe", kafka_password="probe-secret", **changes)


def make_app(s: Settings) -> Any:
    return runtime_app.make_app(SimpleNamespace(settings=s), "probe")  # type: ignore[arg-type]


def rocks_table(app: Any, s: Settings, partitions: int = 4) -> Any:
    return app.Table(
        "t",
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
        options=runtime_app.store_options(s),
        extra_topic_configs=runtime_app.CHANGELOG_CONFIG,
    )


def test_a_store_lives_under_its_group_so_a_new_group_or_circle_starts_empty(tmp_path: Path) -> None:
    base = settings(tmp_path)
    dirs = {
        make_app(s).conf.tabledir
        for s in (base, base.with_(group_tag="rebuild"), base.with_(topic_prefix="sxcmc"), base.with_(group_tag="x"))
    }
    assert len(dirs) == 4
    assert make_app(base).conf.tabledir.is_relative_to(tmp_path / "faust" / base.group_id("probe"))


def test_a_write_reaches_the_store_once_its_changelog_took_it_with_the_offset(tmp_path: Path) -> None:
    """The store holds a write only after its changelog record is acknowledged, and then records the
    last acknowledged offset of each changelog partition of its own table: where the next start reads."""
    pytest.importorskip("rocksdict")
    s = settings(tmp_path, table_store="rocksdb://")
    app = make_app(s)
    raw = rocks_table(app, s)
    table = StateTable(raw)
    changelog = raw.changelog_topic.get_topic_name()
    try:
        table.put(b"a", {"n": 1}, partition=2)
        assert [(p, k) for _, p, k, _ in table.commit()] == [(2, b"a")]
        assert table.get(b"a") == {"n": 1}  # read while its changelog record is on its way
        table.discard()  # not acknowledged (the worker stops): nothing reached the store
        assert raw.data.get(b"a") is None and raw.data.persisted_offset(TP(changelog, 2)) is None

        table.put(b"a", {"n": 2}, partition=2)
        table.commit()
        table.store({(changelog, 2): 41, ("another-changelog", 2): 99})
        assert table.codec.decode(raw.data.get(b"a")).doc == {"n": 2}
        assert raw.data.persisted_offset(TP(changelog, 2)) == 41
        assert raw.data.persisted_offset(TP(changelog, 1)) is None
    finally:
        for db in raw.data._dbs.values():
            db.close()


def test_the_memory_store_keeps_no_offset(tmp_path: Path) -> None:
    s = settings(tmp_path)
    raw = rocks_table(make_app(s), s)
    table = StateTable(raw)
    table.put(b"a", {"n": 1}, partition=0)
    table.commit()
    table.store({(raw.changelog_topic.get_topic_name(), 0): 7})
    assert table.get(b"a") == {"n": 1}
    assert raw.data.persisted_offset(TP(raw.changelog_topic.get_topic_name(), 0)) is None


def test_rocksdb_options_are_the_budget_not_faust_s_defaults(tmp_path: Path) -> None:
    pytest.importorskip("rocksdict")
    s = settings(tmp_path, table_store="rocksdb://", rocksdb_store_mb=32)
    raw = rocks_table(make_app(s), s)
    options = raw.data.rocksdb_options
    assert options.block_cache_size == 16 * 1024 * 1024, f"{BROKEN}: Table(options=) no longer reaches RocksDBOptions"
    assert (options.write_buffer_size, options.max_write_buffer_number) == (8 * 1024 * 1024, 2)
    assert options.max_open_files == runtime_app.ROCKSDB_MAX_OPEN_FILES
    assert runtime_app.store_options(settings(tmp_path)) == {}  # the memory store takes none
    with pytest.raises(ConfigError):
        settings(tmp_path, rocksdb_store_mb=1)


def test_changelogs_are_declared_compacted_with_small_segments(tmp_path: Path) -> None:
    s = settings(tmp_path)
    raw = rocks_table(make_app(s), s)
    config = raw.changelog_topic.config
    assert config["cleanup.policy"] == "compact" and config["min.cleanable.dirty.ratio"] == "0.1", (
        f"{BROKEN}: Table(extra_topic_configs=) no longer becomes the changelog topic's config"
    )
    assert int(config["segment.bytes"]) == 16 * 1024 * 1024 and int(config["segment.ms"]) == 3_600_000


def test_standby_replicas_are_a_setting(tmp_path: Path) -> None:
    assert make_app(settings(tmp_path)).conf.table_standby_replicas == 1
    assert make_app(settings(tmp_path, standby_replicas=2)).conf.table_standby_replicas == 2
    with pytest.raises(ConfigError):
        settings(tmp_path, standby_replicas=-1)


def test_faust_recovery_reads_from_the_store_s_persisted_offset() -> None:
    """The offsets `StateTable.store` records are what faust's recovery starts from; faust sets them
    itself only when it sends a changelog record (`Table._on_changelog_sent`, never called: the
    project sends its changelogs as record batches) and when it applies recovered records."""
    from faust.stores import rocksdb
    from faust.tables.base import Collection
    from faust.tables.recovery import Recovery

    assert "table.persisted_offset(tp)" in inspect.getsource(Recovery._add), f"{BROKEN}: Recovery._add"
    assert "set_persisted_offset" in inspect.getsource(Collection._on_changelog_sent)
    assert "set_persisted_offset" in inspect.getsource(rocksdb.Store.apply_changelog_batch)
    assert "offset_key" in inspect.getsource(rocksdb.Store.set_persisted_offset)
