"""The real stack: Apache Kafka (KRaft) and Apicurio from Maven Central, on test ports.

Each test gets its own topic prefix, so its topics, DLQs and consumer groups are its own.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from ops.broker import local
from ops.bus import provision_bus
from ops.chaos import probes
from services.common.keys import KeyStore
from topics.context import Context, build_context
from topics.settings import Settings
from topics.subscriber import Subscriber

#: every test port moves by TONGCHENG_TEST_PORT_SHIFT, so two suites can run side by side; all stay
#: below Linux's ephemeral range (32768-60999)
PORT_SHIFT = int(os.environ.get("TONGCHENG_TEST_PORT_SHIFT", "0"))
TEST_PORTS = {
    name: port + PORT_SHIFT
    for name, port in {"kafka_port": 19092, "controller_port": 19093, "registry_port": 18081, "api_port": 18000}.items()
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data = tmp_path_factory.mktemp("stack")
    # the secrets file named, not derived: settings of a test with a data directory of its own
    # (and the workers it spawns) still find the principals' secrets of the session's broker
    settings = Settings(data_dir=data, secrets_file=data / "secrets" / "scram.json", **TEST_PORTS)
    local.start(settings, say=lambda m: print(m))
    KeyStore(settings).ensure()  # every city's signing key, as `tongcheng up` makes them
    yield settings
    local.stop(settings, say=lambda m: print(m))


def fresh_settings(stack: Settings, **changes: object) -> Settings:
    return stack.with_(topic_prefix=f"t{uuid.uuid4().hex[:10]}", **changes)


def clocked_settings(
    stack: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    now: datetime,
    metrics_port: int,
    sweep_seconds: float = 1.0,
) -> Settings:
    """Fresh settings for workers that share a data directory and an injected clock file set to `now`."""
    data = tmp_path_factory.mktemp(name)
    clock_file = data / "clock"
    clock_file.write_text(now.isoformat())
    return fresh_settings(
        stack, data_dir=data, metrics_port=metrics_port, clock_file=clock_file, sweep_seconds=sweep_seconds
    )


def provisioned(settings: Settings, clock: object | None = None) -> Context:
    ctx = build_context(settings, clock)  # type: ignore[arg-type]
    provision_bus(ctx)
    return ctx


@pytest.fixture
def ctx(stack: Settings) -> Context:
    """A context on its own freshly provisioned topics."""
    return provisioned(fresh_settings(stack))


def spawn_worker(settings: Settings, service: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """`tongcheng worker SERVICE` as a subprocess, its log appended to <data dir>/<service>.log."""
    return probes.spawn_worker(settings, service, settings.data_dir / f"{service}.log", **extra_env)


def read_until(
    ctx: Any, event_type: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
) -> list[dict[str, Any]]:
    """Every event on a topic, read from the beginning until `until(events)` holds."""
    found: list[dict[str, Any]] = []
    sub = Subscriber(ctx, [event_type], from_beginning=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for d in sub.poll(timeout_ms=300):
                assert d.event is not None, d.error
                found.append(d.event)
            if until(found):
                return found
    finally:
        sub.close()
    raise AssertionError(f"{event_type} never reached the expected state in {timeout}s: {found}")


def latest(
    ctx: Any, event_type: str, key: str, until: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> dict[str, Any]:
    """The newest event per `key` on a topic, read from the beginning until `until` holds."""
    events = read_until(ctx, event_type, lambda found: until({e[key]: e for e in found}), timeout)
    return {e[key]: e for e in events}


def dead_letters(ctx: Any, event_type: str, count: int, timeout: float = 60) -> list[Any]:
    """At least `count` deliveries from an event type's DLQ (fewer if the timeout passes)."""
    sub = Subscriber(ctx, [ctx.topics.dlq(event_type)], from_beginning=True)
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            got += sub.poll(timeout_ms=300)
    finally:
        sub.close()
    return got


def metric_at(port: int, name: str, **labels: str) -> float:
    """One sample from a worker's metrics endpoint (0 when absent); waits for it to listen."""
    deadline = time.monotonic() + 30
    while True:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    sample = f"{name}{{{want}}} " if want else f"{name} "
    for line in text.splitlines():
        if line.startswith(sample):
            return float(line.split()[-1])
    return 0.0
