"""`tongcheng bench PROCESSOR [--quick]`: one processor against the raw ceiling on the same backlog.

1. Broker: the local broker and registry on their own ports (25092, 25093, 25081; worker metrics
   from 25400) unless the settings name others, started if not running and stopped at the end;
   a fresh topic prefix, provisioned, and removed again at the end.
2. Throughput: a backlog of realistic input (ops/bench/plans.py, ops/bench/inputs.py) is
   published, then ONE `tongcheng worker NAME` starts; its rate is the records over the time from
   its first to its last consumed record, read from its own `tongcheng_events_consumed_total`
   (every outcome: applied, duplicate, rejected), and checked against its group's committed offsets.
   With `--workers N` (scale-out), N workers of the processor join one group first and split the
   partitions; they are paused (SIGSTOP) while the backlog is published, and their counters summed.
3. Latency: events at --rate for --seconds; each output that names its cause gives one
   publish -> output latency (the readmodel: publish -> row readable).
4. Ceiling: a bare aiokafka consumer reads and Avro-decodes the same backlog (ops/bench/ceiling.py).

Progress goes to stdout as it runs; the last line is one JSON object (ops/bench/report.py KEYS).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from ops.bench import ceiling
from ops.bench.inputs import Inputs, Timed
from ops.bench.plans import DEFAULT_RATE, METRICS_OFFSETS, PROCESSORS, Plan, build
from ops.bench.report import Result, latency_line, machine
from ops.broker import local
from services.cli import provision_bus
from services.common import kafka_auth
from services.common.context import Context, build_context
from services.common.settings import ENV, Settings
from topics.publisher import Prepared, producer_config

BENCH_PORTS = {"kafka_port": 25092, "controller_port": 25093, "registry_port": 25081, "metrics_port": 25400}
QUICK = {"records": 20_000, "subjects": 20_000, "seconds": 10.0}
FULL = {"records": 60_000, "subjects": 20_000, "seconds": 20.0}
POLL = 0.05  # seconds between looks at a worker's counters
FIRST_TIMEOUT = 180.0  # for a worker's first consumed record (its start and table recovery included)
STALL_TIMEOUT = 60.0  # without progress, a worker is taken as stuck
COUNTER = re.compile(r"^tongcheng_events_consumed_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def say(message: str) -> None:
    print(message, flush=True)


class BenchError(Exception):
    pass


# --- settings and the broker -----------------------------------------------------------------


def bench_settings(base: Settings, prefix: str) -> tuple[Settings, Path]:
    """The benchmark's settings and its working directory.

    Ports left at their defaults move to the benchmark's own (BENCH_PORTS), with the broker's data
    under `<data dir>/bench`, so a development stack on the default ports is not touched.
    """
    defaults = Settings()
    changes: dict[str, Any] = {"topic_prefix": prefix}
    moved = False
    for name, port in BENCH_PORTS.items():
        if getattr(base, name) == getattr(defaults, name):
            changes[name] = port
            moved = moved or name != "metrics_port"
    work = base.data_dir / "bench" if moved else base.data_dir
    if moved:
        changes["data_dir"] = work
    settings = base.with_(**changes)
    if settings.database_url == f"sqlite:///{settings.data_dir / 'tongcheng.db'}":  # derived: use a fresh file
        settings = settings.with_(database_url=f"sqlite:///{work / f'readmodel-{prefix}.db'}")
    return settings, work


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV.values()}
    names = ("circle", "topic_prefix", "bootstrap", "registry_url", "data_dir", "metrics_port", "table_store")
    # and how the workers check signatures and find their credentials (each authenticates as its service)
    for name in (*names, "provenance", "security_protocol", "secrets_file", "ssl_cafile"):
        env[ENV[name]] = str(getattr(settings, name))
    env[ENV["roster_keys_file"]] = str(settings.roster_keys_path)
    env[ENV["database_url"]] = settings.database_url
    if settings.circle_file:
        env[ENV["circle_file"]] = str(settings.circle_file)
    return env


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


#: the metrics ports of a processor's k-th worker move by k * SCALE_OUT_PORT_STEP
SCALE_OUT_PORT_STEP = 100


def start_worker(settings: Settings, name: str, work: Path, index: int = 0) -> Worker:
    """The processor's worker number `index` (its log and metrics port its own)."""
    suffix = f"-{index + 1}" if index else ""
    log = work / "logs" / f"{settings.topic_prefix}-{name}{suffix}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    settings = settings.with_(metrics_port=settings.metrics_port + index * SCALE_OUT_PORT_STEP)
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", name],
            env=worker_env(settings),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    say(f"  started `tongcheng worker {name}` (pid {proc.pid}), log {log}")
    return Worker(name, proc, settings.metrics_port + METRICS_OFFSETS[name], log)


