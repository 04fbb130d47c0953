"""`tongcheng bench credit --restarts`: what the state costs a worker, and how fast it comes back.

Run after the throughput phase, on the worker that processed the backlog (caught up):

1. **Memory.** Its peak RSS (`VmHWM`), and per subject of the backlog.
2. **Changelog.** The bytes of its group's table changelogs on the broker's disk, per subject.
3. **Kill-restart.** SIGKILL; a few new records are published; a new worker starts on the same
   data directory: the seconds from its start to its first consumed record (the killed member's
   session timeout included), and the changelog records it read back.
4. **Clean restart.** The same after SIGTERM.
5. **Full rebuild.** The worker's store directory removed (an empty disk): the changelog records
   it reads back per subject (compaction keeps that near one), and the seconds to its first record.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer

from ops.bench.inputs import Inputs
from ops.bench.plans import Plan
from ops.bench.report import say
from ops.bench.workers import Worker, consumed, start_worker
from ops.bench.workload import credit_records
from ops.broker import local
from topics.settings import Settings

#: how long a restarted worker may take to its first record (a full rebuild of a large state included)
FIRST_TIMEOUT = 900.0
RECOVERED = re.compile(r'^tongcheng_changelog_recovered_records_total\{[^}]*replica="active"[^}]*\} (\S+)$')


def peak_rss(pid: int) -> int:
    """The peak resident set size of a process so far, in bytes (VmHWM of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def changelog_bytes(settings: Settings, group: str) -> int:
    """Bytes of the group's table changelog segments on the local broker's disk."""
    total = 0
    for node in local.nodes(settings):
        for part in (node.data / "logs").glob(f"{group}-*-changelog-*"):
            total += sum(f.stat().st_size for f in part.glob("*.log"))
    return total


def recovered(port: int) -> int:
    """Changelog records a worker read back into the stores of the partitions it owns."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(int(float(m[1])) for line in text.splitlines() if (m := RECOVERED.match(line)))


def measure(
    settings: Settings,
    worker: Any,
    start: Callable[[], Any],
    publish_new: Callable[[], None],
    consumed: Callable[[list[Any]], float | None],
    subjects: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The figures above; `worker` is running and caught up, `start()` starts another like it,
    `publish_new()` publishes a few records it has not seen, `consumed([w])` reads its counter."""
    group = settings.group_id("credit")
    out: dict[str, Any] = {"subjects": subjects, "store": settings.table_store}
    rss = peak_rss(worker.proc.pid)
    out["peak_rss_mb"] = round(rss / 2**20, 1)
    out["rss_bytes_per_subject"] = round(rss / subjects)
    out["changelog_bytes_per_subject"] = round(changelog_bytes(settings, group) / subjects)
    say(f"restarts: peak RSS {out['peak_rss_mb']} MB; changelog {out['changelog_bytes_per_subject']} B/subject")

    def stop(sig: int) -> None:
        worker.proc.send_signal(sig)
        worker.proc.wait(timeout=120)

    def restart(what: str) -> tuple[Any, float, int]:
        nonlocal worker
        publish_new()
        began = time.monotonic()
        worker = start()
        while not consumed([worker]):
            if worker.proc.poll() is not None or time.monotonic() - began > FIRST_TIMEOUT:
                raise RuntimeError(f"the {what} worker processed nothing; see {worker.log}")
            time.sleep(0.05)
        took = time.monotonic() - began
        read = recovered(worker.port)
        say(f"  {what}: first new record processed {took:.1f}s after the start; {read} changelog records read")
        return worker, took, read

    stop(signal.SIGKILL)
    worker, out["kill_restart_s"], out["kill_restart_changelog_read"] = restart("kill-restart")
    stop(signal.SIGTERM)
    worker, out["clean_restart_s"], out["clean_restart_changelog_read"] = restart("clean restart")
    stop(signal.SIGTERM)
    stores = settings.data_dir / "faust" / group
    if stores.exists():
        shutil.rmtree(stores)  # an empty disk: the stores come back from the changelogs alone
    worker, out["rebuild_s"], read = restart("full rebuild")
    out["rebuild_changelog_records_per_subject"] = round(read / subjects, 2)
    worker.stop()
    out["kill_restart_s"] = round(out["kill_restart_s"], 1)
    out["clean_restart_s"] = round(out["clean_restart_s"], 1)
    out["rebuild_s"] = round(out["rebuild_s"], 1)
    return out


def on_caught_up(
    settings: Settings,
    work: Path,
    plan: Plan,
    inputs: Inputs,
    producer: KafkaProducer,
    worker: Worker,
    workers: list[Worker],
    topics: set[str],
) -> dict[str, Any]:
    """`measure` on the worker that has just caught up on the backlog; each worker it starts joins
    `workers` (stopped by the caller whatever happens)."""
    from ops.bench.run import publish

    subjects = len({p.key for stage in plan.stages for p in stage})
    fresh = credit_records(10**9, subjects, inputs.cities, inputs.today, seed=inputs.seed + 1)

    def start() -> Worker:
        workers.append(start_worker(settings, plan.worker, work))
        return workers[-1]

    def publish_new() -> None:
        publish(producer, [inputs.prepare(city, "credit.record", body) for city, body in islice(fresh, 100)])

    def first(ws: list[Worker]) -> float | None:
        look = consumed(ws, topics)
        return look[0] if look else None

    return measure(settings, worker, start, publish_new, first, subjects, say)
