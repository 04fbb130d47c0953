"""The faust app of a processor, and the worker process that runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypedDict

import faust
from faust.transport.drivers import TRANSPORTS
from prometheus_client import start_http_server

from schemas.errors import ConfigError
from services.common.runtime.tables import IndexedTable
from topics import kafka_auth
from topics.context import Context, build_context
from topics.metrics import Metrics
from topics.settings import Settings

log = logging.getLogger("tongcheng")

#: the driver of `tongcheng://` broker URLs: faust's aiokafka transport with the batch consumer.
#: faust looks drivers up by the URL's scheme in this registry (which also takes setuptools entry
#: points of the `faust.transports` group); naming ours here keeps it explicit and install-free.
TRANSPORTS.aliases.setdefault("tongcheng", "services.common.runtime.transport:Transport")

#: a SIGKILLed member's partitions move once the broker has missed its heartbeats this long
SESSION_TIMEOUT = 8.0
HEARTBEAT_INTERVAL = 1.0


#: the tables' changelog topics (faust declares them compacted): segments roll at 16 MiB or after an
#: hour and are cleaned once a tenth of the log is dirty, so a full rebuild reads about one record
#: per key, not every version of it (the active segment is never compacted)
CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(3600 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}

#: the files one RocksDB partition store keeps open (faust's default: 90% of the process limit, each)
ROCKSDB_MAX_OPEN_FILES = 64


class StoreOptions(TypedDict, total=False):
    """faust's RocksDB options of one partition store (none for the memory store)."""

    block_cache_size: int
    write_buffer_size: int
    max_write_buffer_number: int
    max_open_files: int


def store_options(s: Settings) -> StoreOptions:
    """The RocksDB options of each partition store of a table (faust opens one per partition, and
    one per standby partition): `TONGCHENG_ROCKSDB_STORE_MB` each, half for its block cache and
    half for its write buffers (two memtables). faust's own defaults allow 2 GiB of cache and 192
    MiB of memtables per store."""
    if s.table_store != "rocksdb://":
        return {}
    budget = s.rocksdb_store_mb * 1024 * 1024
    return {
        "block_cache_size": budget // 2,
        "write_buffer_size": budget // 4,
        "max_write_buffer_number": 2,
        "max_open_files": ROCKSDB_MAX_OPEN_FILES,
    }


def make_app(ctx: Context, service: str, **overrides: Any) -> faust.App:
    s = ctx.settings
    if s.table_store == "rocksdb://":
        try:
            import rocksdict  # noqa: F401
        except ImportError as exc:
            raise ConfigError("the rocksdb:// table store needs rocksdict: pip install 'tongcheng[rocksdb]'") from exc
    # the tables' files live under the group id, which names the topic prefix and the group tag:
    # a new group (a rebuild) or another circle on the same data directory starts from empty stores
    datadir = s.data_dir / "faust" / s.group_id(service)
    datadir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "broker": f"tongcheng://{s.bootstrap}",
        "broker_credentials": kafka_auth.faust_credentials(s),
        "store": s.table_store,
        "web_enabled": False,
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        "producer_linger": 0.002,
        # one record batch per partition holds a whole processing batch of output: when a batch
        # fills, aiokafka waits for it to drain
        "producer_max_batch_size": 512 * 1024,
        "consumer_auto_offset_reset": "earliest",
        "topic_replication_factor": s.replication_factor,
        "topic_allow_declare": True,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "datadir": str(datadir),
        "broker_commit_interval": 1.0,
        "broker_session_timeout": SESSION_TIMEOUT,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL,
        "broker_max_poll_records": 2000,
        "stream_buffer_maxsize": 8192,
        # each table partition also kept warm on this many other workers, for a failover without a rebuild
        "table_standby_replicas": s.standby_replicas,
        # tables that derive their due index from the changelog records they apply
        "Table": IndexedTable,
        **overrides,
    }
    return faust.App(s.group_id(service), **settings)


class Service(Protocol):
    """What `run_worker` runs: a service with its faust app (a `StreamService`)."""

    @property
    def app(self) -> faust.App: ...


def run_worker(settings: Settings, build: Callable[[Context, Metrics], Service], metrics_offset: int) -> int:
    """Run one faust processor: `build(ctx, metrics)` returns the service (with `.app`); metrics on
    TONGCHENG_METRICS_PORT + `metrics_offset`. A worker started before the broker or the registry
    waits for them, saying so every 30 s."""
    from services.common import logs
    from services.common.shutdown import StopFlag
    from services.common.waiting import wait_for_bus

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install()
    quiet_clients()
    if not wait_for_bus(settings.bootstrap, settings.registry_url, log, StopFlag(), tls=kafka_auth.tls(settings)):
        return 0
    metrics = Metrics()
    service = build(build_context(settings), metrics)
    serve_metrics(metrics, settings.metrics_port + metrics_offset, settings.metrics_host)
    worker = _Worker(service.app, loglevel="WARNING", quiet=True)
    quiet_clients()
    worker.execute_from_commandline()
    return 0


class _Worker(faust.Worker):
    """faust's worker, with the error-log rate limit on the handlers it installs at start."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        from services.common import logs

        super().on_setup_root_logger(logger, level)
        logs.install()


def quiet_clients() -> None:
    """Client libraries log at DEBUG on every send; below WARNING that costs ~8% of the hot path."""
    for name in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> None:
    start_http_server(port, addr=host, registry=metrics.registry)