def consumed(workers: list[Worker], topics: set[str]) -> tuple[float, Counter[str]] | None:
    """The workers' tongcheng_events_consumed_total over `topics` (all outcomes, summed over the
    workers) and by outcome; None while the metrics of one do not answer."""
    outcomes: Counter[str] = Counter()
    for worker in workers:
        try:
            text = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            m = COUNTER.match(line)
            if m:
                labels = dict(LABEL.findall(m["labels"]))
                if labels.get("topic") in topics:
                    outcomes[labels.get("outcome", "")] += int(float(m["value"]))
    return float(sum(outcomes.values())), outcomes


def wait_for_group(settings: Settings, group: str, members: int, timeout: float = FIRST_TIMEOUT) -> float:
    """Until the group is stable with `members` members that each hold partitions; returns the seconds."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_auth.client_config(settings))
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            try:
                described = admin.describe_groups([group]).get(group) or {}
            except Exception:  # the coordinator is not known yet
                described = {}
            if str(described.get("group_state", "")).lower() == "stable":
                found = described.get("members") or []
                if len(found) == members and all(m.get("member_assignment") for m in found):
                    return time.monotonic() - started
            time.sleep(0.5)
    finally:
        admin.close()
    raise BenchError(f"group {group} did not settle with {members} members within {timeout:.0f}s")


# --- publishing ------------------------------------------------------------------------------


def publish(producer: KafkaProducer, events: list[Prepared]) -> float:
    started = time.perf_counter()
    for p in events:
        producer.send(p.topic, key=p.key, value=p.value, headers=list(p.headers) or None)
    producer.flush()
    return time.perf_counter() - started


def end_offsets(settings: Settings, topics: set[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap, enable_auto_commit=False, **kafka_auth.client_config(settings)
    )
    try:
        parts = [TopicPartition(t, p) for t in sorted(topics) for p in sorted(consumer.partitions_for_topic(t) or [])]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


# --- throughput ------------------------------------------------------------------------------


@dataclass
class Drained:
    records: float  # counted between the first and last look that saw progress
    seconds: float
    outcomes: Counter[str]


def drain(
    workers: list[Worker], topics: set[str], base: float, count: int, before: Counter[str] | None = None
) -> Drained:
    """Wait until the workers have consumed `count` more records of `topics` than `base` (their
    counters stood at `before`, by outcome); the outcomes returned are the workers' totals."""
    target = base + count
    first_t = last_t = 0.0
    first_n = seen = base
    outcomes: Counter[str] = Counter()
    started = progressed = said = time.monotonic()
    while True:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise BenchError(f"worker {worker.name} exited with {worker.proc.returncode}; see {worker.log}")
        look = consumed(workers, topics)
        now = time.perf_counter()
        if look is not None:
            n, outcomes = look
            if n > seen:
                if not first_t:
                    first_t, first_n = now, n
                seen, last_t, progressed = n, now, time.monotonic()
            if seen >= target:
                break
        waited = time.monotonic() - (progressed if first_t else started)
        if waited > (STALL_TIMEOUT if first_t else FIRST_TIMEOUT):
            raise BenchError(
                f"worker {workers[0].name} consumed {int(seen - base)} of {count} records and made no progress "
                f"for {waited:.0f}s; see {', '.join(str(w.log) for w in workers)}"
            )
        if time.monotonic() - said >= 2:
            say(f"  consumed {int(seen - base)}/{count}")
            said = time.monotonic()
        time.sleep(POLL)
    if first_n >= target:  # all in one look: credit it the poll interval
        first_t, first_n = last_t - POLL, base
    stage = outcomes - (before or Counter())
    say(f"  consumed {int(seen - base)}/{count} ({', '.join(f'{k} {v}' for k, v in sorted(stage.items()))})")
    return Drained(seen - first_n, last_t - first_t, outcomes)


