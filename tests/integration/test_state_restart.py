"""State across restarts, on the real broker: a worker restarted on its data directory reads only the
changelog written since its last flush (after a clean stop as after a SIGKILL), its profiles then
equal a clean run's over about 50,000 subjects on both stores, a standby copy makes a failover need
no rebuild, and a new group rebuilds from offset 0 on a directory that holds another group's store.

A clean run's profiles are the pure rules applied in publication order (as in test_credit_rebuild);
they are compared by a sha256 over the newest profile of every subject. The input is unsigned
(TONGCHENG_PROVENANCE=off, as `tongcheng bench --signatures off`) to keep the runs short.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from ops.bench.workers import wait_for_group
from ops.bench.workload import credit_records
from ops.chaos.probes import Offsets, oracle_of, stop_worker, wait_until
from schemas.convert import to_json
from services.common.runtime.app import CHANGELOG_CONFIG
from tests.integration.conftest import PORT_SHIFT, clocked_settings, metric_at, provisioned, spawn_worker
from topics.context import Context
from topics.kafka_auth import client_config
from topics.publisher import Prepared, Publisher, producer_config
from topics.settings import Settings

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
METRICS = 22400 + PORT_SHIFT  # + 1 for the credit worker; a second worker of a test gets + 50
SUBJECTS = 51_500  # one record each, but for the workload's 2% redeliveries: about 50,500 subjects
#: changelog records a killed worker may not have put in its store: one batch (the consumer's
#: 2,000 records at most, one state record each) and its progress records
ONE_BATCH = 2_100
RECOVERED = "tongcheng_changelog_recovered_records_total"


@dataclass
class Bus:
    """One prefix's topics, its input, and a producer."""

    ctx: Context
    producer: KafkaProducer
    offsets: Offsets
    sent: list[Prepared] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.ctx.topics.topic("credit.record")

    def send(self, count: int, subjects: int, seed: int) -> None:
        publishers = {c: Publisher(self.ctx, c, "state-test", self.producer, sign=False) for c in self.ctx.circle.codes}
        items = credit_records(count, subjects, self.ctx.circle.codes, NOW.date(), seed=seed, every_subject=True)
        prepared = [publishers[city].prepare("credit.record", body) for city, body in items]
        for p in prepared:
            self.producer.send(p.topic, key=p.key, value=p.value, headers=list(p.headers))
        self.producer.flush()
        self.sent += prepared

    def start(self, tag: str, store: str, **env: str) -> subprocess.Popen[bytes]:
        worker = spawn_worker(
            self.ctx.settings,
            "credit",
            TONGCHENG_GROUP_TAG=tag,
            TONGCHENG_TABLE_STORE=store,
            TONGCHENG_PROVENANCE="off",
            **env,
        )
        self.workers.append(worker)
        return worker

    def group(self, tag: str) -> str:
        return self.ctx.settings.with_(group_tag=tag).group_id("credit")

    def caught_up(self, tag: str) -> bool:
        return self.offsets.caught_up(self.group(tag), self.topic)

    def committed(self, tag: str) -> int:
        return sum(self.offsets.committed(self.group(tag), self.topic).values())

    def changelogs(self, tag: str) -> dict[str, int]:
        """The group's table changelogs and the records written to each."""
        admin = KafkaAdminClient(bootstrap_servers=self.ctx.settings.bootstrap, **client_config(self.ctx.settings))
        try:
            names = [t for t in admin.list_topics() if t.startswith(self.group(tag) + "-") and t.endswith("-changelog")]
        finally:
            admin.close()
        return {name: self.offsets.end(name) for name in names}

    def profile_ends(self) -> dict[int, int]:
        return self.offsets.ends(self.ctx.topics.topic("credit.profile"))

    def profiles(self, start: dict[int, int]) -> dict[str, dict[str, dict[str, Any]]]:
        """The newest profile (without meta) per subject written from `start` to the end now, for
        each run: runs side by side have clocks a second apart, so a profile's `as_of` names its run."""
        topic = self.ctx.topics.topic("credit.profile")
        ends = self.profile_ends()
        consumer = KafkaConsumer(
            bootstrap_servers=self.ctx.settings.bootstrap, enable_auto_commit=False, **client_config(self.ctx.settings)
        )
        runs: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            for partition, end in ends.items():
                tp = TopicPartition(topic, partition)
                consumer.assign([tp])
                consumer.seek(tp, start.get(partition, 0))
                while consumer.position(tp) < end:
                    for records in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                        for rec in records:
                            if rec.offset < end:
                                body = to_json(self.ctx.codec.decode(rec.value))
                                del body["meta"]
                                runs.setdefault(body["as_of"], {})[body["subject_id"]] = body
        finally:
            consumer.close()
        return runs

    def expected(self, now: datetime = NOW) -> dict[str, dict[str, Any]]:
        """A clean run's profiles as of `now`: the pure rules over the input in publication order."""
        return oracle_of((self.ctx.codec.decode(p.value, "CreditRecord") for p in self.sent), now)[0]

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        self.producer.close()
        self.offsets.close()


