"""The stream runtime under faults, on the real broker and registry: restarts, kills, outages.

What a city's IT department relies on, each checked against the topics' own offsets:
- a clean stop or an idle restart processes nothing twice (no second profile, no second dead letter);
- after SIGKILLs at random points, the profiles equal a clean run's (the pure rules, in order), each
  bad record is in the DLQ view once, and the counts kept in the state reconcile with the offsets;
- a registry that cannot be reached holds records back; none of them is dead-lettered;
- a killed member's partitions are taken over by the other member of the group.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from ops.bench.workload import credit_records
from ops.broker import local
from ops.chaos.probes import latest_profiles, oracle_of, state_counts, stop_worker, topic_events, wait_until
from tests.integration.conftest import PORT_SHIFT, clocked_settings, provisioned, spawn_worker
from tests.integration.test_credit_rebuild import oracle, read_profiles
from topics.context import Context
from topics.kafka_auth import client_config
from topics.publisher import Prepared, Publisher, producer_config
from topics.settings import Settings
from topics.subscriber import Subscriber

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
METRICS = 19700 + PORT_SHIFT  # + 1 for the credit worker (its offset); a second worker gets METRICS + 50


class Bus:
    """One test's topics, a producer, and what the topics hold, read from their offsets."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.producer = KafkaProducer(**producer_config(ctx.settings, "faults-test"))
        self.publishers = {c: Publisher(ctx, c, "faults-test", producer=self.producer) for c in ctx.circle.codes}
        self.topic = ctx.topics.topic("credit.record")
        self._offsets = KafkaConsumer(
            bootstrap_servers=ctx.settings.bootstrap, enable_auto_commit=False, **client_config(ctx.settings)
        )
        self._admin = KafkaAdminClient(bootstrap_servers=ctx.settings.bootstrap, **client_config(ctx.settings))
        self.workers: list[subprocess.Popen[bytes]] = []

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        self.producer.close()
        self._offsets.close()
        self._admin.close()

    def prepare(self, count: int, subjects: int, seed: int) -> list[Prepared]:
        items = credit_records(count, subjects, self.ctx.circle.codes, NOW.date(), seed=seed)
        return [self.publishers[city].prepare("credit.record", body) for city, body in items]

    def send(self, items: list[Prepared]) -> None:
        futures = [self.producer.send(p.topic, key=p.key, value=p.value, headers=list(p.headers)) for p in items]
        self.producer.flush()
        for f in futures:
            f.get(timeout=30)

    def send_garbage(self, count: int, seed: int) -> None:
        """Records no schema can read (a wrong magic byte), each for the DLQ as `undecodable`."""
        rng = random.Random(seed)
        futures = [
            self.producer.send(self.topic, key=f"garbage-{seed}-{i}".encode(), value=bytes([7]) + rng.randbytes(20))
            for i in range(count)
        ]
        self.producer.flush()
        for f in futures:
            f.get(timeout=30)

    def end(self, topic: str) -> int:
        """Records written to a topic so far (the sum of its partitions' end offsets)."""
        parts = [TopicPartition(topic, p) for p in self._offsets.partitions_for_topic(topic) or []]
        return sum(self._offsets.end_offsets(parts).values())

    def caught_up(self, service: str = "credit") -> bool:
        """The service's group has committed every input record."""
        group = self.ctx.settings.group_id(service)
        try:
            committed = self._admin.list_group_offsets([group]).get(group, {})
        except KafkaError:  # the group's coordinator is not known yet
            return False
        parts = [TopicPartition(self.topic, p) for p in self._offsets.partitions_for_topic(self.topic) or []]
        ends = self._offsets.end_offsets(parts)
        return all(committed.get(tp) is not None and committed[tp].offset >= end for tp, end in ends.items())

    def committed(self, service: str = "credit") -> int:
        """Input records the service's group has committed."""
        group = self.ctx.settings.group_id(service)
        try:
            offsets = self._admin.list_group_offsets([group]).get(group, {})
        except KafkaError:
            return 0
        return sum(om.offset for tp, om in offsets.items() if tp.topic == self.topic and om.offset > 0)

    def dead_letters(self) -> int:
        return self.end(self.ctx.topics.dlq("credit.record"))

    def profiles_written(self) -> int:
        return self.end(self.ctx.topics.topic("credit.profile"))


