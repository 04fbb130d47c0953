"""Broker faults under load, on a cluster of three KRaft nodes of the module's own (never a mock).

Credit records arrive at 500/s through the SDK's producer (acks=all, idempotent) while the credit
worker and the read-model worker run on topics with replication 3 and min.insync.replicas 2. First
the node that leads the most input partitions is SIGKILLed and started again 20 s later; once every
replica is back in sync, the same is done to the active controller (the quorum's leader). Then:
- every acknowledged record is on the input topic, and the profiles equal a clean run's over what
  the topic holds (the pure rules in order): nothing acknowledged was lost, nothing applied twice;
- the worker is still the same process, caught up, its counts reconcile with the offsets, and the
  DLQ holds each of the workload's own refusals once (no fault dead-letters a valid record);
- the read-model worker is still the same process, and its table holds the newest profile of every
  subject (its revision), none dead-lettered.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka.errors import KafkaError

from ops.bench.workload import credit_records
from ops.broker import local
from ops.broker.cluster import active_controller
from ops.chaos.probes import (
    Offsets,
    dead_letter_view,
    fully_replicated,
    latest_profiles,
    leader_of_most,
    oracle_of,
    placements,
    profile_rows,
    spawn_worker,
    state_counts,
    stop_worker,
    topic_events,
    wait_until,
)
from tests.integration.conftest import PORT_SHIFT, provisioned
from topics.publisher import HealingProducer, Publisher, publisher_config
from topics.settings import Settings

PORTS = {
    name: port + PORT_SHIFT
    for name, port in {
        # nodes on 20092, 20102, 20112 (clients) and 20093, 20103, 20113 (controllers)
        "kafka_port": 20092,
        "controller_port": 20093,
        "registry_port": 20081,
        "metrics_port": 20400,
    }.items()
}
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
RATE = 500  # credit records a second
TICK = 0.1
DOWN = 20.0  # seconds a killed node stays away
CREDIT_PORT = PORTS["metrics_port"] + 1
NEVER = {"unknown_schema", "internal_error"}  # reasons a fault must not add to the workload's own


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Three combined KRaft nodes and a registry of the module's own, since its nodes are killed."""
    data = tmp_path_factory.mktemp("cluster")
    clock = data / "clock"
    clock.write_text(NOW.isoformat())
    settings = Settings(
        data_dir=data,
        broker_nodes=3,
        topic_prefix=f"c{uuid.uuid4().hex[:10]}",
        clock_file=clock,
        sweep_seconds=2.0,
        **PORTS,
    )
    try:
        local.start(settings, say=print)
        yield settings
    finally:
        local.stop(settings, say=print)


@dataclass
class Feed:
    """RATE records a second from a thread through one HealingProducer, each signed and encoded as it
    goes (preparing them all first would take longer than the test's load); each send's outcome kept."""

    workload: list[tuple[str, dict[str, Any]]]
    publishers: dict[str, Publisher]
    producer: HealingProducer
    acked: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    sent: int = 0
    acknowledgements: int = 0  # sends acknowledged (the workload sends a few events twice on purpose)
    stop: threading.Event = field(default_factory=threading.Event)

    def acknowledged(self, event_id: str) -> None:
        self.acked.add(event_id)
        self.acknowledgements += 1

    def run(self) -> None:
        per_tick = int(RATE * TICK)
        tick = time.monotonic()
        while not self.stop.is_set() and self.sent < len(self.workload):
            for city, body in self.workload[self.sent : self.sent + per_tick]:
                p = self.publishers[city].prepare("credit.record", body)
                self.sent += 1
                try:
                    future = self.producer.send(p.topic, p.key, p.value, list(p.headers))
                except KafkaError:
                    self.failed.add(p.event_id)
                    continue
                future.add_callback(lambda _md, eid=p.event_id: self.acknowledged(eid))
                future.add_errback(lambda _exc, eid=p.event_id: self.failed.add(eid))
            tick = max(tick + TICK, time.monotonic() - TICK)  # no burst after a blocked send
            time.sleep(max(0.0, tick - time.monotonic()))


def outage(settings: Settings, node_id: int, what: str, feed: Feed) -> dict[str, float]:
    """SIGKILL node `node_id`, start it again DOWN seconds later, and wait until it is back in sync;
    what the feed had acknowledged meanwhile is reported."""
    acked = len(feed.acked)
    local.kill_kafka(settings, signal.SIGKILL, node_id=node_id)
    killed = time.monotonic()
    print(f"{what}: node {node_id} SIGKILLed")
    time.sleep(DOWN)
    local.restart_kafka(settings, say=print, node_id=node_id)
    back = time.monotonic()
    wait_until("every replica back in sync", lambda: fully_replicated(settings, feed_topics(settings)), timeout=60)
    figures = {
        "node": node_id,
        "away_s": round(back - killed, 1),
        "in_sync_after_s": round(time.monotonic() - back, 1),
        "acked_while_away": len(feed.acked) - acked,
    }
    print(f"{what}: {figures}")
    return figures