def digest(profiles: dict[str, dict[str, Any]]) -> str:
    """sha256 over the newest profile of every subject, in subject order."""
    h = hashlib.sha256()
    for sid in sorted(profiles):
        h.update(json.dumps([sid, profiles[sid]], sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def check_equal(got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    wrong = sorted(sid for sid in expected.keys() | got.keys() if got.get(sid) != expected.get(sid))
    assert digest(got) == digest(expected), (
        f"{len(wrong)} of {len(expected)} profiles differ from a clean run's; the first: {wrong[0]}: "
        f"expected {expected.get(wrong[0])}, got {got.get(wrong[0])}"
    )


def make_bus(stack: Settings, tmp_path_factory: pytest.TempPathFactory, name: str, metrics: int) -> Bus:
    settings = clocked_settings(stack, tmp_path_factory, name, NOW, metrics, sweep_seconds=30).with_(provenance="off")
    ctx = provisioned(settings)
    producer = KafkaProducer(**{**producer_config(settings, "state-test"), "linger_ms": 5})
    return Bus(ctx, producer, Offsets(settings))


@pytest.fixture(scope="module")
def bus(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    b = make_bus(stack, tmp_path_factory, "state", METRICS)
    b.send(SUBJECTS, SUBJECTS, seed=19)
    yield b
    b.close()


def recovered(port: int, replica: str = "active") -> float:
    return metric_at(port, RECOVERED, service="credit", replica=replica)


def owned(bus: Bus, port: int) -> int:
    """The input partitions whose progress a worker serves (its tables recovered)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(line.startswith("tongcheng_input_offset{") and bus.topic in line for line in text.splitlines())


def test_workers_restarted_on_both_stores_end_as_a_clean_run(bus: Bus, tmp_path: Path) -> None:
    """Side by side over about 50,000 subjects: a rocksdb worker stopped cleanly a third of the way
    and SIGKILLed at two thirds, and a memory worker stopped halfway. The rocksdb worker reads back
    no changelog after the stop and at most the batch in hand after the kill, not the tens of
    thousands of records before it. Both end with a clean run's profiles (a sha256 over the newest
    profile of every subject), and the changelogs are compacted with small segments."""
    later = NOW + timedelta(seconds=1)  # the memory worker's clock: its profiles' as_of names them
    clock = tmp_path / "clock"
    clock.write_text(later.isoformat())
    port = METRICS + 1
    memory_env = {"TONGCHENG_METRICS_PORT": str(METRICS + 50), "TONGCHENG_CLOCK_FILE": str(clock)}
    start = bus.profile_ends()
    seen: dict[str, float] = {}
    workers = {"rocks": bus.start("rocks", "rocksdb://"), "memory": bus.start("memory", "memory://", **memory_env)}

    def restart(tag: str, sig: int) -> None:
        stop_worker(workers[tag], sig)
        if tag == "rocks" and sig == signal.SIGKILL:
            seen["written"] = sum(bus.changelogs("rocks").values())
        workers[tag] = bus.start(tag, "rocksdb://") if tag == "rocks" else bus.start(tag, "memory://", **memory_env)

    steps = [
        ("rocks", SUBJECTS // 3, signal.SIGTERM),
        ("memory", SUBJECTS // 2, signal.SIGTERM),
        ("rocks", 2 * SUBJECTS // 3, signal.SIGKILL),
    ]
    while steps:
        due = [step for step in steps if bus.committed(step[0]) >= step[1]]
        for step in due[:1]:
            tag, _, sig = step
            restart(tag, sig)
            if sig == signal.SIGTERM and tag == "rocks":
                wait_until("the rocksdb worker recovered its tables", lambda: owned(bus, port) == 6, timeout=60)
                seen["after_stop"] = recovered(port)
            steps.remove(step)
        time.sleep(0.5)
    wait_until("both caught up", lambda: bus.caught_up("rocks") and bus.caught_up("memory"), timeout=180)
    seen["after_kill"] = recovered(port)
    for worker in workers.values():
        stop_worker(worker)
    print(
        f"rocksdb: changelog at the kill {seen['written']}; read back after the stop {seen['after_stop']:.0f}, "
        f"after the kill {seen['after_kill']:.0f}"
    )
    assert seen["after_stop"] == 0
    assert seen["written"] >= 10 * ONE_BATCH  # what a restart without the stores' offsets would read again
    assert seen["after_kill"] <= ONE_BATCH

    admin = KafkaAdminClient(bootstrap_servers=bus.ctx.settings.bootstrap, **client_config(bus.ctx.settings))
    try:
        names = sorted(bus.changelogs("rocks"))
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, n, configs=dict.fromkeys(CHANGELOG_CONFIG)) for n in names
        ]
        described = admin.describe_configs(resources).get("topic", {})
    finally:
        admin.close()
    assert len(names) >= 2 and set(described) == set(names)
    for name, config in described.items():
        assert {k: str(config[k]["value"]) for k in CHANGELOG_CONFIG} == CHANGELOG_CONFIG, name

    runs = bus.profiles(start)
    rocks, memory = runs.pop(to_json(NOW), {}), runs.pop(to_json(later), {})
    assert not runs, f"profiles as of other instants: {sorted(runs)}"
    expected = bus.expected()
    print(f"{len(rocks)} subjects; sha256 of their profiles {digest(rocks)}")
    assert len(expected) >= 50_000
    check_equal(rocks, expected)
    check_equal(memory, bus.expected(later))


@pytest.fixture(scope="module")
def pair(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    b = make_bus(stack, tmp_path_factory, "standby", METRICS + 100)
    yield b
    b.close()


def test_a_standby_copy_takes_over_a_killed_member_s_partitions_without_a_rebuild(pair: Bus, tmp_path: Path) -> None:
    """Two rocksdb workers in one group, each keeping a standby copy of the other's partitions. One is
    SIGKILLed: the survivor recovers the partitions it takes over (and its own) reading next to no
    changelog, and the profiles are a clean run's."""
    b = pair
    ports = (METRICS + 101, METRICS + 151)
    first = b.start("pair", "rocksdb://")
    second = b.start("pair", "rocksdb://", TONGCHENG_DATA_DIR=str(tmp_path), TONGCHENG_METRICS_PORT=str(METRICS + 150))
    wait_for_group(b.ctx.settings, b.group("pair"), 2, timeout=90)
    b.send(3_000, 1_500, seed=23)
    wait_until("caught up", lambda: b.caught_up("pair"), timeout=90)
    total = sum(b.changelogs("pair").values())
    wait_until(
        "the standby copies hold the whole changelog",
        lambda: recovered(ports[0], "standby") + recovered(ports[1], "standby") >= total,
        timeout=60,
    )
    before = recovered(ports[1])
    stop_worker(first, signal.SIGKILL)
    b.send(500, 1_500, seed=24)
    wait_until("the survivor took over", lambda: owned(b, ports[1]) == 6 and b.caught_up("pair"), timeout=90)
    read = recovered(ports[1]) - before
    stop_worker(second)
    print(f"changelog {total} records; the survivor read {read:.0f} of them to take over")
    assert read <= 20
    check_equal(b.profiles({}).get(to_json(NOW), {}), b.expected())


def test_a_new_group_on_a_directory_with_another_group_s_store_rebuilds_from_offset_0(pair: Bus) -> None:
    """The killed member's data directory holds the old group's RocksDB store; a worker of a new
    group on it reads from offset 0 and emits a profile for every subject again."""
    b = pair
    start = b.profile_ends()
    worker = b.start("rebuild", "rocksdb://")
    wait_until("the rebuild caught up", lambda: b.caught_up("rebuild"), timeout=90)
    stop_worker(worker)
    check_equal(b.profiles(start).get(to_json(NOW), {}), b.expected())
    dirs = sorted(p.name for p in (b.ctx.settings.data_dir / "faust").iterdir())
    assert dirs == sorted(b.group(tag) for tag in ("pair", "rebuild"))
