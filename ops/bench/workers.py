"""The benchmark's workers: started as `tongcheng worker NAME` subprocesses, watched through their
metrics, and a group waited for until it settles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from kafka.admin import KafkaAdminClient

from ops.bench.report import say
from services.registry import processor
from topics import kafka_auth
from topics.settings import ENV, Settings

FIRST_TIMEOUT = 180.0  # for a worker's first consumed record (its start and table recovery included)
COUNTER = re.compile(r"^tongcheng_events_consumed_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


class BenchError(Exception):
    """The benchmark cannot go on: a worker exited, stalled, or its group did not settle."""


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV.values()}
    names = ("circle", "topic_prefix", "bootstrap", "registry_url", "data_dir", "metrics_port", "table_store")
    # and how the workers check signatures and find their credentials (each authenticates as its service)
    for name in (*names, "provenance", "security_protocol", "secrets_file", "ssl_cafile"):
        env[ENV[name]] = str(getattr(settings, name))
    env[ENV["roster_keys_file"]] = str(settings.roster_keys_path)
    env[ENV["database_url"]] = settings.database_url
    if settings.circle_file:
        env[ENV["circle_file"]] = str(settings.circle_file)
    return env


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


#: the metrics ports of a processor's k-th worker move by k * SCALE_OUT_PORT_STEP
SCALE_OUT_PORT_STEP = 100


def start_worker(settings: Settings, name: str, work: Path, index: int = 0) -> Worker:
    """The processor's worker number `index` (its log and metrics port its own)."""
    suffix = f"-{index + 1}" if index else ""
    log = work / "logs" / f"{settings.topic_prefix}-{name}{suffix}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    settings = settings.with_(metrics_port=settings.metrics_port + index * SCALE_OUT_PORT_STEP)
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "worker", name],
            env=worker_env(settings),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    say(f"  started `tongcheng worker {name}` (pid {proc.pid}), log {log}")
    return Worker(name, proc, processor(name).metrics_port(settings), log)


def consumed(workers: list[Worker], topics: set[str]) -> tuple[float, Counter[str]] | None:
    """The workers' tongcheng_events_consumed_total over `topics` (all outcomes, summed over the
    workers) and by outcome; None while the metrics of one do not answer."""
    outcomes: Counter[str] = Counter()
    for worker in workers:
        try:
            text = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            m = COUNTER.match(line)
            if m:
                labels = dict(LABEL.findall(m["labels"]))
                if labels.get("topic") in topics:
                    outcomes[labels.get("outcome", "")] += int(float(m["value"]))
    return float(sum(outcomes.values())), outcomes


def wait_for_group(settings: Settings, group: str, members: int, timeout: float = FIRST_TIMEOUT) -> float:
    """Until the group is stable with `members` members that each hold partitions; returns the seconds."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_auth.client_config(settings))
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            try:
                described = admin.describe_groups([group]).get(group) or {}
            except Exception:  # the coordinator is not known yet
                described = {}
            if str(described.get("group_state", "")).lower() == "stable":
                found = described.get("members") or []
                if len(found) == members and all(m.get("member_assignment") for m in found):
                    return time.monotonic() - started
            time.sleep(0.5)
    finally:
        admin.close()
    raise BenchError(f"group {group} did not settle with {members} members within {timeout:.0f}s")