def feed_topics(settings: Settings) -> list[str]:
    prefix = settings.topic_prefix
    return [f"{prefix}.credit.record.v1", f"{prefix}.credit.profile.v1", f"{prefix}.credit.record.accepted.v1"]


def test_a_broker_and_the_controller_killed_under_load(cluster: Settings) -> None:
    settings = cluster
    ctx = provisioned(settings)
    topic = ctx.topics.topic("credit.record")
    for (name, part), where in placements(settings, [topic, ctx.topics.topic("credit.profile")]).items():
        assert len(where.replicas) == 3, f"{name}/{part} has replicas {where.replicas}"
    began = time.monotonic()
    producer = HealingProducer(publisher_config(settings, "cluster-test"))
    publishers = {c: Publisher(ctx, c, "cluster-test", producer=producer) for c in ctx.circle.codes}
    workload = credit_records(50_000, 4_000, ctx.circle.codes, NOW.date(), seed=61)
    feed = Feed(list(workload), publishers, producer)
    log, sink_log = settings.data_dir / "credit.log", settings.data_dir / "readmodel.log"
    offsets = Offsets(settings)
    sender = threading.Thread(target=feed.run, name="feed", daemon=True)
    worker: subprocess.Popen[bytes] | None = None
    sink: subprocess.Popen[bytes] | None = None
    try:
        worker = spawn_worker(settings, "credit", log)
        sink = spawn_worker(settings, "readmodel", sink_log)
        wait_until("the credit worker serves its counts", lambda: state_counts(CREDIT_PORT, topic), timeout=60)
        sender.start()
        time.sleep(3)
        leader = outage(settings, leader_of_most(settings, [topic]), "leader of most input partitions", feed)
        controller = active_controller(settings)
        assert controller is not None, "no active controller"
        active = outage(settings, controller, "active controller", feed)
        time.sleep(3)  # publishing on after the return
        feed.stop.set()
        sender.join(15)
        assert producer.close(timeout=20), "the publisher could not deliver what it had pending"
        print(f"published {feed.sent}: acknowledged {feed.acknowledgements}, failed {len(feed.failed)}")

        assert worker.poll() is None, f"the credit worker exited with {worker.returncode}; see {log}"
        group = settings.group_id("credit")
        wait_until("the credit worker caught up", lambda: offsets.caught_up(group, topic), timeout=60)
        total = offsets.end(topic)
        wait_until("the state counts every record", lambda: state_counts(CREDIT_PORT, topic)["offset"] == total, 30)
        counts = state_counts(CREDIT_PORT, topic)
        assert worker.poll() is None, f"the credit worker exited with {worker.returncode}; see {log}"
        latest = latest_profiles(ctx)
        want_rows = {sid: p["revision"] for sid, p in latest.items()}
        wait_until("the read model has every profile", lambda: profile_rows(settings.database_url) == want_rows, 60)
        assert sink.poll() is None, f"the read-model worker exited with {sink.returncode}; see {sink_log}"
        sink_refused = offsets.end(ctx.topics.dlq("credit.profile"))
    finally:
        feed.stop.set()
        for proc in (worker, sink):
            if proc is not None and proc.poll() is None:
                stop_worker(proc)
        offsets.close()
    print(f"cluster faults: leader {leader}, controller {active}, {time.monotonic() - began:.1f} s from preparing")

    # every acknowledged record is on the topic; the profiles are a clean run's over what it holds
    events = topic_events(ctx, "credit.record")
    on_topic = {e["meta"]["event_id"] for e in events}
    lost = feed.acked - on_topic
    assert not lost, f"{len(lost)} acknowledged records are not on the topic"
    if not feed.failed:  # idempotence: no retry during the faults wrote a record twice
        assert total == feed.acknowledgements == feed.sent, (
            f"{total} on the topic, {feed.acknowledgements} acknowledged"
        )
    expected, refused = oracle_of(events, NOW)
    wrong = [sid for sid, p in expected.items() if latest.get(sid) != p]
    assert not wrong, f"{len(wrong)} of {len(expected)} profiles differ from a clean run's; the first: {wrong[0]}"
    assert set(latest) == set(expected)

    # nothing counted or dead-lettered twice, nothing valid dead-lettered
    assert counts["applied"] + counts["duplicate"] + counts["rejected"] == total
    assert refused == counts["rejected"]
    view = dead_letter_view(ctx, "credit.record")
    assert not NEVER & set(view.reasons), view.reasons
    assert view.shown == view.distinct == counts["rejected"]
    assert sink_refused == 0, "the read model dead-lettered a profile"
