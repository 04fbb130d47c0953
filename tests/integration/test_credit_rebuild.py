"""State can be rebuilt: a worker killed mid-stream, and a replay into a fresh group, end where a
clean run ends. The expected end state is computed independently, by the pure rules, in order.

The chain is the real one: credit worker -> njmc.credit.profile.v1 -> readmodel worker -> SQLite.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ops.bench.workload import credit_records
from ops.chaos.probes import oracle_of, stop_worker
from schemas.convert import to_json
from services.readmodel.db import make_engine
from services.readmodel.tables import credit_profiles
from tests.integration.conftest import clocked_settings, provisioned, spawn_worker
from topics.context import Context
from topics.kafka_auth import client_config
from topics.publisher import Prepared, Publisher, producer_config
from topics.settings import Settings

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
RECORDS, SUBJECTS = 4000, 200


@dataclass
class Run:
    ctx: Context
    data: Path
    prepared: list[Prepared]
    expected: dict[str, dict[str, Any]]
    producer: KafkaProducer
    workers: dict[str, subprocess.Popen[bytes]]

    def start(self, service: str, **env: str) -> None:
        self.workers[service] = spawn_worker(self.ctx.settings, service, TONGCHENG_DATABASE_URL=self.db_url, **env)

    def stop(self, service: str, sig: int = signal.SIGTERM) -> None:
        stop_worker(self.workers.pop(service), sig)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data / 'read.db'}"


def oracle(ctx: Context, prepared: list[Prepared]) -> dict[str, dict[str, Any]]:
    """The end state by the pure rules, applying each subject's events in publication order."""
    decoded = (ctx.codec.decode(p.value, "CreditRecord") for p in prepared)
    return oracle_of(decoded, NOW, ctx.circle.tz)[0]


@pytest.fixture(scope="module")
def run(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    settings = clocked_settings(stack, tmp_path_factory, "rebuild", NOW, 19600, sweep_seconds=2.0)
    ctx = provisioned(settings)
    producer = KafkaProducer(**producer_config(settings, "rebuild-test"))
    publishers = {city: Publisher(ctx, city, "rebuild-test", producer=producer) for city in ctx.circle.codes}
    prepared = []
    for city, body in credit_records(RECORDS, SUBJECTS, ctx.circle.codes, NOW.date(), seed=11):
        prepared.append(publishers[city].prepare("credit.record", body))
    r = Run(ctx, settings.data_dir, prepared, oracle(ctx, prepared), producer, {})
    yield r
    for service in list(r.workers):
        r.stop(service)
    producer.close()


def send(run: Run, items: list[Prepared]) -> None:
    futures = [run.producer.send(p.topic, key=p.key, value=p.value, headers=list(p.headers)) for p in items]
    run.producer.flush()
    for f in futures:
        f.get(timeout=30)


def read_profiles(
    ctx: Context, until: Callable[[dict[str, Any]], bool], start: dict[int, int] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """The newest profile per subject (from `start` offsets, else from the beginning) once `until` holds."""
    topic = ctx.topics.topic("credit.profile")
    consumer = KafkaConsumer(
        bootstrap_servers=ctx.settings.bootstrap, enable_auto_commit=False, **client_config(ctx.settings)
    )
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, (start or {}).get(tp.partition, 0))
    latest: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for rec in records:
                    event = to_json(ctx.codec.decode(rec.value, "CreditProfile"))
                    latest[event["subject_id"]] = event
            if until(latest):
                return latest
    finally:
        consumer.close()
    raise AssertionError(f"profiles did not reach the expected state in {timeout}s ({len(latest)} subjects seen)")


def body(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k != "meta"}


def matches(expected: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda latest: all(sid in latest and body(latest[sid]) == want for sid, want in expected.items())


def end_offsets(ctx: Context) -> dict[int, int]:
    topic = ctx.topics.topic("credit.profile")
    consumer = KafkaConsumer(bootstrap_servers=ctx.settings.bootstrap, **client_config(ctx.settings))
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    ends = {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    consumer.close()
    return ends


def test_worker_killed_mid_stream_ends_in_the_clean_state(run: Run) -> None:
    run.start("credit")
    run.start("readmodel")
    half = len(run.prepared) // 2
    send(run, run.prepared[:half])
    read_profiles(run.ctx, lambda latest: len(latest) >= 20, timeout=90)  # it is mid-stream now
    send(run, run.prepared[half:])
    run.stop("credit", signal.SIGKILL)
    run.start("credit")  # it gets the partitions once the killed member's session expires (faust: 60 s)
    latest = read_profiles(run.ctx, matches(run.expected), timeout=240)
    assert {sid: body(p) for sid, p in latest.items()} == run.expected
    grades = {p["grade"] for p in latest.values()}
    assert len(grades) >= 3  # the workload reaches several grades, so the comparison means something

    engine = make_engine(run.db_url)  # the read model converges on the same profiles
    deadline = time.monotonic() + 60
    want = {sid: (p["grade"], p["revision"]) for sid, p in run.expected.items()}
    got: dict[str, tuple[str, int]] = {}
    while time.monotonic() < deadline and got != want:
        with engine.connect() as conn:
            got = {r.subject_id: (r.grade, r.revision) for r in conn.execute(sa.select(credit_profiles))}
        time.sleep(0.5)
    engine.dispose()
    assert got == want


def test_replay_from_offset_zero_into_a_fresh_group_gives_identical_profiles(run: Run) -> None:
    clean = read_profiles(run.ctx, matches(run.expected))
    run.stop("credit")
    start = end_offsets(run.ctx)
    run.start("credit", TONGCHENG_GROUP_TAG="replay")  # new consumer group, new tables: rebuilt from offset 0
    replayed = read_profiles(run.ctx, matches(run.expected), start=start)
    assert replayed == clean  # the whole event, meta included: same event_ids, same causes