def check_committed(settings: Settings, group: str, ends: dict[tuple[str, int], int], timeout: float = 15.0) -> str:
    """Whether the worker's group committed the whole backlog (offsets are committed every second)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_auth.client_config(settings))
    try:
        deadline = time.monotonic() + timeout
        while True:
            got = admin.list_group_offsets([group]).get(group, {})
            committed = {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()}
            behind = sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
            if not behind:
                return f"committed offsets of {group}: the whole backlog ({sum(ends.values())} records)"
            if time.monotonic() > deadline:
                return (
                    f"committed offsets of {group}: {behind} records of the backlog NOT committed after {timeout:.0f}s"
                )
            time.sleep(0.5)
    finally:
        admin.close()


# --- latency ---------------------------------------------------------------------------------


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

        from consumers.readmodel import credit_profiles

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


# --- the run ---------------------------------------------------------------------------------


def options(args: argparse.Namespace) -> tuple[int, int, float, float]:
    sizes = QUICK if getattr(args, "quick", False) else FULL
    records = int(getattr(args, "records", None) or sizes["records"])
    subjects = int(getattr(args, "subjects", None) or sizes["subjects"])
    rate = float(getattr(args, "rate", None) or DEFAULT_RATE.get(args.processor, 0.0))
    seconds = float(getattr(args, "seconds", None) or sizes["seconds"])
    return records, subjects, rate, seconds


def bench(settings: Settings, work: Path, processor: str, args: argparse.Namespace) -> Result:
    records, subjects, rate, seconds = options(args)
    ctx = build_context(settings)
    provision_bus(ctx)
    producer = KafkaProducer(**{**producer_config(settings, "tongcheng-bench"), "linger_ms": 5})
    workers: list[Worker] = []
    try:
        started = time.perf_counter()
        inputs = Inputs(ctx, producer, sign=settings.provenance == "required")
        plan = build(processor, inputs, records, subjects, rate, seconds)
        say(
            f"prepared {plan.records} backlog records in {len(plan.stages)} stage(s) and {len(plan.steady)} "
            f"latency-phase events in {time.perf_counter() - started:.1f}s"
        )

        # throughput: one worker (or --workers of them in one group), the backlog stage by stage
        count = int(getattr(args, "workers", None) or 1)
        group: list[Worker] = []
        if count > 1:
            say(f"throughput: starting {count} {plan.worker} workers in one group")
            group = [start_worker(settings, plan.worker, work, k) for k in range(count)]
            workers += group
            took = wait_for_group(settings, settings.group_id(plan.worker), count)
            say(f"  the group settled with {count} members in {took:.1f}s")
        stage_topics: set[str] = set()
        total = Drained(0, 0.0, Counter())
        base = 0.0
        for i, stage in enumerate(plan.stages, 1):
            topics = {p.topic for p in stage}
            stage_topics |= topics
            kinds = ", ".join(sorted(Counter(p.event_type for p in stage)))
            say(f"throughput, stage {i}/{len(plan.stages)}: publishing {len(stage)} records ({kinds})")
            for w in group:  # held while the stage is published, so that it meets a backlog
                os.kill(w.proc.pid, signal.SIGSTOP)
            try:
                took = publish(producer, stage)
            finally:
                for w in group:
                    os.kill(w.proc.pid, signal.SIGCONT)
            say(f"  published in {took:.1f}s ({len(stage) / took:,.0f}/s)")
            if not group:
                group = [start_worker(settings, plan.worker, work)]
                workers += group
            got = drain(group, stage_topics, base, len(stage), total.outcomes)
            base += len(stage)
            total = Drained(total.records + got.records, total.seconds + got.seconds, got.outcomes)
            if got.seconds > 0:
                say(f"  {got.records / got.seconds:,.0f} records/s over {got.seconds:.2f}s")
        per_s = total.records / total.seconds if total.seconds > 0 else None
        ends = end_offsets(settings, stage_topics)
        say("  " + check_committed(settings, settings.group_id(plan.worker), ends))
        if getattr(args, "restarts", False) and processor == "credit":  # instead of latency and ceiling
            figures = measure_restarts(settings, work, plan, inputs, producer, group[0], workers, stage_topics)
            return Result(processor, plan.records, per_s, None, None, None, len(group), figures)

        # latency
        lat: dict[str, list[float]] = {}
        if plan.steady:
            if plan.beside:
                say(f"latency: starting a {plan.beside} worker beside it and warming it up")
                beside = start_worker(settings, plan.beside, work)
                workers.append(beside)
                publish(producer, plan.warm)
                drain([beside], {p.topic for p in plan.warm}, 0, len(plan.warm))
            lat = latency(ctx, producer, plan)
        else:
            say(f"latency: {plan.latency}")

        for w in workers:
            w.stop()
        say(f"  stopped the worker(s): {', '.join(w.name for w in workers)}")

        # the ceiling on the same backlog
        say(f"ceiling: a bare aiokafka consumer reading and decoding the {sum(ends.values())} backlog records")
        top = ceiling.measure(settings, {tp: (0, end) for tp, end in ends.items()}, ctx.registry.schema_text)
        say(f"  {top.records} records in {top.seconds:.2f}s")

        say("")
        say(f"outcomes:   {', '.join(f'{k} {v}' for k, v in sorted(total.outcomes.items()))}")
        if per_s:
            through = f"one {plan.worker} worker" if len(group) == 1 else f"{len(group)} {plan.worker} workers"
            say(f"throughput: {per_s:,.0f} records/s through {through} ({plan.records} records)")
        if top.per_s:
            say(f"ceiling:    {top.per_s:,.0f} records/s read and decoded by a bare aiokafka consumer")
        for stream, values in lat.items():
            what = plan.latency.split(" (")[0] if stream == "main" else "credit beside it: publish -> credit.profile"
            say(latency_line(what, rate if stream == "main" else plan_rate(plan, stream), values))
        main = lat.get("main") if plan.steady else None
        rate_of = plan.rate if plan.steady else None
        return Result(processor, plan.records, per_s, top.per_s, main or None, rate_of, len(group))
    finally:
        for w in workers:
            w.stop()
        producer.close()


def measure_restarts(
    settings: Settings,
    work: Path,
    plan: Plan,
    inputs: Inputs,
    producer: KafkaProducer,
    worker: Worker,
    workers: list[Worker],
    topics: set[str],
) -> dict[str, Any]:
    """ops/bench/restarts.py on the caught-up worker; each restarted worker joins `workers`."""
    from ops.bench import restarts
    from ops.bench.workload import credit_records

    subjects = len({p.key for stage in plan.stages for p in stage})
    fresh = credit_records(10**9, subjects, inputs.cities, inputs.today, seed=inputs.seed + 1)

    def start() -> Worker:
        workers.append(start_worker(settings, plan.worker, work))
        return workers[-1]

    def publish_new() -> None:
        publish(producer, [inputs.prepare(city, "credit.record", body) for city, body in islice(fresh, 100)])

    def first(ws: list[Worker]) -> float | None:
        look = consumed(ws, topics)
        return look[0] if look else None

    return restarts.measure(settings, worker, start, publish_new, first, subjects, say)


def plan_rate(plan: Plan, stream: str) -> float:
    times = [t.at for t in plan.steady if t.stream == stream]
    return round(len(times) / (times[-1] - times[0])) if len(times) > 1 else 0.0


def remove_topics(settings: Settings, prefix: str) -> None:
    """Delete the run's topics (its catalogue, DLQs and the workers' changelogs)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_auth.client_config(settings))
    try:
        mine = [t for t in admin.list_topics() if prefix in t]
        if mine:
            admin.delete_topics(mine)
            say(f"deleted the run's {len(mine)} topics")
    except Exception as exc:  # cleaning up must not hide the result
        say(f"could not delete the run's topics: {exc}")
    finally:
        admin.close()


