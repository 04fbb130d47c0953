"""`tongcheng broker start|stop|status`: the KRaft nodes (broker+controller) and Apicurio.

One combined node by default; with `TONGCHENG_BROKER_NODES=3` (`broker start --nodes 3`) a
cluster of three combined nodes on loopback, from the same jars: a three-voter quorum and three
brokers, so that one node may die while every topic keeps a leader and two in-sync replicas.

The first start fetches Apache Kafka and Apicurio Registry through Maven into the cache
directory, so later starts work offline. Processes are started in their own sessions and
recorded by pid; `stop` signals only those pids, and only if they still are our processes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from ops import certs
from schemas.errors import TongchengError
from topics import kafka_auth
from topics.kafka_auth import MECHANISM
from topics.settings import ENV, Settings

KAFKA_VERSION = "4.1.2"
APICURIO_VERSION = "3.0.9"  # the newest 3.x line that runs on Java 17
HERE = Path(__file__).resolve().parent
Say = Callable[[str], None]


class BrokerError(TongchengError):
    pass


@dataclass(frozen=True)
class Paths:
    cache: Path
    data: Path

    @property
    def kafka_libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def registry_dir(self) -> Path:
        return self.cache / f"apicurio-registry-{APICURIO_VERSION}"

    @property
    def registry_jar(self) -> Path:
        return self.registry_dir / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"

    @property
    def kafka_data(self) -> Path:
        return self.data / "kafka"

    @property
    def registry_data(self) -> Path:
        return self.data / "registry"

    def pidfile(self, name: str) -> Path:
        return self.data / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.data / f"{name}.log"


def paths(settings: Settings) -> Paths:
    return Paths(settings.cache_dir, settings.data_dir)


@dataclass(frozen=True)
class Node:
    """One KRaft node: its id, the name of its pid and log files, its ports and its data directory."""

    id: int
    name: str
    client_port: int
    controller_port: int
    data: Path


def nodes(settings: Settings, p: Paths | None = None) -> list[Node]:
    """The local nodes: `kafka` (id 1, data in kafka/) alone, or `kafka-1` to `kafka-3`."""
    p = p or paths(settings)
    if settings.broker_nodes == 1:
        return [Node(1, "kafka", settings.kafka_port, settings.controller_port, p.kafka_data)]
    return [
        Node(i + 1, f"kafka-{i + 1}", k, c, p.data / f"kafka-{i + 1}")
        for i, (k, c) in enumerate(zip(settings.kafka_ports, settings.controller_ports, strict=True))
    ]


def node(settings: Settings, node_id: int | None = None) -> Node:
    """The node with `node_id` (the only one when None on a single node)."""
    found = nodes(settings)
    if node_id is None:
        if len(found) != 1:
            raise BrokerError(f"the cluster has {len(found)} nodes: name one of ids 1 to {len(found)}")
        return found[0]
    for n in found:
        if n.id == node_id:
            return n
    raise BrokerError(f"no node {node_id}; the nodes are {', '.join(str(n.id) for n in found)}")


# --- prerequisites and artifacts -------------------------------------------------------------


def require_tools() -> None:
    java = shutil.which("java")
    if not java:
        raise BrokerError(
            "Java 17 or newer is required to run the local broker: "
            "install it (Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise BrokerError(
            f"Java 17 or newer is required, found: {out.splitlines()[0] if out else 'unknown'}; install openjdk-17"
        )
    if not shutil.which("mvn"):
        raise BrokerError(
            "Maven is required to fetch Kafka and Apicurio the first time: install it (Debian: apt-get install maven)"
        )


def _mvn(args: list[str], say: Say) -> None:
    cmd = ["mvn", "-B", "-q", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise BrokerError(f"Maven failed ({' '.join(cmd)}):\n{tail}")


def ensure_artifacts(p: Paths, say: Say = print) -> None:
    """Fetch Kafka's jars and Apicurio's runner once; later calls find them in the cache."""
    if not any(p.kafka_libs.glob("kafka_2.13-*.jar")):
        require_tools()
        say(f"fetching Apache Kafka {KAFKA_VERSION} through Maven (first start only) ...")
        tmp = p.kafka_libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        _mvn(
            [
                "-f",
                str(HERE / "pom.xml"),
                "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={tmp}",
            ],
            say,
        )
        tmp.rename(p.kafka_libs)
    if not p.registry_jar.exists():
        require_tools()
        say(f"fetching Apicurio Registry {APICURIO_VERSION} through Maven (first start only) ...")
        download = p.cache / "downloads"
        artifact = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
        _mvn(["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={download}"], say)
        archive = download / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
        tmp = p.registry_dir.with_name(p.registry_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(p.registry_dir)
        archive.unlink(missing_ok=True)


# --- processes -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
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


def _ours(pid: int, marker: str) -> bool:
    """Is `pid` still the process we started (its command line names our data directory)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return _alive(pid)
    return marker in cmdline


