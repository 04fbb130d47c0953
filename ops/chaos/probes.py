"""What a fault drill looks at, from outside the workers: the topics' offsets, the groups' commits,
the DLQ view, a worker's CPU time and log, and the profiles a clean run would end with.

Shared by `python -m ops.chaos` and the integration tests (tests/integration: the outage and
fault tests, and the workers, waits and stops of conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from schemas.convert import to_json
from schemas.errors import Rejected
from schemas.events import CreditRecord, Meta
from schemas.structs import plain, typed
from services.credit import rules
from services.credit.state import CreditState
from services.readmodel.db import make_engine
from services.readmodel.tables import credit_profiles
from topics.context import Context
from topics.kafka_auth import client_config
from topics.localtime import CIRCLE_TZ, local_date
from topics.publisher import Prepared
from topics.settings import ENV, Settings
from topics.subscriber import Subscriber

#: the settings a worker of a drill takes from its stack
WORKER_SETTINGS = (
    "circle_file",
    "topic_prefix",
    "kafka_port",
    "broker_nodes",
    "registry_port",
    "data_dir",
    "metrics_port",
    "clock_file",
    "sweep_seconds",
    "database_url",
    # how the worker finds its credentials: its principal is its service (ops/cli/)
    "security_protocol",
    "secrets_file",
    "ssl_cafile",
)
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
    for name in WORKER_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            env[ENV[name]] = str(value)
    return {**env, **extra}


def spawn_worker(settings: Settings, service: str, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """`tongcheng worker SERVICE` as a subprocess, its output appended to `log`."""
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "worker", service],
            env=worker_env(settings, **extra_env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_worker(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Stop a process with `sig`, killed if it has not ended within `timeout` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy, and return that; a connection refused (a
    process still starting) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
            if got:
                return got
        except (httpx.HTTPError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime and stime, fields 14 and 15


def log_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


@dataclass
class Sample:
    """A worker's CPU time and log length at one moment, to compare with a later one."""

    at: float
    cpu: float
    lines: int
    size: int

    @classmethod
    def of(cls, pid: int, log: Path, at: float) -> Sample:
        return cls(at, cpu_seconds(pid), log_lines(log), log.stat().st_size if log.exists() else 0)

    def rates(self, later: Sample) -> dict[str, float]:
        """CPU share of one core, log lines and bytes per second between this sample and `later`."""
        seconds = max(later.at - self.at, 1e-6)
        return {
            "seconds": round(seconds, 1),
            "cpu_share": round((later.cpu - self.cpu) / seconds, 3),
            "lines_per_s": round((later.lines - self.lines) / seconds, 2),
            "bytes_per_s": round((later.size - self.size) / seconds, 1),
        }


