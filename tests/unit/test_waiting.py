"""A worker started before the bus waits for it, saying so once and then every 30 s, not every second."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from services.common.waiting import broker_problem, registry_problem, wait_for_bus
from tests.unit.stub_http import PORTS, Answer, closed_port, serve


class FakeTime:
    """A clock that moves only when the waiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def kafka_stub(reply: Callable[[bytes], bytes] | None = None) -> Iterator[str]:
    """A TCP server that reads one Kafka request and answers ApiVersions v0 (or `reply(request)`)."""

    def answer_api_versions(request: bytes) -> bytes:
        (correlation,) = struct.unpack_from(">i", request, 4)
        body = struct.pack(">ihi", correlation, 0, 1) + struct.pack(">hhh", 18, 0, 4)
        return struct.pack(">i", len(body)) + body

    make = reply or answer_api_versions
    listener = socket.socket()
    for port in PORTS:
        try:
            listener.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                (size,) = struct.unpack(">i", conn.recv(4))
                conn.sendall(make(conn.recv(size)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="test_waiting")
    return caplog


def said(log: pytest.LogCaptureFixture) -> list[str]:
    """What the waiting said, and only that: a Kafka client left by an earlier test may log too."""
    return [r.getMessage() for r in log.records if r.name == LOG.name]


LOG = logging.getLogger("test_waiting")


def test_an_unreachable_broker_is_named() -> None:
    port = closed_port()
    assert broker_problem(f"127.0.0.1:{port}") == f"127.0.0.1:{port}: connection refused"


def test_a_broker_that_answers_api_versions_is_ready() -> None:
    with kafka_stub() as bootstrap:
        assert broker_problem(f"127.0.0.1:{closed_port()},{bootstrap}") is None  # any broker of the list


def test_something_that_is_not_kafka_is_not_ready() -> None:
    with kafka_stub(lambda request: b"HTTP/1.1 400 Bad Request\r\n\r\n") as bootstrap:
        problem = broker_problem(bootstrap)
    assert problem is not None and "not Kafka" in problem


def test_waiting_for_the_broker_says_so_once_then_every_30_s(log: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    port = closed_port()
    through = wait_for_bus(
        f"127.0.0.1:{port}",
        "http://127.0.0.1:1",
        LOG,
        should_stop=lambda: fake.now >= 100,
        clock=fake.clock,
        sleep=fake.sleep,
        timeout=0.5,
    )
    assert through is False
    refused = f"(127.0.0.1:{port}: connection refused)"
    assert said(log) == [
        f"waiting for the Kafka broker at 127.0.0.1:{port} {refused} ...",
        f"still waiting for the Kafka broker at 127.0.0.1:{port}, for 30 s now {refused}",
        f"still waiting for the Kafka broker at 127.0.0.1:{port}, for 1 min 0 s now {refused}",
        f"still waiting for the Kafka broker at 127.0.0.1:{port}, for 1 min 30 s now {refused}",
    ]  # 100 attempts in 100 s, four lines


def test_through_when_the_registry_comes_back(log: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    answer = Answer(503, {"message": "starting"})

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if fake.now >= 45:
            answer.status, answer.body = 200, ["njmc.credit.record.v1-value"]

    with kafka_stub() as bootstrap, serve(answer) as url:
        assert wait_for_bus(bootstrap, url, LOG, clock=fake.clock, sleep=sleep)
    assert said(log) == [
        f"waiting for the schema registry at {url} (GET {url}/subjects answered 503) ...",
        f"still waiting for the schema registry at {url}, for 30 s now (GET {url}/subjects answered 503)",
        f"the schema registry at {url} answers, after 45 s of waiting",
    ]


def test_nothing_is_logged_when_the_bus_is_up(log: pytest.LogCaptureFixture) -> None:
    with kafka_stub() as bootstrap, serve(Answer(200, [])) as url:
        assert wait_for_bus(bootstrap, url, LOG)
    assert said(log) == []


def test_a_registry_url_that_is_not_the_registry_is_named() -> None:
    with serve(Answer(200, {"not": "a list"})) as url:
        assert registry_problem(url) == f"GET {url}/subjects did not answer with a list of subjects"
    assert registry_problem(f"http://127.0.0.1:{closed_port()}") is not None