def read_pid(p: Paths, name: str) -> int | None:
    try:
        return int(p.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _spawn(p: Paths, name: str, cmd: list[str], cwd: Path) -> int:
    log = open(p.logfile(name), "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    log.close()
    p.pidfile(name).write_text(str(proc.pid))
    return proc.pid


def _kafka_properties(settings: Settings, p: Paths, admin_secret: str | None, n: Node) -> Path:
    """server.properties of node `n`; `admin_secret` None is the insecure mode (PLAINTEXT, no
    authorizer). The internal topics (offsets, transactions) get the replication of the catalogue's."""
    voters = ",".join(f"{m.id}@127.0.0.1:{m.controller_port}" for m in nodes(settings, p))
    cluster = settings.broker_nodes > 1
    rf, isr = (settings.replication_factor, settings.min_insync_replicas) if cluster else (1, 1)
    props = f"""# written by `tongcheng broker start`
process.roles=broker,controller
node.id={n.id}
controller.quorum.voters={voters}
listeners=CLIENT://127.0.0.1:{n.client_port},CONTROLLER://127.0.0.1:{n.controller_port}
advertised.listeners=CLIENT://127.0.0.1:{n.client_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
log.dirs={n.data / "logs"}
num.partitions=1
default.replication.factor={rf}
min.insync.replicas={isr}
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=6
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
unclean.leader.election.enable=false
"""
    if admin_secret is None:
        props += "listener.security.protocol.map=CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
    else:
        props += _security_properties(settings, p, admin_secret)
    path = n.data / "server.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the admin's secret
    with os.fdopen(fd, "w") as handle:
        handle.write(props)
    os.chmod(path, 0o600)
    return path


def _security_properties(settings: Settings, p: Paths, secret: str) -> str:
    """Clients on SCRAM-SHA-512 (the credentials live in the metadata log), the controller listener on
    PLAIN with a static admin entry (it must work before that log is read), the StandardAuthorizer
    denying what no ACL allows, `admin` the only super user."""
    client = settings.security_protocol  # SASL_PLAINTEXT, or SASL_SSL in the production profile
    scram = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{secret}";'
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{secret}" user_admin="{secret}";'
    )
    props = f"""listener.security.protocol.map=CLIENT:{client},CONTROLLER:SASL_PLAINTEXT
sasl.enabled.mechanisms={MECHANISM}
sasl.mechanism.inter.broker.protocol={MECHANISM}
sasl.mechanism.controller.protocol=PLAIN
listener.name.client.sasl.enabled.mechanisms={MECHANISM}
listener.name.client.{MECHANISM.lower()}.sasl.jaas.config={scram}
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
"""
    if client == "SASL_SSL":
        keystore, ca = certs.broker_files(p.data)
        for path in (keystore, ca):
            if not path.exists():
                raise BrokerError(
                    f"the production profile listens with SASL_SSL and needs {path}: "
                    "run `tongcheng certs generate` first"
                )
        props += f"""listener.name.client.ssl.keystore.type=PEM
listener.name.client.ssl.keystore.location={keystore}
listener.name.client.ssl.truststore.type=PEM
listener.name.client.ssl.truststore.location={ca}
"""
    return props


def _java(heap: str) -> list[str]:
    return [shutil.which("java") or "java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true"]


def _format_marker(n: Node) -> Path:
    return n.data / "security"


def _admin_secret(settings: Settings, n: Node, formatted: bool) -> str | None:
    """The admin's SCRAM secret for a secure start (None when insecure); refuses a data directory
    formatted without SCRAM credentials, which no secure client could use."""
    if settings.insecure:
        return None
    marker = _format_marker(n)
    store = kafka_auth.secret_store(settings)
    if formatted and (not marker.exists() or marker.read_text().strip() != "scram"):
        raise BrokerError(
            f"the broker data in {n.data} was formatted without SCRAM credentials (PLAINTEXT, no "
            "authentication), so no client could log in to it. Either start it as it was made, insecure "
            f"({ENV['security_protocol']}=PLAINTEXT or `tongcheng broker start --insecure-plaintext`), "
            f"or stop it and delete {n.data} (its topics and events are lost) so that the next start "
            "formats it with SCRAM users"
        )
    if formatted and kafka_auth.ADMIN not in store.read():
        raise BrokerError(
            f"the broker data in {n.data} was formatted with SCRAM users, but {store.path} has no "
            f"admin secret: restore that file, or delete {n.data} to start over"
        )
    return store.ensure([kafka_auth.ADMIN])[kafka_auth.ADMIN]


def start_kafka(settings: Settings, p: Paths, say: Say, n: Node | None = None) -> int:
    """Start node `n` (the only node when None), formatting its storage first if it is new; every
    node of a cluster is formatted with the same cluster id, kept in the data directory."""
    n = n or node(settings)
    n.data.mkdir(parents=True, exist_ok=True)
    formatted = (n.data / "logs" / "meta.properties").exists()
    secret = _admin_secret(settings, n, formatted)
    props = _kafka_properties(settings, p, secret, n)
    classpath = f"{p.kafka_libs}/*"
    log4j = f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}"
    if not formatted:
        cmd = [
            *_java("256m"),
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
        _format_marker(n).write_text("plaintext\n" if secret is None else "scram\n")
        say(f"formatted KRaft storage in {n.data / 'logs'}" + ("" if secret is None else " with SCRAM users"))
    if secret is None:
        say(
            "WARNING: the broker listens with PLAINTEXT and no authentication or ACLs: "
            "anyone who reaches its port can read and write every topic"
        )
    heap = "1g" if settings.broker_nodes == 1 else "512m"  # three JVMs share the machine with the workers
    cmd = [*_java(heap), log4j, f"-Dkafka.logs.dir={n.data}", "-cp", classpath, "kafka.Kafka", str(props)]
    return _spawn(p, n.name, cmd, n.data)


def _cluster_id(settings: Settings, p: Paths, classpath: str) -> str:
    """A new cluster id for a single node; the cluster's own, made once, for the nodes of a cluster."""
    stored = p.data / "kafka-cluster-id"
    if settings.broker_nodes > 1 and stored.exists():
        return stored.read_text().strip()
    result = subprocess.run(
        [*_java("128m"), "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], capture_output=True, text=True
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
        *_java("512m"),
        f"-Dquarkus.http.port={settings.registry_port}",
        "-Dquarkus.http.host=127.0.0.1",
        f"-Dapicurio.datasource.url=jdbc:h2:file:{p.registry_data / 'registry'}",
        "-Dquarkus.log.level=WARN",
        "-jar",
        str(p.registry_jar),
    ]
    return _spawn(p, "registry", cmd, p.registry_data)


def as_admin(settings: Settings) -> Settings:
    """The settings of ops commands on the local broker: the `admin` principal, its secret from the
    secrets file unless admin's own was given."""
    if settings.kafka_user == kafka_auth.ADMIN:
        return settings
    return settings.with_(kafka_user=kafka_auth.ADMIN, kafka_password="")


def live_brokers(settings: Settings) -> set[int]:
    """The ids of the brokers the cluster describes as registered and unfenced (empty when none answers)."""
    if not any(_port_open(port) for port in settings.kafka_ports):
        return set()
    from kafka.admin import KafkaAdminClient

    try:
        auth = kafka_auth.client_config(as_admin(settings))
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=3000, **auth)
        try:
            return {int(b["broker_id"]) for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")}
        finally:
            admin.close()
    except Exception:
        return set()


def active_controller(settings: Settings) -> int | None:
    """The node id of the quorum's leader, the active controller (DescribeQuorum; a client's
    DescribeCluster names any broker as the controller in KRaft)."""
    from kafka.admin import KafkaAdminClient

    try:
        auth = kafka_auth.client_config(as_admin(settings))
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=3000, **auth)
        try:
            quorum = admin.describe_metadata_quorum()
        finally:
            admin.close()
    except Exception:
        return None
    leader = quorum["topics"][0]["partitions"][0]["leader_id"]
    return int(leader) if leader is not None and leader >= 0 else None


def kafka_ready(settings: Settings, node_ids: set[int] | None = None) -> bool:
    """Every node (or those of `node_ids`) answers and is registered as a broker."""
    want = node_ids or {n.id for n in nodes(settings)}
    return want <= live_brokers(settings)


def ensure_users(settings: Settings) -> list[str]:
    """SCRAM users on the broker for every principal of the embedded setup that has none yet."""
    from topics import acl_sync, provision

    admin = provision.admin_client(as_admin(settings))
    try:
        return acl_sync.ensure_users(admin, settings)
    finally:
        admin.close()


def registry_ready(settings: Settings) -> bool:
    try:
        return httpx.get(settings.registry_url + "/subjects", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(names: str | list[str], ready: Callable[[], bool], p: Paths, timeout: float, say: Say) -> None:
    """Until `ready()`; a process of `names` that exits meanwhile fails with the end of its log."""
    names = [names] if isinstance(names, str) else names
    deadline = time.monotonic() + timeout
    pids = {name: read_pid(p, name) for name in names}
    while time.monotonic() < deadline:
        if ready():
            return
        for name, pid in pids.items():
            if pid is not None and not _alive(pid):
                tail = "\n".join(p.logfile(name).read_text(errors="replace").splitlines()[-20:])
                raise BrokerError(f"{name} exited during start-up; the end of {p.logfile(name)}:\n{tail}")
        time.sleep(0.5)
    logs = ", ".join(str(p.logfile(name)) for name in names)
    raise BrokerError(f"{' and '.join(names)} did not answer within {timeout:.0f}s; see {logs}")


def _start_one(name: str, ports: list[int], launch: Callable[[], int], p: Paths, say: Say) -> None:
    pid = read_pid(p, name)
    if pid and _alive(pid) and _ours(pid, str(p.data)):
        say(f"{name} already running (pid {pid})")
        return
    for port in ports:
        if _port_open(port):
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
    _wait([n.name for n in members], lambda: kafka_ready(settings), p, timeout, say)
    if not settings.insecure:
        created = ensure_users(settings)
        if created:
            say(f"created SCRAM users {', '.join(created)}; their secrets are in {settings.secrets_file}")
    _wait(["registry"], lambda: registry_ready(settings), p, timeout, say)
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
        if _alive(pid) and _ours(pid, str(p.data)):
            os.kill(pid, signal.SIGTERM)
            signalled[name] = pid
        else:
            say(f"{name}: pid {pid} is not running; clearing its pid file")
            p.pidfile(name).unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    for name, pid in signalled.items():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
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
    if pid is None or not _alive(pid) or not _ours(pid, str(p.data)):
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
    while _alive(pid):
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
    if pid is not None and _alive(pid) and _ours(pid, str(p.data)):
        raise BrokerError(f"{n.name} is still running (pid {pid})")
    for port in (n.client_port, n.controller_port):
        if _port_open(port):
            raise BrokerError(f"port {port} on 127.0.0.1 is taken by another process")
    pid = start_kafka(settings, p, say, n)
    say(f"started {n.name} (pid {pid}), log {p.logfile(n.name)}")
    _wait([n.name], lambda: kafka_ready(settings, {n.id}) and _port_open(n.client_port), p, timeout, say)
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
        if pid and _alive(pid):
            state = f"pid {pid}, " + ("ready" if ready() else "starting or not answering")
        elif ready():
            state = "answering, but not started by this data directory"
        else:
            state = "stopped"
        rows.append((name, version, endpoint, state))
    return rows
