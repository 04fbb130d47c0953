"""The local stack's processes: started in their own sessions and recorded by pid, checked to be
still ours before they are signalled, and waited for until ready."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ops.broker.nodes import BrokerError, Paths

Say = Callable[[str], None]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def ours(pid: int, marker: str) -> bool:
    """Is `pid` still the process we started (its command line names our data directory)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return alive(pid)
    return marker in cmdline


def read_pid(p: Paths, name: str) -> int | None:
    try:
        return int(p.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def spawn(p: Paths, name: str, cmd: list[str], cwd: Path) -> int:
    log = open(p.logfile(name), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    p.pidfile(name).write_text(str(proc.pid))
    return proc.pid


def java(heap: str) -> list[str]:
    return [shutil.which("java") or "java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true"]


def wait(names: str | list[str], ready: Callable[[], bool], p: Paths, timeout: float, say: Say) -> None:
    """Until `ready()`; a process of `names` that exits meanwhile fails with the end of its log."""
    names = [names] if isinstance(names, str) else names
    deadline = time.monotonic() + timeout
    pids = {name: read_pid(p, name) for name in names}
    while time.monotonic() < deadline:
        if ready():
            return
        for name, pid in pids.items():
            if pid is not None and not alive(pid):
                tail = "\n".join(p.logfile(name).read_text(errors="replace").splitlines()[-20:])
                raise BrokerError(f"{name} exited during start-up; the end of {p.logfile(name)}:\n{tail}")
        time.sleep(0.5)
    logs = ", ".join(str(p.logfile(name)) for name in names)
    raise BrokerError(f"{' and '.join(names)} did not answer within {timeout:.0f}s; see {logs}")
