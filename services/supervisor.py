"""The supervisor of `tongcheng up`: one process per child, a crashed child restarted with backoff,
the whole stack stopped only when asked (Ctrl-C or SIGTERM). It knows nothing of Kafka."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypedDict

Policy = Literal["always", "on-failure", "never"]
State = Literal["starting", "running", "backoff", "exited", "failed", "stopped"]


class ChildStatus(TypedDict):
    """One child's line of the status (the table `show` prints, `children` of the status file)."""

    child: str
    pid: int | None
    state: State
    uptime_s: float | None
    restarts: int
    last_exit: str | None
    restart_in_s: float | None
    log: str


class StatusFile(TypedDict):
    """The status file (`up-status.json` in the log directory), for other tools."""

    updated: str
    supervisor_pid: int
    children: list[ChildStatus]


@dataclass(frozen=True)
class Child:
    """What to run: `argv` with stdout and stderr appended to `log`. `on-failure` suits a finite job."""

    name: str
    argv: Sequence[str]
    log: Path
    restart: Policy = "always"
    #: environment variables set for it on top of the supervisor's own
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """`first` seconds after a crash, doubling up to `most`; a child that stayed up `reset_after`
    seconds starts again from `first`."""

    first: float = 1.0
    factor: float = 2.0
    most: float = 30.0
    reset_after: float = 60.0


@dataclass
class _Run:
    spec: Child
    proc: subprocess.Popen[bytes] | None = None
    state: State = "starting"  # running, backoff, exited (0, not restarted), failed, stopped
    started: float = 0.0
    restarts: int = 0
    streak: int = 0  # crashes in a row without a long enough run between them
    due: float = 0.0
    last_exit: str | None = None
    delays: list[float] = field(default_factory=list)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "could not start"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _out(message: str) -> None:
    print(message, flush=True)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        status_file: Path,
        say: Callable[[str], None] = _out,
        err: Callable[[str], None] = _err,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        tick: float = 0.2,
        status_every: float = 60.0,
    ) -> None:
        self.runs = {c.name: _Run(c) for c in children}
        self.status_file = status_file
        self.say, self.err, self.backoff = say, err, backoff
        self.clock, self.sleep, self.tick, self.status_every = clock, sleep, tick, status_every
        self.shown = 0.0
        self.stopped = False

    def start(self) -> None:
        for run in self.runs.values():
            self._spawn(run)
            pid = run.proc.pid if run.proc else "-"
            self.say(f"started {run.spec.name} (pid {pid}), log {run.spec.log}")
        self.show()

    def run(self, stop: Callable[[], bool], stop_timeout: float = 30.0) -> None:
        """Supervise until `stop()` is true, then stop every child."""
        try:
            while not stop():
                self.step(stop)
                self.sleep(self.tick)
        finally:
            self.stop_all(stop_timeout)

    def step(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Notice exits, restart children whose delay is over, show the status when it is time."""
        now = self.clock()
        changed = False
        for run in self.runs.values():
            if run.state == "running" and run.proc is not None and run.proc.poll() is not None:
                self._exited(run, run.proc.returncode, now)
                changed = True
        restarted = False
        for run in self.runs.values():
            if run.state == "backoff" and now >= run.due and not stop():
                run.restarts += 1
                self._spawn(run)
                restarted = True
        if restarted or now - self.shown >= self.status_every:
            self.show()
        elif changed:
            self.write_status()

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM every child, wait up to `timeout` seconds for all of them, then kill the rest.
        Only the first call does anything."""
        if self.stopped:
            return
        self.stopped = True
        self.say("stopping ...")
        live = [r for r in self.runs.values() if r.proc is not None and r.proc.poll() is None]
        for run in live:
            assert run.proc is not None
            run.proc.send_signal(signal.SIGTERM)
        deadline = self.clock() + timeout
        for run in live:
            assert run.proc is not None
            try:
                run.proc.wait(timeout=max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
                self.err(f"{run.spec.name} did not stop in {timeout:g}s; killed")
        for run in self.runs.values():
            if run.state in ("running", "backoff", "starting"):
                run.state = "stopped"
        self.write_status()

    # --- status ----------------------------------------------------------------------------

    def status(self) -> list[ChildStatus]:
        now = self.clock()
        return [
            {
                "child": run.spec.name,
                "pid": run.proc.pid if run.proc is not None and run.state == "running" else None,
                "state": run.state,
                "uptime_s": round(now - run.started, 1) if run.state == "running" else None,
                "restarts": run.restarts,
                "last_exit": run.last_exit,
                "restart_in_s": round(max(0.0, run.due - now), 1) if run.state == "backoff" else None,
                "log": str(run.spec.log),
            }
            for run in self.runs.values()
        ]

    def show(self) -> None:
        rows = self.status()
        width = max([5, *(len(r["child"]) for r in rows)])
        lines = [f"{'child':{width}}  {'pid':>7}  {'state':9} {'uptime':>7}  restarts"]
        for r in rows:
            state = r["state"] + (f" {r['restart_in_s']:g}s" if r["restart_in_s"] is not None else "")
            uptime = _duration(r["uptime_s"]) if r["uptime_s"] is not None else "-"
            lines.append(f"{r['child']:{width}}  {r['pid'] or '-':>7}  {state:9} {uptime:>7}  {r['restarts']}")
        self.say("\n".join(lines))
        self.shown = self.clock()
        self.write_status(rows)

    def write_status(self, rows: list[ChildStatus] | None = None) -> None:
        """The status as JSON for other tools, replaced atomically so a reader never sees half of it."""
        body: StatusFile = {
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "supervisor_pid": os.getpid(),
            "children": rows if rows is not None else self.status(),
        }
        tmp = self.status_file.with_name(f".{self.status_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.status_file)

    # --- one child ---------------------------------------------------------------------------

    def _spawn(self, run: _Run) -> None:
        run.started = self.clock()
        try:
            with open(run.spec.log, "ab") as handle:
                if run.restarts:
                    handle.write(f"--- restart {run.restarts} at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\n".encode())
                    handle.flush()
                run.proc = subprocess.Popen(
                    list(run.spec.argv),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **run.spec.env} if run.spec.env else None,
                )
        except OSError as exc:
            self.err(f"{run.spec.name} could not start: {exc}")
            run.proc = None
            run.state = "running"  # counted as an exit right away, and restarted by its policy
            self._exited(run, None, run.started)
            return
        run.state = "running"

    def _exited(self, run: _Run, code: int | None, now: float) -> None:
        run.last_exit = describe_exit(code)
        policy = run.spec.restart
        if policy == "never" or (policy == "on-failure" and code == 0):
            run.state = "exited" if code == 0 else "failed"
            self.err(f"{run.spec.name} exited with {run.last_exit}; not restarted ({policy}), log {run.spec.log}")
            return
        if now - run.started >= self.backoff.reset_after:
            run.streak = 0
        delay = min(self.backoff.first * self.backoff.factor**run.streak, self.backoff.most)
        run.streak += 1
        run.delays.append(delay)
        run.state, run.due = "backoff", now + delay
        self.err(
            f"{run.spec.name} exited with {run.last_exit}; restart {run.restarts + 1} in {delay:g}s, log {run.spec.log}"
        )
