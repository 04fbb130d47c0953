"""Credit benchmark: sustained records/s through one credit worker, and publish-to-profile latency.

    .venv/bin/python -m ops.bench.credit [--records 100000] [--subjects 20000] [--rate 2000] [--seconds 20]

It uses the broker and registry of the settings (TONGCHENG_* variables), starting the local ones
if they are not running (and stopping those again at the end), and works on its own topic prefix
so it disturbs nothing else.

1. Throughput: N synthetic records (valid USCCs, the realistic mix of ops/bench/workload.py from
   all member cities) are published as a backlog; then one `tongcheng worker credit` starts, and
   the rate is the backlog over the time from its first to its last consumed record, read from
   its own `tongcheng_events_consumed_total`.
2. Latency: records are published at a steady --rate for --seconds; each profile names the record
   that caused it (meta.causation_id), so publish-to-profile latency is measured per profile.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ops.bench.workload import credit_records
from ops.broker import local
from services.cli import provision_bus
from services.common.context import Context, build_context
from services.common.settings import ENV, Settings
from topics.publisher import Prepared, Publisher, producer_config


def say(message: str) -> None:
    print(message, flush=True)


def prepare(ctx: Context, producer: KafkaProducer, count: int, subjects: int, seed: int) -> list[Prepared]:
    publishers = {city: Publisher(ctx, city, "bench", producer=producer) for city in ctx.circle.codes}
    out = []
    started = time.perf_counter()
    for i, (city, body) in enumerate(credit_records(count, subjects, ctx.circle.codes, ctx.clock.now().date(), seed)):
        out.append(publishers[city].prepare("credit.record", body))
        if (i + 1) % 20000 == 0:
            say(f"  prepared {i + 1}/{count} records ({(i + 1) / (time.perf_counter() - started):.0f}/s)")
    return out


def consumed(port: int, topic: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith("tongcheng_events_consumed_total{") and f'topic="{topic}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ}
    for name in ("topic_prefix", "bootstrap", "registry_url", "data_dir", "metrics_port", "table_store"):
        env[ENV[name]] = str(getattr(settings, name))
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", "credit"], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def throughput(ctx: Context, producer: KafkaProducer, records: list[Prepared], port: int, log: Path) -> tuple:  # type: ignore[type-arg]
    topic = ctx.topics.topic("credit.record")
    say(f"throughput: publishing a backlog of {len(records)} records")
    t0 = time.perf_counter()
    for p in records:
        producer.send(p.topic, key=p.key, value=p.value)
    producer.flush()
    say(f"  published in {time.perf_counter() - t0:.1f}s ({len(records) / (time.perf_counter() - t0):.0f}/s)")
    worker = start_worker(ctx.settings, log)
    first = last = None
    seen = 0.0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        n = consumed(port, topic)
        now = time.perf_counter()
        if n > 0 and first is None:
            first, first_n = now, n
        if n > seen:
            seen, last = n, now
            say(f"  consumed {int(n)}/{len(records)}")
        if n >= len(records):
            break
        time.sleep(0.25)
    if first is None or last is None or seen < len(records):
        raise SystemExit(f"the worker consumed {seen} of {len(records)} records; see {log}")
    rate = (seen - first_n) / (last - first) if last > first else float("nan")
    return worker, rate, seen


def latency(ctx: Context, producer: KafkaProducer, records: list[Prepared], rate: int) -> list[float]:
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    topic = ctx.topics.topic("credit.profile")
    consumer = KafkaConsumer(bootstrap_servers=ctx.settings.bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for tp in parts:
        consumer.position(tp)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for rec in batch:
                    event = ctx.codec.decode(rec.value, "CreditProfile")
                    cause = event["meta"].get("causation_id")
                    if cause:
                        arrived.setdefault(cause, now)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    say(f"latency: publishing {len(records)} records at {rate}/s")
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.perf_counter()
    for i in range(0, len(records), per_tick):
        due = start + (i // per_tick) * tick
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        now = time.perf_counter()
        for p in records[i : i + per_tick]:
            sent[p.event_id] = now
            producer.send(p.topic, key=p.key, value=p.value)
        producer.flush()
    elapsed = time.perf_counter() - start
    say(f"  published in {elapsed:.1f}s ({len(records) / elapsed:.0f}/s)")
    time.sleep(3)
    stop.set()
    listener.join()
    consumer.close()
    return sorted(arrived[e] - sent[e] for e in arrived if e in sent)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_bench(settings: Settings, args: argparse.Namespace) -> tuple[float, float, list[float], Path]:
    """The throughput run, then the latency run, on fresh topics; returns (rate, seen, latencies, log)."""
    ctx = build_context(settings)
    provision_bus(ctx)
    producer = KafkaProducer(**{**producer_config(settings.bootstrap, "bench"), "linger_ms": 5, "batch_size": 262144})
    say(f"preparing {args.records + args.rate * args.seconds} records for {args.subjects} subjects")
    backlog = prepare(ctx, producer, args.records, args.subjects, args.seed)
    steady = prepare(ctx, producer, args.rate * args.seconds, args.subjects, args.seed + 1)
    log = settings.data_dir / "logs" / f"bench-{settings.topic_prefix}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    port = settings.metrics_port + 1
    worker, rate, seen = throughput(ctx, producer, backlog, port, log)
    try:
        lat = latency(ctx, producer, steady, args.rate)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        producer.close()
    return rate, seen, lat, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.credit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="backlog size for the throughput run")
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=2000, help="records/s for the latency run")
    parser.add_argument("--seconds", type=int, default=20, help="duration of the latency run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    base = Settings.from_env()
    settings = base.with_(topic_prefix=f"bench{uuid.uuid4().hex[:6]}", metrics_port=base.metrics_port + 50)
    started = not (local.kafka_ready(settings) and local.registry_ready(settings))
    if started:
        local.start(settings, say)
    try:
        rate, seen, lat, log = run_bench(settings, args)
    finally:
        if started:  # leave the machine as it was: stop what the benchmark started
            local.stop(settings, say)
    say("")
    say(
        f"machine:    {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}, table store {settings.table_store}"
    )
    say(f"throughput: {rate:,.0f} records/s through one credit worker ({int(seen)} records, {args.subjects} subjects)")
    if lat:
        say(
            f"latency:    publish-to-profile at {args.rate}/s: p50 {pct(lat, 0.5) * 1000:.0f} ms, "
            f"p99 {pct(lat, 0.99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms "
            f"({len(lat)} profiles, mean {statistics.mean(lat) * 1000:.0f} ms)"
        )
    else:
        say("latency:    no profiles arrived; see " + str(log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
