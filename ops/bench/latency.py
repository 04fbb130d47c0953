"""The latency phase of a benchmark: events sent at a rate, and when each output naming one arrives."""

from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ops.bench.inputs import Timed
from ops.bench.plans import Plan
from ops.bench.report import say
from topics import kafka_auth
from topics.context import Context


class OutputWatch:
    """Records when each output naming a cause (meta.causation_id) arrives on the output topics."""

    def __init__(self, ctx: Context, event_types: set[str]) -> None:
        self.ctx = ctx
        self.arrived: dict[str, float] = {}
        self.outputs = 0
        self.consumer = KafkaConsumer(
            bootstrap_servers=ctx.settings.bootstrap, enable_auto_commit=False, **kafka_auth.client_config(ctx.settings)
        )
        topics = [ctx.topics.topic(t) for t in sorted(event_types)]
        parts = [TopicPartition(t, p) for t in topics for p in self.consumer.partitions_for_topic(t) or []]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:
            self.consumer.position(tp)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.listen, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def listen(self) -> None:
        while not self.stopping.is_set():
            for batch in self.consumer.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for rec in batch:
                    event = self.ctx.codec.decode(rec.value)
                    self.outputs += 1
                    cause = event["meta"].get("causation_id")
                    if cause:
                        self.arrived.setdefault(str(cause), now)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.consumer.close()


class RowWatch:
    """Records when each credit profile's row (by event_id) is readable in the read model."""

    def __init__(self, ctx: Context) -> None:
        import sqlalchemy as sa

        from services.readmodel.tables import credit_profiles

        self.sa = sa
        self.table = credit_profiles
        self.engine = sa.create_engine(ctx.settings.database_url)
        self.arrived: dict[str, float] = {}
        self.outputs = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.listen, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def listen(self) -> None:
        t = self.table
        since = None
        with self.engine.connect() as conn:
            since = conn.execute(self.sa.select(self.sa.func.max(t.c.updated_at))).scalar()
        while not self.stopping.is_set():
            query = self.sa.select(t.c.event_id, t.c.updated_at)
            if since is not None:
                query = query.where(t.c.updated_at >= since)
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(query).all()
            except self.sa.exc.OperationalError:  # the writer holds the database: look again
                rows = []
            now = time.perf_counter()
            for event_id, updated in rows:
                if event_id not in self.arrived:
                    self.arrived[event_id] = now
                    self.outputs += 1
                if since is None or updated > since:
                    since = updated
            self.stopping.wait(0.02)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.engine.dispose()


def pace(producer: KafkaProducer, items: list[Timed], sent: dict[str, tuple[str, float]]) -> float:
    """Send each item at its time (ticks of 10 ms), noting the first send time of each event_id."""
    tick = 0.01
    start = time.perf_counter()
    i = 0
    said = start
    while i < len(items):
        due = start + items[i].at
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(min(pause, tick))
            continue
        now = time.perf_counter()
        horizon = now - start + tick
        while i < len(items) and items[i].at <= horizon:
            e = items[i].event
            sent.setdefault(e.event_id, (items[i].stream, time.perf_counter()))
            producer.send(e.topic, key=e.key, value=e.value, headers=list(e.headers) or None)
            i += 1
        producer.flush()
        if now - said >= 2:
            say(f"  sent {i}/{len(items)}")
            said = now
    return time.perf_counter() - start


def latency(ctx: Context, producer: KafkaProducer, plan: Plan) -> dict[str, list[float]]:
    watch: OutputWatch | RowWatch
    if plan.processor == "readmodel":
        watch = RowWatch(ctx)
    else:
        watch = OutputWatch(ctx, {t for types in plan.outputs.values() for t in types})
    watch.start()
    sent: dict[str, tuple[str, float]] = {}
    say(f"latency: publishing {len(plan.steady)} events over {plan.steady[-1].at:.0f}s ({plan.latency})")
    elapsed = pace(producer, plan.steady, sent)
    say(f"  published in {elapsed:.1f}s; waiting for the last outputs")
    quiet_since, before = time.monotonic(), -1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
        if len(watch.arrived) != before:
            before, quiet_since = len(watch.arrived), time.monotonic()
        time.sleep(0.1)
    watch.stop()
    out: dict[str, list[float]] = {stream: [] for stream in plan.outputs}
    for event_id, (stream, at) in sent.items():
        if event_id in watch.arrived:
            out.setdefault(stream, []).append(watch.arrived[event_id] - at)
    say(f"  {watch.outputs} outputs seen, {sum(len(v) for v in out.values())} matched to an event sent")
    return out


def plan_rate(plan: Plan, stream: str) -> float:
    times = [t.at for t in plan.steady if t.stream == stream]
    return round(len(times) / (times[-1] - times[0])) if len(times) > 1 else 0.0
