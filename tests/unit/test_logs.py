"""An outage must write a few lines a minute, each saying how many like it were held back."""

from __future__ import annotations

import logging

import pytest

from services.common import logs
from services.common.logs import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def out(clock: Clock) -> Lines:
    handler = Lines()
    handler.addFilter(RateLimit(window=30.0, clock=clock))
    return handler


def logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"test_logs.{name}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


def test_a_flood_is_one_line_per_window_with_the_count(clock: Clock, out: Lines) -> None:
    log = logger("conn", out)
    for i in range(10_000):  # the same failure against many nodes within one window
        clock.now += 0.001
        log.error("Unable connect to node with id %s: %s", i % 3, "Connect call failed")
    assert out.lines == ["ERROR test_logs.conn: Unable connect to node with id 0: Connect call failed"]
    clock.now += 30.0
    log.error("Unable connect to node with id %s: %s", 2, "Connect call failed")
    assert len(out.lines) == 2
    assert out.lines[1] == (
        "ERROR test_logs.conn: Unable connect to node with id 2: Connect call failed"
        " (and 9999 more like this in the last 40 s)"
    )
    clock.now += 30.0  # nothing held back in between: no count
    log.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    assert out.lines[2] == "ERROR test_logs.conn: Unable connect to node with id 1: Connect call failed"


def test_distinct_errors_do_not_hide_each_other(clock: Clock, out: Lines) -> None:
    a, b = logger("a", out), logger("b", out)
    for _ in range(3):
        a.error("Failed fetch messages from %s", 1)
        a.warning("Failed fetch messages from %s", 1)  # another level
        a.error("Metadata request failed: %s", "timeout")  # another template
        b.error("Failed fetch messages from %s", 1)  # another logger
    assert len(out.lines) == 4


def test_info_and_below_pass_untouched(clock: Clock, out: Lines) -> None:
    log = logger("info", out)
    for _ in range(5):
        log.info("progress %d", 1)
        log.debug("send %d", 1)
    assert len(out.lines) == 10


def test_a_record_through_two_handlers_is_decided_once(clock: Clock) -> None:
    limit = RateLimit(window=30.0, clock=clock)
    first, second = Lines(), Lines()
    for handler in (first, second):
        handler.addFilter(limit)
    log = logger("two", first)
    log.addHandler(second)
    for _ in range(3):
        log.error("broker down")
    assert first.lines == second.lines == ["ERROR test_logs.two: broker down"]


def test_a_non_string_message_is_counted_too(clock: Clock, out: Lines) -> None:
    log = logger("exc", out)
    for _ in range(3):
        log.error(ConnectionError("refused"))
    clock.now += 31
    log.error(ConnectionError("refused"))
    assert out.lines == [
        "ERROR test_logs.exc: refused",
        "ERROR test_logs.exc: refused (and 2 more like this in the last 31 s)",
    ]


def test_install_filters_the_root_handlers_once(clock: Clock) -> None:
    root_handler = Lines()
    logging.root.addHandler(root_handler)
    try:
        first = logs.install(window=30.0, clock=clock)
        again = logs.install()
        assert first is again and root_handler.filters.count(first) == 1
        log = logging.getLogger("test_logs.root")
        for _ in range(100):
            log.error("Unable to request metadata from node %s", 1)
        assert root_handler.lines == ["ERROR test_logs.root: Unable to request metadata from node 1"]
    finally:
        logs.uninstall()
        logging.root.removeHandler(root_handler)
    assert not root_handler.filters
