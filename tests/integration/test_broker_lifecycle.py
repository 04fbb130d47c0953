"""`broker stop` leaves none of the processes `broker start` began."""

from __future__ import annotations

from pathlib import Path

from ops.broker import local, processes
from topics.settings import Settings


def test_stop_ends_the_started_processes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_port=29092, controller_port=29093, registry_port=28081)
    local.start(settings, say=print)
    p = local.paths(settings)
    pids = [local.read_pid(p, "kafka"), local.read_pid(p, "registry")]
    assert all(pid and processes.alive(pid) for pid in pids)
    assert [row[3].endswith("ready") for row in local.status(settings)] == [True, True]
    stopped = local.stop(settings, say=print)
    assert sorted(stopped) == sorted(pids)  # type: ignore[type-var]
    assert not any(processes.alive(pid) for pid in pids if pid)
    assert [row[3] for row in local.status(settings)] == ["stopped", "stopped"]
