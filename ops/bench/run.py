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
5. With `--restarts` (credit), instead of 3 and 4: memory, changelog size and restart times of the
   caught-up worker (ops/bench/restarts.py).

The workers are ops/bench/workers.py's, the latency phase ops/bench/latency.py's.

Progress goes to stdout as it runs; the last line is one JSON object (ops/bench/report.py KEYS).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from ops.bench import ceiling
from ops.bench.inputs import Inputs
from ops.bench.latency import latency, plan_rate
from ops.bench.plans import DEFAULT_RATE, PROCESSORS, build
from ops.bench.report import Result, latency_line, machine, say
from ops.bench.workers import FIRST_TIMEOUT, BenchError, Worker, consumed, start_worker, wait_for_group
from ops.broker import local
from ops.bus import provision_bus
from topics import kafka_auth
from topics.context import build_context
from topics.publisher import Prepared, producer_config
from topics.settings import Settings

BENCH_PORTS = {"kafka_port": 25092, "controller_port": 25093, "registry_port": 25081, "metrics_port": 25400}
QUICK = {"records": 20_000, "subjects": 20_000, "seconds": 10.0}
FULL = {"records": 60_000, "subjects": 20_000, "seconds": 20.0}
POLL = 0.05  # seconds between looks at a worker's counters
STALL_TIMEOUT = 60.0  # without progress, a worker is taken as stuck


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


# --- the run ---------------------------------------------------------------------------------


def options(args: argparse.Namespace) -> tuple[int, int, float, float]:
    sizes = QUICK if getattr(args, "quick", False) else FULL
    records = int(getattr(args, "records", None) or sizes["records"])
    subjects = int(getattr(args, "subjects", None) or sizes["subjects"])
    rate = float(getattr(args, "rate", None) or DEFAULT_RATE.get(args.processor, 0.0))
    seconds = float(getattr(args, "seconds", None) or sizes["seconds"])
    if getattr(args, "restarts", False):  # no latency phase
        seconds = 0.0
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
            from ops.bench import restarts

            figures = restarts.on_caught_up(settings, work, plan, inputs, producer, group[0], workers, stage_topics)
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
        + (f"latency phase {rate:g}/s for {seconds:g}s" if rate and seconds else "no latency phase")
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
