"""A tiny real HTTP server and a closed port, for testing how clients classify what they meet.

Ports stay below 32768, out of the kernel's ephemeral range, so they do not collide with
outgoing connections of other suites running on the machine.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORTS = range(28100, 28990)


def closed_port(preferred: int = 28999) -> int:
    """A loopback port nothing listens on (connections are refused)."""
    for port in (preferred, *PORTS):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no closed loopback port below 32768")


class Answer:
    """What the server answers every request with (bytes as they are, anything else as JSON)."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.status = status
        self.body = body
        self.paths: list[str] = []


@contextmanager
def serve(answer: Answer) -> Iterator[str]:
    """Serve `answer` on 127.0.0.1 in a thread; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            answer.paths.append(self.path)
            body = answer.body
            raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = None
    for port in PORTS:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            break
        except OSError:
            continue
    if server is None:
        raise RuntimeError("no free loopback port below 32768")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
