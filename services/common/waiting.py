"""Waiting for the bus at start: a worker started before the broker or the registry waits, not exits.

The broker is asked the way every Kafka client begins: a TCP connection and an ApiVersions
request (version 0, answered by every broker from 0.10 to 4.x, which request processing enables
only once the broker has started). It is written here by hand rather than through a Kafka client
because a client library retries and logs on its own while the broker is away (the flood
`services.common.logs` holds back); here each attempt is one connection with a short timeout,
and the only lines are ours. The answer proves the broker serves requests, not that every
partition has a leader yet; the consumer and producer wait for those themselves.

The registry is asked `GET {registry_url}/subjects`, which the ccompat API answers with a list.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable

import httpx
from kafka.cluster import collect_hosts

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35  # still an answer: the broker is serving requests
CLIENT_ID = b"tongcheng-wait"
_CORRELATION = 0x7C0C


def _never() -> bool:
    return False


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    """host:port pairs as the Kafka clients read them (a missing port is 9092, IPv6 in brackets)."""
    return [(host, port) for host, port, _ in collect_hosts(bootstrap.replace("kafka://", ""), randomize=False)]


def _api_versions(host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None) -> None:
    """One ApiVersions v0 round trip (over TLS with `tls`; a SASL listener answers it before the
    client authenticates); raises OSError or ValueError when there is no proper answer."""
    header = struct.pack(">hhih", API_VERSIONS, 0, _CORRELATION, len(CLIENT_ID)) + CLIENT_ID
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(header)) + header)
        (size,) = struct.unpack(">i", _read(sock, 4))
        if not 6 <= size <= 1 << 20:
            raise ValueError(f"answered with something that is not Kafka (frame of {size} bytes)")
        correlation, error = struct.unpack_from(">ih", _read(sock, size))
    if correlation != _CORRELATION:
        raise ValueError(f"answered another request (correlation id {correlation})")
    if error not in (0, UNSUPPORTED_VERSION):
        raise ValueError(f"answered ApiVersions with error code {error}")


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed the connection")
        data += chunk
    return data


def broker_problem(bootstrap: str, timeout: float = 3.0, tls: ssl.SSLContext | None = None) -> str | None:
    """None when a broker of `bootstrap` answers, else why none did (the last reason)."""
    problem = f"no broker in {bootstrap!r}"
    for host, port in _hosts(bootstrap):
        try:
            _api_versions(host, port, timeout, tls)
            return None
        except (OSError, ValueError) as exc:
            problem = f"{host}:{port}: {_reason(exc)}"
    return problem


def registry_problem(registry_url: str, timeout: float = 3.0) -> str | None:
    """None when the registry answers `GET /subjects` with a list, else why not."""
    url = registry_url.rstrip("/") + "/subjects"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return _reason(exc)
    if response.status_code != 200:
        return f"GET {url} answered {response.status_code}"
    try:
        if isinstance(response.json(), list):
            return None
    except ValueError:
        pass
    return f"GET {url} did not answer with a list of subjects"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout | httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def wait_for_bus(
    bootstrap: str,
    registry_url: str,
    log: logging.Logger,
    should_stop: Callable[[], bool] = _never,
    every: float = 30.0,
    *,
    poll: float = 1.0,
    timeout: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    tls: ssl.SSLContext | None = None,
) -> bool:
    """Block until the Kafka broker and then the schema registry answer; False if `should_stop()`
    became true first. Logs one line when it starts waiting for either, then at most one line per
    `every` seconds saying how long, and one line when it is through. Nothing when both answer at once.
    """
    checks: list[tuple[str, Callable[[], str | None]]] = [
        (f"the Kafka broker at {bootstrap}", lambda: broker_problem(bootstrap, timeout, tls)),
        (f"the schema registry at {registry_url}", lambda: registry_problem(registry_url, timeout)),
    ]
    for what, problem_of in checks:
        started: float | None = None
        told = 0.0
        while True:
            problem = problem_of()
            now = clock()
            if problem is None:
                if started is not None:
                    log.warning("%s answers, after %s of waiting", what, _duration(now - started))
                break
            if started is None:
                started = told = now
                log.warning("waiting for %s (%s) ...", what, problem)
            elif now - told >= every:
                told = now
                log.warning("still waiting for %s, for %s now (%s)", what, _duration(now - started), problem)
            if should_stop():
                return False
            sleep(poll)
            if should_stop():
                return False
    return True


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
