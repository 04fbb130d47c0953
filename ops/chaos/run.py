"""`python -m ops.chaos [--records 100000] [--kills 20] [--seed N]`: SIGKILL the credit worker again
and again under a mixed workload, then check it ended where a clean run ends.

1. A stack of its own: Kafka and Apicurio on 23192/23193/23181 (worker metrics from 23500) in a
   temporary directory, started here and stopped at the end, with a fresh topic prefix.
2. The workload: `--records` credit records, ~2% of them unreadable garbage (a wrong magic byte),
   the rest realistic (ops/bench/workload.py, with its own few refusals: REPAIRs before their
   time), published in chunks over time. Publishing is released in `kills + 1` portions, one more
   after each restart, so the worker always has records in front of it when it is killed.
3. The drill: `--kills` times, wait until the worker has committed something since its (re)start,
   wait a random 0.2-2.5 s, SIGKILL it and start it again.
4. The check, once its group has committed every record: the newest profile of every subject
   equals the pure rules' (each subject's records applied in publication order); the DLQ view
   (topics.subscriber.Subscriber, deduped by key) shows each bad record once and as many as
   expected (garbage + the rules' refusals); the raw DLQ may hold repeats from killed batches; the
   counts kept in the worker's state (tongcheng_input_records, tongcheng_input_offset) equal the
   topic's end offsets.

Progress goes to stdout; the last line is one JSON object with the figures and "ok".
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from ops.bench.workload import credit_records
from ops.broker import local
from ops.bus import provision_bus
from ops.chaos.probes import (
    Offsets,
    dead_letter_view,
    garbage,
    latest_profiles,
    oracle,
    spawn_worker,
    state_counts,
    stop_worker,
    wait_until,
)
from topics.context import Context, build_context
from topics.localtime import local_date
from topics.provenance import Signer
from topics.publisher import Prepared, Publisher, producer_config
from topics.settings import Settings

PORTS: dict[str, Any] = {"kafka_port": 23192, "controller_port": 23193, "registry_port": 23181, "metrics_port": 23500}
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # the workers' clock (a clock file), and the rules'
GARBAGE_SHARE = 0.02
CHUNK = 1000
MIN_CHUNK_SECONDS = 0.4  # publishing is spread over time even when a portion is released at once
PROGRESS_TIMEOUT = 180.0  # for a restarted worker to commit something (start, recovery, rebalance)
CATCH_UP_TIMEOUT = 600.0
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers (the city's signature)


def say(message: str) -> None:
    print(message, flush=True)


class Feed:
    """Publishes the mixed workload in chunks from a thread, released a portion at a time."""

    def __init__(self, ctx: Context, chunks: list[list[Record]], portions: int) -> None:
        self.ctx = ctx
        self.topic = ctx.topics.topic("credit.record")
        self.chunks = chunks
        self.portions = portions
        self.released = 1
        self.sent = 0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._go = threading.Condition()
        self.producer = KafkaProducer(**producer_config(ctx.settings, "tongcheng-chaos"))
        self.thread = threading.Thread(target=self._run, name="chaos-feed", daemon=True)

    def release(self) -> None:
        with self._go:
            self.released += 1
            self._go.notify_all()

    def _allowed(self, k: int) -> bool:
        return k < len(self.chunks) * self.released // self.portions

    def _run(self) -> None:
        try:
            for k, chunk in enumerate(self.chunks):
                with self._go:
                    self._go.wait_for(lambda k=k: self._allowed(k))  # type: ignore[misc]
                began = time.monotonic()
                futures = [self.producer.send(self.topic, key=k, value=v, headers=h) for k, v, h in chunk]
                self.producer.flush()
                for f in futures:
                    f.get(timeout=60)
                self.sent += len(chunk)
                time.sleep(max(0.0, MIN_CHUNK_SECONDS - (time.monotonic() - began)))
        except BaseException as exc:  # noqa: BLE001 - reported by the drill
            self.error = exc
        finally:
            self.done.set()

    def close(self) -> None:
        self.producer.close(timeout=10)


def workload(ctx: Context, records: int, subjects: int, seed: int) -> tuple[list[Prepared], list[list[Record]], int]:
    """The valid records (prepared, in publication order), the chunks to publish (valid and garbage
    mixed), and the number of garbage records."""
    bad = round(records * GARBAGE_SHARE)
    producer = KafkaProducer(**producer_config(ctx.settings, "tongcheng-chaos-prepare"))
    publishers = {c: Publisher(ctx, c, "tongcheng-chaos", producer=producer) for c in ctx.circle.codes}
    good = [
        publishers[city].prepare("credit.record", body)
        for city, body in credit_records(
            records - bad, subjects, ctx.circle.codes, local_date(NOW, ctx.circle.tz), seed=seed
        )
    ]
    producer.close(timeout=5)
    # garbage signed by a member city, so that it is dead-lettered as undecodable whichever check comes first
    signer = Signer.for_city(ctx.settings, ctx.circle, ctx.circle.codes[0])
    topic = ctx.topics.topic("credit.record")
    junk = [(key, value, signer.headers(topic, value)) for key, value in garbage(bad, seed)]
    mixed: list[Record] = [(p.key, p.value, list(p.headers)) for p in good]
    rng = random.Random(seed)
    for item in junk:  # garbage at random places; the valid records keep their order
        mixed.insert(rng.randrange(len(mixed) + 1), item)
    chunks = [mixed[i : i + CHUNK] for i in range(0, len(mixed), CHUNK)]
    return good, chunks, bad


def drill(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    ctx = build_context(settings)
    provision_bus(ctx)
    topic = ctx.topics.topic("credit.record")
    group = settings.group_id("credit")
    port = settings.metrics_port + 1
    say(f"preparing {args.records} records ({args.subjects} subjects, seed {args.seed}) ...")
    good, chunks, bad = workload(ctx, args.records, args.subjects, args.seed)
    expected, refused = oracle(ctx, good, NOW)
    say(f"  {len(good)} valid, {bad} garbage; the rules refuse {refused}; {len(expected)} profiles expected")

    offsets = Offsets(settings)
    feed = Feed(ctx, chunks, args.kills + 1)
    log = settings.data_dir / "credit.log"
    rng = random.Random(args.seed)
    worker: subprocess.Popen[bytes] | None = None
    kills = 0
    restart_seconds: list[float] = []
    try:
        worker = spawn_worker(settings, "credit", log)
        feed.thread.start()
        started = time.monotonic()
        for k in range(args.kills):
            floor = sum(offsets.committed(group, topic).values())
            wait_until(
                f"the worker processes after restart {k}",
                lambda floor=floor: sum(offsets.committed(group, topic).values()) > floor,  # type: ignore[misc]
                PROGRESS_TIMEOUT,
            )
            restart_seconds.append(time.monotonic() - started)
            time.sleep(rng.uniform(0.2, 2.5))
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited by itself ({worker.returncode}); see {log}")
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            worker = spawn_worker(settings, "credit", log)
            started = time.monotonic()
            feed.release()
            say(
                f"kill {kills}/{args.kills}: published {feed.sent}/{args.records}, "
                f"committed {sum(offsets.committed(group, topic).values())}, "
                f"processing resumed {restart_seconds[-1]:.1f} s after the restart"
            )
        while feed.released < feed.portions:
            feed.release()
        wait_until("the publisher finished", feed.done.is_set, 600)
        if feed.error is not None:
            raise RuntimeError(f"publishing failed: {feed.error!r}")
        total = offsets.end(topic)
        say(f"published {feed.sent}; the topic holds {total}; waiting for the worker to catch up ...")
        wait_until("the worker caught up", lambda: offsets.caught_up(group, topic), CATCH_UP_TIMEOUT, every=1.0)
        caught_up_s = time.monotonic() - began
        wait_until("the state counts every record", lambda: state_counts(port, topic)["offset"] == total, 120)
        counts = state_counts(port, topic)
        assert worker is not None
        alive = worker.poll() is None
    finally:
        if worker is not None and worker.poll() is None:
            stop_worker(worker)
        feed.close()

    latest = latest_profiles(ctx)
    differ = [sid for sid, body in expected.items() if latest.get(sid) != body]
    view = dead_letter_view(ctx, "credit.record")
    raw = offsets.end(ctx.topics.dlq("credit.record"))
    offsets.close()
    expected_dead = bad + refused
    outcome_total = counts.get("applied", 0) + counts.get("duplicate", 0) + counts.get("rejected", 0)
    figures: dict[str, Any] = {
        "records": args.records,
        "on_topic": total,
        "kills": kills,
        "seed": args.seed,
        "wall_s": round(time.monotonic() - began, 1),
        "caught_up_s": round(caught_up_s, 1),
        "resumed_after_restart_s": {
            "median": round(sorted(restart_seconds)[len(restart_seconds) // 2], 1) if restart_seconds else None,
            "max": round(max(restart_seconds), 1) if restart_seconds else None,
        },
        "profiles": len(latest),
        "profiles_expected": len(expected),
        "profiles_differing": len(differ),
        "dead_letters_shown": view.shown,
        "dead_letters_distinct": view.distinct,
        "dead_letters_expected": expected_dead,
        "dead_letters_raw": raw,
        "dead_letter_reasons": dict(sorted(view.reasons.items())),
        "garbage": bad,
        "state_records": {k: int(v) for k, v in sorted(counts.items()) if k != "offset"},
        "state_offset": int(counts["offset"]),
        "topic_end": total,
        "worker_alive": alive,
    }
    checks = {
        "all records on the topic": total == args.records,
        "profiles equal the rules'": not differ and set(latest) == set(expected),
        "each dead letter shown once": view.shown == view.distinct,
        "dead letters as expected": view.distinct == expected_dead == counts.get("rejected", -1),
        "garbage dead-lettered as undecodable": view.reasons.get("undecodable", 0) == bad,
        "raw DLQ holds at least the view": raw >= view.shown,
        "state counts reconcile with offsets": outcome_total == total == counts["offset"],
        "worker alive at the end": alive,
    }
    failed = [name for name, ok in checks.items() if not ok]
    for name in failed:
        say(f"FAILED: {name}")
    if differ:
        sid = differ[0]
        say(f"  first differing profile {sid}: expected {expected[sid]}, got {latest.get(sid)}")
    figures["failed"] = failed
    figures["ok"] = not failed
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subjects", type=int, default=0, help="distinct subjects (default: records / 20)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, broker data)")
    args = parser.parse_args(argv)
    args.subjects = args.subjects or max(args.records // 20, 10)
    work = Path(tempfile.mkdtemp(prefix="tongcheng-chaos-"))
    clock = work / "clock"
    clock.write_text(NOW.isoformat())
    settings = Settings(
        data_dir=work, topic_prefix=f"c{uuid.uuid4().hex[:10]}", clock_file=clock, sweep_seconds=30.0, **PORTS
    )
    say(f"working directory {work}")
    figures: dict[str, Any]
    try:
        local.start(settings, say)
        figures = drill(settings, args)
    except (TimeoutError, RuntimeError, local.BrokerError) as exc:
        say(f"drill failed: {exc}")
        figures = {"records": args.records, "kills": None, "error": str(exc), "ok": False}
    finally:
        local.stop(settings, say)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, ensure_ascii=False), flush=True)
    return 0 if figures["ok"] else 1
