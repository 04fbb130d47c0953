"""The supervisor of `tongcheng up`, with real child processes: a crash is restarted with growing
delays, a finished job is left alone, and SIGTERM stops every child, stubborn ones too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.supervisor import Backoff, Child, Supervisor

ROOT = Path(__file__).resolve().parents[2]
CRASH = "import sys; sys.exit(1)"
SLEEP = "import time; print('ready', flush=True); time.sleep(600)"
DONE = "print('done')"
STUBBORN = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); exec(" + repr(SLEEP) + ")"
QUICK = Backoff(first=0.1, factor=2.0, most=0.4, reset_after=60.0)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class Output:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


def status(path: Path) -> dict[str, dict[str, Any]]:
    return {c["child"]: c for c in json.loads(path.read_text())["children"]}


def supervise_until(sup: Supervisor, what: str, done: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} not reached in {seconds}s: {sup.status()}"
        sup.step()
        time.sleep(0.02)


def test_a_crashing_child_is_restarted_with_growing_delays_and_the_others_keep_running(tmp_path: Path) -> None:
    out, err = Output(), Output()
    state = tmp_path / "up-status.json"
    children = [
        Child("crash", py(CRASH), tmp_path / "crash.log"),
        Child("sleeper", py(SLEEP), tmp_path / "sleeper.log"),
    ]
    sup = Supervisor(children, state, out, err, backoff=QUICK, tick=0.02)
    sup.start()
    try:
        sleeper_pid = status(state)["sleeper"]["pid"]
        supervise_until(sup, "4 restarts", lambda: status(state)["crash"]["restarts"] >= 4)
        # 0.1 s doubling, capped at 0.4 s
        assert sup.runs["crash"].delays[:4] == [0.1, 0.2, 0.4, 0.4]
        assert err.lines[:4] == [
            f"crash exited with code 1; restart {n} in {d}s, log {tmp_path / 'crash.log'}"
            for n, d in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.4))
        ]
        # a status table at start and after each restart, the same in the JSON file
        assert out.count("restarts") >= 5
        now = status(state)
        assert now["crash"]["last_exit"] == "code 1"
        assert now["sleeper"] == {**now["sleeper"], "pid": sleeper_pid, "state": "running", "restarts": 0}
        assert (tmp_path / "crash.log").read_text().count("--- restart") >= 4
    finally:
        sup.stop_all(timeout=5)
    assert {c["state"] for c in status(state).values()} == {"stopped"}


def test_a_child_that_stayed_up_long_enough_starts_again_from_the_first_delay(tmp_path: Path) -> None:
    state = tmp_path / "up-status.json"
    child = Child("flaky", py("import time, sys; time.sleep(0.3); sys.exit(2)"), tmp_path / "flaky.log")
    backoff = Backoff(first=0.1, factor=2.0, most=5.0, reset_after=0.25)
    sup = Supervisor([child], state, Output(), Output(), backoff=backoff, tick=0.02)
    sup.start()
    try:
        supervise_until(sup, "3 restarts", lambda: status(state)["flaky"]["restarts"] >= 3)
        assert sup.runs["flaky"].delays[:3] == [0.1, 0.1, 0.1]
    finally:
        sup.stop_all(timeout=5)


def test_a_finished_job_is_not_restarted_and_a_failed_one_only_by_its_policy(tmp_path: Path) -> None:
    state = tmp_path / "up-status.json"
    children = [
        Child("job", py(DONE), tmp_path / "job.log", restart="on-failure"),
        Child("job-fails", py(CRASH), tmp_path / "job-fails.log", restart="on-failure"),
        Child("once", py(CRASH), tmp_path / "once.log", restart="never"),
        Child("missing", [str(tmp_path / "no-such-program")], tmp_path / "missing.log", restart="never"),
    ]
    err = Output()
    sup = Supervisor(children, state, Output(), err, backoff=QUICK, tick=0.02)
    sup.start()
    try:
        supervise_until(
            sup,
            "the job done, the failed job restarted twice",
            lambda: (
                (s := status(state))["job"]["state"] == "exited"
                and s["once"]["state"] == "failed"
                and s["job-fails"]["restarts"] >= 2
            ),
        )
        now = status(state)
        assert (now["job"]["restarts"], now["job"]["last_exit"], now["job"]["pid"]) == (0, "code 0", None)
        assert (now["once"]["restarts"], now["once"]["last_exit"]) == (0, "code 1")
        assert (now["missing"]["state"], now["missing"]["last_exit"]) == ("failed", "could not start")
        assert f"job exited with code 0; not restarted (on-failure), log {tmp_path / 'job.log'}" in err.lines
        assert (tmp_path / "job.log").read_text() == "done\n"
    finally:
        sup.stop_all(timeout=5)


SUPERVISED = """
import sys
from pathlib import Path
from services.common.shutdown import StopFlag
from services.supervisor import Child, Supervisor

d = Path(sys.argv[1])
children = [
    Child("sleeper", [sys.executable, "-c", sys.argv[2]], d / "sleeper.log"),
    Child("stubborn", [sys.executable, "-c", sys.argv[3]], d / "stubborn.log"),
]
stop = StopFlag()
sup = Supervisor(children, d / "up-status.json", tick=0.05)
sup.start()
sup.run(stop, stop_timeout=1.0)
print("returned", flush=True)
"""


def test_sigterm_stops_every_child_kills_a_stubborn_one_and_returns(tmp_path: Path) -> None:
    state = tmp_path / "up-status.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED, str(tmp_path), SLEEP, STUBBORN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        logs = [tmp_path / "sleeper.log", tmp_path / "stubborn.log"]
        while not (state.exists() and all(log.exists() and "ready" in log.read_text() for log in logs)):
            assert proc.poll() is None and time.monotonic() < deadline, "the children did not start"
            time.sleep(0.02)
        pids = [c["pid"] for c in status(state).values()]
        assert all(pids)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stubborn did not stop in 1s; killed" in output
    assert output.rstrip().endswith("returned")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert {c["state"] for c in status(state).values()} == {"stopped"}