class Offsets:
    """End offsets of topics and a group's committed offsets; the clients are made again after an
    error (a broker that was restarted)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: KafkaConsumer | None = None
        self._admin: KafkaAdminClient | None = None

    def _clients(self) -> tuple[KafkaConsumer, KafkaAdminClient]:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False, **client_config(self.settings)
            )
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.settings.bootstrap, **client_config(self.settings))
        return self._consumer, self._admin

    def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):  # closing after a broker restart
                    client.close()
        self._consumer = self._admin = None

    def ends(self, topic: str) -> dict[int, int]:
        try:
            consumer, _ = self._clients()
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
        except KafkaError:
            self.close()
            raise

    def end(self, topic: str) -> int:
        """Records written to a topic so far (the sum of its partitions' end offsets)."""
        return sum(self.ends(topic).values())

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets on `topic` ({} while its coordinator is not known)."""
        try:
            _, admin = self._clients()
            offsets = admin.list_group_offsets([group]).get(group, {})
        except KafkaError:
            self.close()
            return {}
        return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic and om.offset >= 0}

    def caught_up(self, group: str, topic: str) -> bool:
        """The group has committed every record of `topic`."""
        committed = self.committed(group, topic)
        try:
            ends = self.ends(topic)
        except KafkaError:
            return False
        return bool(ends) and all(committed.get(p, -1) >= end for p, end in ends.items())


def state_counts(port: int, topic: str) -> dict[str, float]:
    """A worker's counts kept in its state: outcome -> records, and 'offset' -> summed next offsets."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, float] = {"offset": 0.0}
    for line in text.splitlines():
        if line.startswith("tongcheng_input_records{") and f'topic="{topic}"' in line:
            outcome = line.split('outcome="')[1].split('"')[0]
            out[outcome] = float(line.split()[-1])
        elif line.startswith("tongcheng_input_offset{") and f'topic="{topic}"' in line:
            out["offset"] += float(line.split()[-1])
    return out


@dataclass
class DeadLetterView:
    shown: int  # deliveries of the DLQ view (topics.subscriber.Subscriber, which dedupes by key)
    distinct: int  # distinct source coordinates among them
    reasons: Counter[str]
    keys: set[str]


def dead_letter_view(ctx: Context, event_type: str, idle_ms: int = 2000) -> DeadLetterView:
    """What the DLQ view of an event type shows, read to its end."""
    sub = Subscriber(ctx, [ctx.topics.dlq(event_type)], from_beginning=True)
    seen: list[tuple[str, str, str]] = []
    reasons: Counter[str] = Counter()
    keys: set[str] = set()
    try:
        while batch := sub.poll(timeout_ms=idle_ms):
            for d in batch:
                seen.append(
                    (d.headers.get("source.topic", ""), d.headers["source.partition"], d.headers["source.offset"])
                )
                reasons[d.headers.get("error.reason", "")] += 1
                keys.add(d.headers.get("source.key", ""))
    finally:
        sub.close()
    return DeadLetterView(len(seen), len(set(seen)), reasons, keys)


def garbage(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of records no schema can read (a wrong magic byte): each for the DLQ as `undecodable`."""
    rng = random.Random(seed)
    return [(f"garbage-{seed}-{i}".encode(), bytes([7]) + rng.randbytes(20)) for i in range(count)]


def oracle(ctx: Context, prepared: Iterable[Prepared], now: datetime) -> tuple[dict[str, dict[str, Any]], int]:
    """The end state of a clean run by the pure credit rules, each subject's events applied in
    publication order: (the profile body per subject, without meta; how many records the rules refuse)."""
    return oracle_of((ctx.codec.decode(p.value, "CreditRecord") for p in prepared), now, ctx.circle.tz)


def oracle_of(
    events: Iterable[dict[str, Any]], now: datetime, tz: tzinfo = CIRCLE_TZ
) -> tuple[dict[str, dict[str, Any]], int]:
    """`oracle` over decoded CreditRecords, in the order given, on the calendar of zone `tz`."""
    states: dict[str, CreditState] = {}
    refused = 0
    for event in events:
        record = typed(event, CreditRecord)
        sid = record.subject.subject_id
        try:
            states[sid], _ = rules.apply(states.get(sid), record, tz)
        except Rejected:
            refused += 1
    out = {}
    # only the body counts: an oracle compares profiles without their meta
    meta = Meta(event_id="", event_type="", source_city="", source_system="", occurred_at=now, published_at=now)
    for sid, state in states.items():
        state, _ = rules.evaluate(state, local_date(now, tz), bump=False)
        body = to_json(plain(rules.profile(state, now, meta)))
        out[sid] = {k: v for k, v in body.items() if k != "meta"}
    return out, refused


def _read_all(ctx: Context, topic: str, idle_ms: int = 1500) -> list[Any]:
    """Every record of `topic` to its end now, partition by partition in offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=ctx.settings.bootstrap, enable_auto_commit=False, **client_config(ctx.settings)
    )
    got: dict[int, list[Any]] = {}
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            polled = consumer.poll(timeout_ms=idle_ms, max_records=5000)
            if not polled:
                break
            for tp, records in polled.items():
                got.setdefault(tp.partition, []).extend(r for r in records if r.offset < ends[tp])
    finally:
        consumer.close()
    return [r for p in sorted(got) for r in got[p]]


def topic_events(ctx: Context, event_type: str) -> list[dict[str, Any]]:
    """The decodable events of an input topic, each partition in offset order (a subject's events
    share a partition, so each subject's are in the order the broker took them)."""
    kind = ctx.topics.event_type_of(ctx.topics.topic(event_type))
    out = []
    for record in _read_all(ctx, ctx.topics.topic(event_type)):
        try:
            out.append(ctx.codec.decode(record.value, kind.schema if kind else None))
        except Rejected:
            continue
    return out


def latest_by_key(ctx: Context, event_type: str) -> dict[bytes, dict[str, Any]]:
    """The newest event per record key on a topic (without meta, as JSON), read to its end."""
    topic = ctx.topics.topic(event_type)
    kind = ctx.topics.event_type_of(topic)
    latest: dict[bytes, dict[str, Any]] = {}
    for record in _read_all(ctx, topic):
        event = to_json(ctx.codec.decode(record.value, kind.schema if kind else None))
        latest[record.key] = {k: v for k, v in event.items() if k != "meta"}
    return latest


def gauge_samples(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of metric `name` a worker serves now, by its labels (sorted (name, value) pairs)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = line[len(name) + 1 : line.rindex("}")]
            pairs = [part.split("=", 1) for part in labels.split(",") if part]
            out[tuple(sorted((k, v.strip('"')) for k, v in pairs))] = float(line.split()[-1])
    return out


def profile_rows(url: str) -> dict[str, int]:
    """The read model's credit profiles: subject -> revision ({} before the worker has migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {r.subject_id: r.revision for r in conn.execute(sa.select(credit_profiles))}
    except sa.exc.OperationalError:
        return {}
    finally:
        engine.dispose()


def latest_profiles(ctx: Context) -> dict[str, dict[str, Any]]:
    """The newest profile per subject on the profile topic (without meta), read to its end."""
    latest: dict[str, dict[str, Any]] = {}
    for record in _read_all(ctx, ctx.topics.topic("credit.profile")):
        event = to_json(ctx.codec.decode(record.value, "CreditProfile"))
        latest[event["subject_id"]] = {k: v for k, v in event.items() if k != "meta"}
    return latest


@dataclass(frozen=True)
class Placement:
    """Where a partition lives: its leader, its replicas and its in-sync replicas (node ids)."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def placements(settings: Settings, topics: Iterable[str]) -> dict[tuple[str, int], Placement]:
    """Each partition of `topics` as the cluster's metadata describes it now."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **client_config(settings))
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    return {
        (t["name"], p["partition_index"]): Placement(
            p["leader_id"], tuple(sorted(p["replica_nodes"])), tuple(sorted(p["isr_nodes"]))
        )
        for t in described
        for p in t["partitions"]
    }


def leader_of_most(settings: Settings, topics: Iterable[str]) -> int:
    """The node that leads the most partitions of `topics` (the lowest id among equals)."""
    leaders = Counter(p.leader for p in placements(settings, topics).values() if p.leader >= 0)
    return min(leaders, key=lambda node: (-leaders[node], node))


def fully_replicated(settings: Settings, topics: Iterable[str]) -> bool:
    """Every partition of `topics` has all its replicas in sync."""
    try:
        found = placements(settings, topics)
    except KafkaError:
        return False
    return bool(found) and all(p.isr == p.replicas for p in found.values())
