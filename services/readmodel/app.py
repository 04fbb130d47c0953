"""`tongcheng worker readmodel`: keeps the SQL read model current from the derived topics.

It waits for the broker and the registry, migrates the database to the newest Alembic revision,
then runs the batched SQL sink of services/readmodel/sql.py over every projection in services/readmodel/tables.py
until SIGTERM or Ctrl-C. A transient fault (registry, broker, database connection) is waited out by
the sink, never a reason to exit; warnings and errors are rate-limited (services/common/logs.py).
"""

from __future__ import annotations

import logging
import time

from services.common import logs
from services.common.runtime import quiet_clients, serve_metrics
from services.common.shutdown import StopFlag
from services.common.waiting import wait_for_bus
from services.readmodel.db import make_engine, migrate
from services.readmodel.sql import SqlSink
from services.readmodel.tables import PROJECTIONS
from services.registry import processor
from topics import kafka_auth
from topics.context import build_context
from topics.metrics import Metrics
from topics.settings import Settings

SERVICE = "readmodel"
PROGRESS_SECONDS = 30.0
log = logging.getLogger("tongcheng.readmodel")


def run(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install()  # one line per distinct warning or error per 30 s: an outage is not a log flood
    quiet_clients()
    stop = StopFlag()
    if not wait_for_bus(settings.bootstrap, settings.registry_url, log, stop, tls=kafka_auth.tls(settings)):
        return 0
    ctx = build_context(settings)
    engine = make_engine(settings.database_url)
    revision = migrate(engine)
    log.info("read model at migration %s on %s", revision, engine.url.render_as_string(hide_password=True))
    metrics = Metrics()
    serve_metrics(metrics, processor(SERVICE).metrics_port(settings), settings.metrics_host)
    group = settings.group_id(SERVICE)
    sink = SqlSink(ctx, engine, PROJECTIONS.values(), group_id=group, service=SERVICE, metrics=metrics)
    total = since = 0
    said = time.monotonic()

    def progress(n: int) -> None:
        """A line per PROGRESS_SECONDS at most, not one per batch."""
        nonlocal total, since, said
        total, since = total + n, since + n
        if time.monotonic() - said >= PROGRESS_SECONDS:
            log.info("%d records written to the read model in %.0fs (%d so far)", since, time.monotonic() - said, total)
            since, said = 0, time.monotonic()

    try:
        sink.run(stop, progress)
    finally:
        sink.close()
        engine.dispose()
    log.info("stopped after %d records (%d transient faults waited out)", total, sink.faults)
    return 0
