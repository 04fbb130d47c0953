"""`tongcheng broker start|stop|status`: the lifecycle of the KRaft nodes (broker+controller) and
Apicurio; their configuration is in `nodes.py`, the jars in `artifacts.py`, the pid files and
waiting in `processes.py`, and what the running stack answers (readiness, SCRAM users) in `cluster.py`.

One combined node by default; with `TONGCHENG_BROKER_NODES=3` (`broker start --nodes 3`) a
cluster of three combined nodes on loopback, from the same jars: a three-voter quorum and three
brokers, so that one node may die while every topic keeps a leader and two in-sync replicas.

The first start fetches Apache Kafka and Apicurio Registry through Maven into the cache
directory, so later starts work offline. Processes are started in their own sessions and
recorded by pid; `stop` signals only those pids, and only if they still are our processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from functools import partial

from ops.broker.artifacts import ensure_artifacts
from ops.broker.cluster import ensure_users, kafka_ready, live_brokers, registry_ready
from ops.broker.nodes import (
    APICURIO_VERSION,
    HERE,
    KAFKA_VERSION,
    BrokerError,
    Node,
    Paths,
    admin_secret,
    format_marker,
    kafka_properties,
    node,
    nodes,
    paths,
)
from ops.broker.processes import Say, alive, java, ours, port_open, read_pid, spawn, wait
from topics import kafka_auth
from topics.kafka_auth import MECHANISM
from topics.settings import Settings


def start_kafka(settings: Settings, p: Paths, say: Say, n: Node | None = None) -> int:
    """Start node `n` (the only node when None), formatting its storage first if it is new; every
    node of a cluster is formatted with the same cluster id, kept in the data directory."""
    n = n or node(settings)
    n.data.mkdir(parents=True, exist_ok=True)
    formatted = (n.data / "logs" / "meta.properties").exists()
    secret = admin_secret(settings, n, formatted)
    props = kafka_properties(settings, p, secret, n)
    classpath = f"{p.kafka_libs}/*"
    log4j = f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}"
    if not formatted:
        cmd = [
            *java("256m"),
            log4j,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _cluster_id(settings, p, classpath),
            "-c",
            str(props),
        ]
        if secret is not None:  # the first SCRAM user, so that admin can create the others
            cmd += ["--add-scram", f"{MECHANISM}=[name={kafka_auth.ADMIN},password={secret}]"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
        format_marker(n).write_text("plaintext\n" if secret is None else "scram\n")
        say(f"formatted KRaft storage in {n.data / 'logs'}" + ("" if secret is None else " with SCRAM users"))
    if secret is None:
        say(
            "WARNING: the broker listens with PLAINTEXT and no authentication or ACLs: "
            "anyone who reaches its port can read and write every topic"
        )
    heap = "1g" if settings.broker_nodes == 1 else "512m"  # three JVMs share the machine with the workers
    cmd = [*java(heap), log4j, f"-Dkafka.logs.dir={n.data}", "-cp", classpath, "kafka.Kafka", str(props)]
    return spawn(p, n.name, cmd, n.data)


def _cluster_id(settings: Settings, p: Paths, classpath: str) -> str:
    """A new cluster id for a single node; the cluster's own, made once, for the nodes of a cluster."""
    stored = p.data / "kafka-cluster-id"
    if settings.broker_nodes > 1 and stored.exists():
        return stored.read_text().strip()
    result = subprocess.run(
        [*java("128m"), "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], capture_output=True, text=True
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        raise BrokerError(f"kafka-storage random-uuid failed:\n{result.stdout}{result.stderr}")
    if settings.broker_nodes > 1:
        stored.write_text(lines[-1].strip() + "\n")
    return lines[-1].strip()


def start_registry(settings: Settings, p: Paths) -> int:
    p.registry_data.mkdir(parents=True, exist_ok=True)
    cmd = [
        *java("512m"),
        f"-Dquarkus.http.port={settings.registry_port}",
        "-Dquarkus.http.host=127.0.0.1",
        f"-Dapicurio.datasource.url=jdbc:h2:file:{p.registry_data / 'registry'}",
        "-Dquarkus.log.level=WARN",
        "-jar",
        str(p.registry_jar),
    ]
    return spawn(p, "registry", cmd, p.registry_data)


def _start_one(name: str, ports: list[int], launch: Callable[[], int], p: Paths, say: Say) -> None:
    pid = read_pid(p, name)
    if pid and alive(pid) and ours(pid, str(p.data)):
        say(f"{name} already running (pid {pid})")
        return
    for port in ports:
        if port_open(port):
            raise BrokerError(
                f"port {port} on 127.0.0.1 is taken by another process; choose another port "
                f"(TONGCHENG_{'REGISTRY' if name == 'registry' else 'KAFKA'}_PORT) or stop it"
            )
    pid = launch()
    say(f"started {name} (pid {pid}), log {p.logfile(name)}")


def start(settings: Settings, say: Say = print, timeout: float = 120.0) -> None:
    p = paths(settings)
    p.data.mkdir(parents=True, exist_ok=True)
    ensure_artifacts(p, say)
    members = nodes(settings, p)
    for n in members:
        _start_one(n.name, [n.client_port, n.controller_port], partial(start_kafka, settings, p, say, n), p, say)
    _start_one("registry", [settings.registry_port], partial(start_registry, settings, p), p, say)
    wait([n.name for n in members], lambda: kafka_ready(settings), p, timeout, say)
    if not settings.insecure:
        created = ensure_users(settings)
        if created:
            say(f"created SCRAM users {', '.join(created)}; their secrets are in {settings.secrets_file}")
    wait(["registry"], lambda: registry_ready(settings), p, timeout, say)
    quorum = f", {len(members)} combined KRaft nodes" if len(members) > 1 else ""
    say(f"kafka    bootstrap {settings.bootstrap} ({settings.security_protocol}{quorum})")
    say(f"registry {settings.registry_url}")


def _recorded(p: Paths) -> list[str]:
    """The names of the Kafka nodes with a pid file in this data directory."""
    return sorted(f.stem for f in p.data.glob("kafka*.pid"))


def stop(settings: Settings, say: Say = print, timeout: float = 30.0) -> list[int]:
    """Stop the processes `start` recorded (every node with a pid file, whatever the node count of
    these settings); returns the pids it signalled. The nodes of a cluster are signalled together:
    the last one left would otherwise wait for a quorum that has gone."""
    p = paths(settings)
    signalled: dict[str, int] = {}
    for name in ("registry", *_recorded(p)):
        pid = read_pid(p, name)
        if pid is None:
            continue
        if alive(pid) and ours(pid, str(p.data)):
            os.kill(pid, signal.SIGTERM)
            signalled[name] = pid
        else:
            say(f"{name}: pid {pid} is not running; clearing its pid file")
            p.pidfile(name).unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    for name, pid in signalled.items():
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            say(f"{name} (pid {pid}) did not stop in {timeout:.0f}s; killed")
        else:
            say(f"stopped {name} (pid {pid})")
        p.pidfile(name).unlink(missing_ok=True)
    if not signalled:
        say("nothing to stop")
    return list(signalled.values())


def signal_kafka(settings: Settings, sig: int, node_id: int | None = None) -> int:
    """Send `sig` to only one Kafka node of a running stack (the only one when `node_id` is None;
    SIGSTOP freezes it, as a long pause would); returns its pid. For drills and tests of an outage."""
    p = paths(settings)
    n = node(settings, node_id)
    pid = read_pid(p, n.name)
    if pid is None or not alive(pid) or not ours(pid, str(p.data)):
        raise BrokerError(f"no running {n.name} started from {p.data}")
    os.kill(pid, sig)
    return pid


def kill_kafka(settings: Settings, sig: int = signal.SIGKILL, timeout: float = 30.0, node_id: int | None = None) -> int:
    """Stop only one Kafka node of a running stack with `sig` (the registry and the other nodes keep
    running) and wait for it to exit; returns its pid. `restart_kafka` starts it again."""
    p = paths(settings)
    n = node(settings, node_id)
    pid = signal_kafka(settings, sig, n.id)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            raise BrokerError(f"{n.name} (pid {pid}) still running {timeout:.0f}s after signal {sig}")
        time.sleep(0.1)
    p.pidfile(n.name).unlink(missing_ok=True)
    return pid


def restart_kafka(settings: Settings, say: Say = print, timeout: float = 120.0, node_id: int | None = None) -> int:
    """Start a Kafka node again on the same data directory and ports after `kill_kafka`, and wait
    until it is registered as a broker again; returns the new pid."""
    p = paths(settings)
    n = node(settings, node_id)
    pid = read_pid(p, n.name)
    if pid is not None and alive(pid) and ours(pid, str(p.data)):
        raise BrokerError(f"{n.name} is still running (pid {pid})")
    for port in (n.client_port, n.controller_port):
        if port_open(port):
            raise BrokerError(f"port {port} on 127.0.0.1 is taken by another process")
    pid = start_kafka(settings, p, say, n)
    say(f"started {n.name} (pid {pid}), log {p.logfile(n.name)}")
    wait([n.name], lambda: kafka_ready(settings, {n.id}) and port_open(n.client_port), p, timeout, say)
    return pid


def status(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(name, version, endpoint, state) rows: one per Kafka node, and the registry."""
    p = paths(settings)
    live = live_brokers(settings)
    rows = []
    checks: list[tuple[str, str, str, Callable[[], bool]]] = [
        (n.name, KAFKA_VERSION, f"127.0.0.1:{n.client_port}", partial(set.__contains__, live, n.id))
        for n in nodes(settings, p)
    ]
    checks.append(("registry", f"apicurio {APICURIO_VERSION}", settings.registry_url, lambda: registry_ready(settings)))
    for name, version, endpoint, ready in checks:
        pid = read_pid(p, name)
        if pid and alive(pid):
            state = f"pid {pid}, " + ("ready" if ready() else "starting or not answering")
        elif ready():
            state = "answering, but not started by this data directory"
        else:
            state = "stopped"
        rows.append((name, version, endpoint, state))
    return rows
