"""Workers under a broker restart, on a real broker of the module's own (never a mock).

The credit worker and the read-model worker run while credit records arrive at ~200/s; Kafka is
SIGKILLed, stays away ~15 s and is started again, the publisher sending throughout (its sends while
the broker is away may fail; the acknowledged ones are recorded). At the end both workers are still
running, have caught up (the credit group's commits reach the topic's end, the read model's rows
reach the profiles), nothing valid was dead-lettered, and every acknowledged record is on the topic
and its subject has a profile equal to a clean run's over what the topic holds.

While the broker is away the test prints each worker's CPU share (utime+stime from /proc) and its
log in lines per second: aiokafka's metadata loop has no backoff while no broker answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from kafka.errors import KafkaError

from ops.bench.workload import credit_records
from ops.broker import local
from ops.chaos.probes import (
    Offsets,
    Sample,
    dead_letter_view,
    latest_profiles,
    oracle_of,
    profile_rows,
    spawn_worker,
    state_counts,
    stop_worker,
    topic_events,
    wait_until,
)
from tests.integration.conftest import PORT_SHIFT, provisioned
from tests.integration.test_read_model import profile, uscc
from topics.context import Context
from topics.publisher import HealingProducer, Prepared, Publisher, publisher_config
from topics.settings import Settings

PORTS = {
    name: port + PORT_SHIFT
    for name, port in {
        "kafka_port": 23092,
        "controller_port": 23093,
        "registry_port": 23081,
        "metrics_port": 23400,
    }.items()
}
NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
RATE = 200  # credit records a second
TICK = 0.1
DOWN = 10.0  # seconds the broker stays away
CREDIT_PORT = PORTS["metrics_port"] + 1
#: what the workload itself has refused (its REPAIRs before their time); a fault must add nothing else
NEVER = {"unknown_schema", "internal_error"}


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A stack of the module's own, since its broker is killed."""
    data = tmp_path_factory.mktemp("outages")
    clock = data / "clock"
    clock.write_text(NOW.isoformat())
    settings = Settings(
        data_dir=data,
        topic_prefix=f"o{uuid.uuid4().hex[:10]}",
        clock_file=clock,
        sweep_seconds=2.0,
        database_url=f"sqlite:///{data / 'read.db'}",
        **PORTS,
    )
    try:
        local.start(settings, say=print)
        yield settings
    finally:
        local.stop(settings, say=print)


@dataclass
class Feed:
    """RATE records a second from a thread through one HealingProducer; each send's outcome kept."""

    items: list[Prepared]
    producer: HealingProducer
    acked: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        per_tick = int(RATE * TICK)
        tick = time.monotonic()
        while not self.stop.is_set() and self.sent < len(self.items):
            for p in self.items[self.sent : self.sent + per_tick]:
                self.sent += 1
                try:
                    future = self.producer.send(p.topic, p.key, p.value, list(p.headers))
                except KafkaError:  # no metadata within 5 s: the broker is away
                    self.failed.add(p.event_id)
                    continue
                future.add_callback(lambda _md, eid=p.event_id: self.acked.add(eid))
                future.add_errback(lambda _exc, eid=p.event_id: self.failed.add(eid))
            tick = max(tick + TICK, time.monotonic() - TICK)  # no burst after a blocked send
            time.sleep(max(0.0, tick - time.monotonic()))