def run(settings: Settings, args: argparse.Namespace) -> int:
    processor = args.processor
    if processor == "provenance":
        from ops.bench import provenance

        return provenance.run(settings, args)
    if processor not in PROCESSORS:
        say(f"unknown processor {processor!r}; one of {', '.join(PROCESSORS)}")
        return 2
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    bench_s, work = bench_settings(settings, prefix)
    # signed inputs checked by the worker, or unsigned inputs and no checks
    signatures = getattr(args, "signatures", None) or "on"
    bench_s = bench_s.with_(provenance="required" if signatures == "on" else "off")
    bench_s = bench_s.with_(table_store=f"{getattr(args, 'store', None) or 'memory'}://")
    records, subjects, rate, seconds = options(args)
    say(
        f"bench {processor}{' --quick' if getattr(args, 'quick', False) else ''}: {records} records, "
        f"{subjects} subjects, signatures {signatures}, store {bench_s.table_store}, "
        + (f"latency phase {rate:g}/s for {seconds:g}s" if rate else "no latency phase")
        + f"; topic prefix {prefix}, "
        f"broker {bench_s.bootstrap}, registry {bench_s.registry_url}, metrics from :{bench_s.metrics_port}"
    )
    started = not (local.kafka_ready(bench_s) and local.registry_ready(bench_s))
    result = Result(processor, 0, None, None, None, None)
    code = 0
    try:
        if started:
            local.start(bench_s, say)
        try:
            result = bench(bench_s, work, processor, args)
        finally:
            if not started:
                remove_topics(bench_s, prefix)
    except (BenchError, local.BrokerError) as exc:
        say(f"FAILED: {exc}")
        code = 1
    except Exception:  # still end with the JSON line, after the traceback
        traceback.print_exc(file=sys.stdout)
        say("FAILED")
        code = 1
    finally:
        if started:  # leave the machine as it was: stop what the benchmark started, and its data
            local.stop(bench_s, say)
            if work != settings.data_dir:
                for name in ("kafka", "registry"):
                    shutil.rmtree(work / name, ignore_errors=True)
        db = bench_s.database_url.removeprefix("sqlite:///")
        if bench_s.database_url.startswith("sqlite:///") and Path(db).parent == work:
            Path(db).unlink(missing_ok=True)
    say(machine())
    say(result.json_line())
    return code