@pytest.fixture
def bus(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    settings = clocked_settings(stack, tmp_path_factory, "faults", NOW, METRICS)
    b = Bus(provisioned(settings))
    yield b
    b.close()


def start(bus: Bus, **env: str) -> subprocess.Popen[bytes]:
    worker = spawn_worker(bus.ctx.settings, "credit", **env)
    bus.workers.append(worker)  # killed at the end whatever happens
    return worker


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_a_restart_processes_nothing_twice(bus: Bus, sig: int) -> None:
    """A caught-up worker stopped (cleanly or killed), 60 bad records published while it is down, then
    two restarts: 60 dead letters in all, and not one profile emitted again."""
    bus.send(bus.prepare(300, 100, seed=3))
    worker = start(bus)
    wait_until("the worker caught up", bus.caught_up, timeout=90)
    profiles, refused = bus.profiles_written(), bus.dead_letters()  # the workload has a few bad records
    stop_worker(worker, sig)

    bus.send_garbage(60, seed=sig)
    worker = start(bus)
    wait_until("the worker caught up after the restart", bus.caught_up, timeout=90)
    wait_until("60 more dead letters", lambda: bus.dead_letters() >= refused + 60, timeout=30)
    stop_worker(worker, sig)

    worker = start(bus)  # idle: nothing new to read
    port = METRICS + 1
    wait_until("the idle worker serves its counts", lambda: state_counts(port, bus.topic)["offset"] == 360, 90)
    counts = state_counts(port, bus.topic)
    stop_worker(worker)

    assert bus.dead_letters() == refused + 60, "a bad record was dead-lettered twice"
    assert bus.profiles_written() == profiles, "a record was applied twice"
    assert counts["rejected"] == refused + 60
    assert counts["applied"] + counts["duplicate"] + counts["rejected"] == 360 == bus.end(bus.topic)


def test_kills_at_random_points_end_as_a_clean_run(bus: Bus) -> None:
    """20,000 records, 1 in 40 of them bad, published over about a minute while the worker is SIGKILLed
    5 times, each at a random moment after it has resumed processing: the profiles equal the pure
    rules' in order, each bad record is in the DLQ view once, and the state's counts reconcile with
    the offsets."""
    good = bus.prepare(19_500, 2_000, seed=21)
    chunks = len(good) // 500
    rng = random.Random(5)
    done = threading.Event()

    def publish() -> None:
        for k in range(chunks):
            bus.send(good[k * 500 : (k + 1) * 500])
            bus.send_garbage(500 * (k + 1) // chunks - 500 * k // chunks, seed=1000 + k)
            time.sleep(1.2)
        done.set()

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    worker = start(bus)
    for _ in range(5):
        before = bus.committed()
        wait_until("the worker processes", lambda: bus.committed() > before, timeout=90)  # noqa: B023
        time.sleep(rng.uniform(0.2, 2.5))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = start(bus)
    sender.join(timeout=120)
    assert done.is_set(), "the publisher did not finish"
    total = bus.end(bus.topic)
    assert total == 20_000
    try:
        wait_until("the worker caught up", bus.caught_up, timeout=180)
        expected = oracle(bus.ctx, good)
        got: dict[str, Any] = {}

        def converged(profiles: dict[str, Any]) -> bool:
            got.update({s: {k: v for k, v in p.items() if k != "meta"} for s, p in profiles.items()})
            return all(got.get(s) == p for s, p in expected.items())

        try:
            read_profiles(bus.ctx, converged, timeout=60)
        except AssertionError:
            wrong = [s for s, p in expected.items() if got.get(s) != p]
            raise AssertionError(
                f"{len(wrong)} of {len(expected)} profiles differ from a clean run's; the first: "
                f"expected {expected[wrong[0]]}, got {got.get(wrong[0])}"
            ) from None
        assert len(got) == len(expected)
        port = METRICS + 1
        wait_until("the counts cover every record", lambda: state_counts(port, bus.topic)["offset"] == total, 60)
        counts = state_counts(port, bus.topic)
    finally:
        stop_worker(worker)

    sub = Subscriber(bus.ctx, [bus.ctx.topics.dlq("credit.record")], from_beginning=True)
    seen: list[tuple[str, str]] = []
    garbage = 0
    try:
        while True:
            batch = sub.poll(timeout_ms=1000)
            if not batch:
                break
            seen += [(d.headers["source.partition"], d.headers["source.offset"]) for d in batch]
            garbage += sum(d.headers["error.reason"] == "undecodable" for d in batch)
    finally:
        sub.close()
    # the 500 unreadable records, and the workload's own few refusals (REPAIRs before their time)
    assert len(seen) == len(set(seen)) == counts["rejected"], f"{len(seen)} shown, {len(set(seen))} distinct"
    assert garbage == 500
    assert counts["applied"] + counts["duplicate"] + counts["rejected"] == total


def test_an_unreachable_registry_holds_records_back(stack: Settings, bus: Bus) -> None:
    """The registry stops after the worker started: 200 valid records wait, none is dead-lettered, the
    worker stays up, and all 200 are processed once the registry is back."""
    items = bus.prepare(200, 200, seed=8)  # encoded while the registry is up
    worker = start(bus)
    wait_until("the worker serves metrics", lambda: state_counts(METRICS + 1, bus.topic), timeout=60)
    p = local.paths(stack)
    pid = local.read_pid(p, "registry")
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    wait_until("the registry stopped", lambda: not local.registry_ready(stack), timeout=30)
    try:
        bus.send(items)
        time.sleep(8)  # the worker fetches them and cannot read their schema
        assert worker.poll() is None, "the worker exited"
        assert bus.dead_letters() == 0
        assert bus.profiles_written() == 0
    finally:
        local.start_registry(stack, p)
        wait_until("the registry is back", lambda: local.registry_ready(stack), timeout=120)
    try:
        wait_until("the worker caught up", bus.caught_up, timeout=120)
        port = METRICS + 1
        wait_until("the counts cover every record", lambda: state_counts(port, bus.topic)["offset"] == 200, 60)
        counts = state_counts(port, bus.topic)
    finally:
        stop_worker(worker)
    assert counts["applied"] + counts["duplicate"] + counts["rejected"] == 200
    refused = dead_letter_reasons(bus)
    assert "unknown_schema" not in refused, refused  # the workload's own refusals may be there
    assert sum(refused.values()) == counts["rejected"]
    assert bus.profiles_written() > 0


def dead_letter_reasons(bus: Bus) -> dict[str, int]:
    sub = Subscriber(bus.ctx, [bus.ctx.topics.dlq("credit.record")], from_beginning=True)
    reasons: dict[str, int] = {}
    try:
        while batch := sub.poll(timeout_ms=1000):
            for d in batch:
                reasons[d.headers["error.reason"]] = reasons.get(d.headers["error.reason"], 0) + 1
    finally:
        sub.close()
    return reasons


def test_a_killed_member_s_partitions_move_to_the_other(bus: Bus) -> None:
    """Two workers in one group split the partitions; one is SIGKILLed; records on every partition
    are processed again by the other, in under 15 s, and the final state is a single worker's: the
    profiles equal a clean run's over the topic (the pure rules in order, which one worker's run
    gives: test_kills_at_random_points_end_as_a_clean_run), the survivor's counts cover every record
    once, and each refused record is dead-lettered once."""
    first, second = start(bus), start(bus, TONGCHENG_METRICS_PORT=str(METRICS + 50))

    def owned(port: int) -> int:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        return sum(1 for line in text.splitlines() if line.startswith("tongcheng_input_offset{") and bus.topic in line)

    try:
        bus.send(bus.prepare(200, 200, seed=30))
        wait_until("both workers own partitions", lambda: owned(METRICS + 1) and owned(METRICS + 51), timeout=90)
        wait_until("caught up", bus.caught_up, timeout=60)
        split = owned(METRICS + 1), owned(METRICS + 51)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        bus.send(bus.prepare(200, 200, seed=31))
        wait_until("the survivor took over", bus.caught_up, timeout=60)
        took = time.monotonic() - killed
        port = METRICS + 51
        wait_until("the survivor's counts cover every record", lambda: state_counts(port, bus.topic)["offset"] == 400)
        counts = state_counts(port, bus.topic)
    finally:
        for w in (first, second):
            if w.poll() is None:
                stop_worker(w)
    print(f"failover: partitions split {split}; every partition processed again {took:.1f} s after the SIGKILL")
    assert took <= 15.0
    assert sum(split) == 6

    events = topic_events(bus.ctx, "credit.record")
    expected, refused = oracle_of(events, NOW)
    latest = latest_profiles(bus.ctx)
    wrong = [sid for sid, p in expected.items() if latest.get(sid) != p]
    assert not wrong, f"{len(wrong)} of {len(expected)} profiles differ from one worker's run; the first: {wrong[0]}"
    assert set(latest) == set(expected)
    assert counts["applied"] + counts["duplicate"] + counts["rejected"] == 400
    assert counts["rejected"] == refused == bus.dead_letters()