def test_workers_survive_a_broker_restart(outage_stack: Settings) -> None:
    settings = outage_stack
    ctx: Context = provisioned(settings)
    topic, profiles = ctx.topics.topic("credit.record"), ctx.topics.topic("credit.profile")
    producer = HealingProducer(publisher_config(settings, "outage-test"))
    publishers = {c: Publisher(ctx, c, "outage-test", producer=producer) for c in ctx.circle.codes}
    workload = credit_records(20_000, 2_000, ctx.circle.codes, NOW.date(), seed=41)
    feed = Feed([publishers[c].prepare("credit.record", body) for c, body in workload], producer)
    logs = {name: settings.data_dir / f"{name}.log" for name in ("credit", "readmodel")}
    workers: dict[str, subprocess.Popen[bytes]] = {}
    offsets = Offsets(settings)
    sender = threading.Thread(target=feed.run, name="feed", daemon=True)
    began = time.monotonic()
    try:
        for name in ("credit", "readmodel"):
            workers[name] = spawn_worker(settings, name, logs[name])
        wait_until("the credit worker serves its counts", lambda: state_counts(CREDIT_PORT, topic), timeout=60)
        sender.start()
        wait_until("profiles reach the read model", lambda: profile_rows(settings.database_url), timeout=60)
        before = {n: Sample.of(w.pid, logs[n], time.monotonic()) for n, w in workers.items()}
        time.sleep(2)
        local.kill_kafka(settings, signal.SIGKILL)
        killed = time.monotonic()
        down = {n: Sample.of(w.pid, logs[n], killed) for n, w in workers.items()}
        time.sleep(DOWN)
        up = {n: Sample.of(w.pid, logs[n], time.monotonic()) for n, w in workers.items()}
        local.restart_kafka(settings, say=print)
        back = time.monotonic()
        restarted = {n: Sample.of(w.pid, logs[n], back) for n, w in workers.items()}
        print(f"broker away {back - killed:.1f} s")
        time.sleep(4)  # publishing on after the return
        feed.stop.set()
        sender.join(15)
        assert producer.close(timeout=20), "the publisher could not deliver what it had pending"
        print(f"published {feed.sent}: acknowledged {len(feed.acked)}, failed {len(feed.failed - feed.acked)}")

        for name, worker in workers.items():
            assert worker.poll() is None, f"the {name} worker exited with {worker.returncode}; see {logs[name]}"
        group = settings.group_id("credit")
        caught = wait_until("the credit worker caught up", lambda: offsets.caught_up(group, topic), timeout=90)
        caught_in = time.monotonic() - back
        total = offsets.end(topic)
        wait_until("the state counts every record", lambda: state_counts(CREDIT_PORT, topic)["offset"] == total, 30)
        counts = state_counts(CREDIT_PORT, topic)
        latest = latest_profiles(ctx)
        want_rows = {sid: p["revision"] for sid, p in latest.items()}
        wait_until("the read model has every profile", lambda: profile_rows(settings.database_url) == want_rows, 60)
        sink = settings.group_id("readmodel")
        wait_until("the read model committed", lambda: offsets.caught_up(sink, profiles), 30)
        for name, worker in workers.items():
            assert worker.poll() is None, f"the {name} worker exited with {worker.returncode}; see {logs[name]}"
        assert caught
    finally:
        feed.stop.set()
        for worker in workers.values():
            if worker.poll() is None:
                stop_worker(worker)
        offsets.close()

    figures: dict[str, object] = {
        "outage_s": round(up["credit"].at - down["credit"].at, 1),
        "caught_up_after_return_s": round(caught_in, 1),
        "test_s": round(time.monotonic() - began, 1),
    }
    for name in workers:
        figures[f"{name}_normal"] = before[name].rates(down[name])
        figures[f"{name}_outage"] = down[name].rates(up[name])
        figures[f"{name}_restarting"] = up[name].rates(restarted[name])  # the JVM starting, leaders elected
    print("outage figures:", json.dumps(figures))

    # nothing valid was dead-lettered: the DLQ holds only the workload's own refusals
    view = dead_letter_view(ctx, "credit.record")
    print(f"credit DLQ: {view.shown} shown, reasons {dict(view.reasons)}")
    assert not NEVER & set(view.reasons), view.reasons
    assert view.shown == view.distinct == counts["rejected"]
    assert offsets.end(ctx.topics.dlq("credit.profile")) == 0, "the read model dead-lettered a profile"
    assert counts["applied"] + counts["duplicate"] + counts["rejected"] == total

    # every acknowledged record is on the topic, and the profiles are a clean run's over what it holds
    events = topic_events(ctx, "credit.record")
    on_topic = {e["meta"]["event_id"] for e in events}
    assert feed.acked <= on_topic, f"{len(feed.acked - on_topic)} acknowledged records are not on the topic"
    expected, refused = oracle_of(events, NOW)
    assert refused == counts["rejected"]
    wrong = [sid for sid, p in expected.items() if latest.get(sid) != p]
    assert not wrong, f"{len(wrong)} of {len(expected)} profiles differ from a clean run's; the first: {wrong[0]}"
    assert set(latest) == set(expected)
    acked_subjects = {e["subject"]["subject_id"] for e in events if e["meta"]["event_id"] in feed.acked}
    missing = acked_subjects - set(want_rows)
    # a subject may lack a profile only if the rules refused every record of it (a clean run has none)
    assert not missing & set(expected), f"{len(missing & set(expected))} acknowledged subjects have no row"
    print(f"{len(acked_subjects)} subjects acknowledged, {len(want_rows)} rows, {len(missing)} refused outright")


def test_the_read_model_waits_out_a_registry_outage(outage_stack: Settings) -> None:
    """The registry stops after the read-model worker started; profiles it has not seen the schema of
    arrive: the worker stays up, dead-letters nothing, writes nothing, and writes them all once the
    registry is back (the codec's `Unavailable`, waited out by the sink)."""
    settings = outage_stack.with_(
        topic_prefix=f"g{uuid.uuid4().hex[:10]}", database_url=f"sqlite:///{outage_stack.data_dir / 'read-g.db'}"
    )
    ctx = provisioned(settings)
    topic = ctx.topics.topic("credit.profile")
    subjects = [uscc(7000 + i) for i in range(100)]
    values = [ctx.codec.encode(f"{topic}-value", "CreditProfile", profile(s, 1)) for s in subjects]  # registry up
    log = settings.data_dir / "readmodel-registry.log"
    worker = spawn_worker(settings, "readmodel", log)
    offsets = Offsets(settings)
    p = local.paths(settings)
    producer = HealingProducer(publisher_config(settings, "outage-test"))
    try:
        wait_until("the read model migrated", lambda: "read model at migration" in log.read_text(), timeout=60)
        pid = local.read_pid(p, "registry")
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        wait_until("the registry stopped", lambda: not local.registry_ready(settings), timeout=30)
        try:
            for s, value in zip(subjects, values, strict=True):
                producer.send(topic, s.encode(), value)
            producer.flush(timeout=30)
            time.sleep(8)  # the worker fetches them and cannot read their schema
            assert worker.poll() is None, f"the read-model worker exited; see {log}"
            assert profile_rows(settings.database_url) == {}
            assert offsets.end(ctx.topics.dlq("credit.profile")) == 0
        finally:
            local.start_registry(settings, p)
            wait_until("the registry is back", lambda: local.registry_ready(settings), timeout=120)
        want = {s: 1 for s in subjects}
        wait_until("every profile is a row", lambda: profile_rows(settings.database_url) == want, timeout=60)
        assert worker.poll() is None
    finally:
        producer.close(timeout=10)
        if worker.poll() is None:
            stop_worker(worker)
        offsets.close()
    assert offsets.end(ctx.topics.dlq("credit.profile")) == 0
    text = log.read_text()
    faults = text.count("RegistryUnavailable, a transient fault")
    print(f"registry outage: {faults} fault lines in the read model's log")
    assert 1 <= faults <= 3, "one line per fault kind and 30 s"
    assert "stopped after 100 records" in text
