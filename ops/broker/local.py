"""`tongcheng broker start|stop|status`: one KRaft node (broker+controller) and Apicurio.

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
from pathlib import Path

import httpx

from ops import certs
from services.common import kafka_auth
from services.common.errors import TongchengError
from services.common.kafka_auth import MECHANISM
from services.common.settings import ENV, Settings

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


def _kafka_properties(settings: Settings, p: Paths, admin_secret: str | None) -> Path:
    """server.properties; `admin_secret` None is the insecure mode (PLAINTEXT, no authorizer)."""
    k, c = settings.kafka_port, settings.controller_port
    props = f"""# written by `tongcheng broker start`
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{c}
listeners=CLIENT://127.0.0.1:{k},CONTROLLER://127.0.0.1:{c}
advertised.listeners=CLIENT://127.0.0.1:{k}
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
log.dirs={p.kafka_data / "logs"}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""
    if admin_secret is None:
        props += "listener.security.protocol.map=CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
    else:
        props += _security_properties(settings, p, admin_secret)
    path = p.kafka_data / "server.properties"
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


def _format_marker(p: Paths) -> Path:
    return p.kafka_data / "security"


def _admin_secret(settings: Settings, p: Paths, formatted: bool) -> str | None:
    """The admin's SCRAM secret for a secure start (None when insecure); refuses a data directory
    formatted without SCRAM credentials, which no secure client could use."""
    if settings.insecure:
        return None
    marker = _format_marker(p)
    store = kafka_auth.secret_store(settings)
    if formatted and (not marker.exists() or marker.read_text().strip() != "scram"):
        raise BrokerError(
            f"the broker data in {p.kafka_data} was formatted without SCRAM credentials (PLAINTEXT, no "
            "authentication), so no client could log in to it. Either start it as it was made, insecure "
            f"({ENV['security_protocol']}=PLAINTEXT or `tongcheng broker start --insecure-plaintext`), "
            f"or stop it and delete {p.kafka_data} (its topics and events are lost) so that the next start "
            "formats it with SCRAM users"
        )
    if formatted and kafka_auth.ADMIN not in store.read():
        raise BrokerError(
            f"the broker data in {p.kafka_data} was formatted with SCRAM users, but {store.path} has no "
            f"admin secret: restore that file, or delete {p.kafka_data} to start over"
        )
    return store.ensure([kafka_auth.ADMIN])[kafka_auth.ADMIN]


def start_kafka(settings: Settings, p: Paths, say: Say) -> int:
    p.kafka_data.mkdir(parents=True, exist_ok=True)
    formatted = (p.kafka_data / "logs" / "meta.properties").exists()
    secret = _admin_secret(settings, p, formatted)
    props = _kafka_properties(settings, p, secret)
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
            _cluster_id(classpath),
            "-c",
            str(props),
        ]
        if secret is not None:  # the first SCRAM user, so that admin can create the others
            cmd += ["--add-scram", f"{MECHANISM}=[name={kafka_auth.ADMIN},password={secret}]"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
        _format_marker(p).write_text("plaintext\n" if secret is None else "scram\n")
        say(f"formatted KRaft storage in {p.kafka_data / 'logs'}" + ("" if secret is None else " with SCRAM users"))
    if secret is None:
        say(
            "WARNING: the broker listens with PLAINTEXT and no authentication or ACLs: "
            "anyone who reaches its port can read and write every topic"
        )
    cmd = [*_java("1g"), log4j, f"-Dkafka.logs.dir={p.kafka_data}", "-cp", classpath, "kafka.Kafka", str(props)]
    return _spawn(p, "kafka", cmd, p.kafka_data)


def _cluster_id(classpath: str) -> str:
    result = subprocess.run(
        [*_java("128m"), "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], capture_output=True, text=True
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        raise BrokerError(f"kafka-storage random-uuid failed:\n{result.stdout}{result.stderr}")
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


def kafka_ready(settings: Settings) -> bool:
    if not _port_open(settings.kafka_port):
        return False
    from kafka.admin import KafkaAdminClient

    try:
        auth = kafka_auth.client_config(as_admin(settings))
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=3000, **auth)
        try:
            admin.describe_cluster()
            return True
        finally:
            admin.close()
    except Exception:
        return False


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


def _wait(name: str, ready: Callable[[], bool], p: Paths, timeout: float, say: Say) -> None:
    deadline = time.monotonic() + timeout
    pid = read_pid(p, name)
    while time.monotonic() < deadline:
        if ready():
            return
        if pid is not None and not _alive(pid):
            tail = "\n".join(p.logfile(name).read_text(errors="replace").splitlines()[-20:])
            raise BrokerError(f"{name} exited during start-up; the end of {p.logfile(name)}:\n{tail}")
        time.sleep(0.5)
    raise BrokerError(f"{name} did not answer within {timeout:.0f}s; see {p.logfile(name)}")


def start(settings: Settings, say: Say = print, timeout: float = 120.0) -> None:
    p = paths(settings)
    p.data.mkdir(parents=True, exist_ok=True)
    ensure_artifacts(p, say)
    marker = str(p.data)
    for name, port, launch in (
        ("kafka", settings.kafka_port, lambda: start_kafka(settings, p, say)),
        ("registry", settings.registry_port, lambda: start_registry(settings, p)),
    ):
        pid = read_pid(p, name)
        if pid and _alive(pid) and _ours(pid, marker):
            say(f"{name} already running (pid {pid})")
            continue
        if _port_open(port):
            raise BrokerError(
                f"port {port} on 127.0.0.1 is taken by another process; choose another port "
                f"(TONGCHENG_{'KAFKA' if name == 'kafka' else 'REGISTRY'}_PORT) or stop it"
            )
        pid = launch()
        say(f"started {name} (pid {pid}), log {p.logfile(name)}")
    _wait("kafka", lambda: kafka_ready(settings), p, timeout, say)
    if not settings.insecure:
        created = ensure_users(settings)
        if created:
            say(f"created SCRAM users {', '.join(created)}; their secrets are in {settings.secrets_file}")
    _wait("registry", lambda: registry_ready(settings), p, timeout, say)
    say(f"kafka    bootstrap {settings.bootstrap} ({settings.security_protocol})")
    say(f"registry {settings.registry_url}")


def stop(settings: Settings, say: Say = print, timeout: float = 30.0) -> list[int]:
    """Stop the processes `start` recorded; returns the pids it signalled."""
    p = paths(settings)
    stopped = []
    for name in ("registry", "kafka"):
        pid = read_pid(p, name)
        if pid is None:
            continue
        if _alive(pid) and _ours(pid, str(p.data)):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                say(f"{name} (pid {pid}) did not stop in {timeout:.0f}s; killed")
            else:
                say(f"stopped {name} (pid {pid})")
            stopped.append(pid)
        else:
            say(f"{name}: pid {pid} is not running; clearing its pid file")
        p.pidfile(name).unlink(missing_ok=True)
    if not stopped:
        say("nothing to stop")
    return stopped


def signal_kafka(settings: Settings, sig: int) -> int:
    """Send `sig` to only the Kafka process of a running stack (SIGSTOP freezes it, as a long pause
    would); returns its pid. For drills and tests of a broker outage."""
    p = paths(settings)
    pid = read_pid(p, "kafka")
    if pid is None or not _alive(pid) or not _ours(pid, str(p.data)):
        raise BrokerError(f"no running kafka started from {p.data}")
    os.kill(pid, sig)
    return pid


def kill_kafka(settings: Settings, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int:
    """Stop only the Kafka process of a running stack with `sig` (the registry keeps running) and
    wait for it to exit; returns its pid. `restart_kafka` starts it again."""
    p = paths(settings)
    pid = signal_kafka(settings, sig)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise BrokerError(f"kafka (pid {pid}) still running {timeout:.0f}s after signal {sig}")
        time.sleep(0.1)
    p.pidfile("kafka").unlink(missing_ok=True)
    return pid


def restart_kafka(settings: Settings, say: Say = print, timeout: float = 120.0) -> int:
    """Start Kafka again on the same data directory and ports after `kill_kafka`, and wait until it
    answers; returns the new pid."""
    p = paths(settings)
    pid = read_pid(p, "kafka")
    if pid is not None and _alive(pid) and _ours(pid, str(p.data)):
        raise BrokerError(f"kafka is still running (pid {pid})")
    if _port_open(settings.kafka_port):
        raise BrokerError(f"port {settings.kafka_port} on 127.0.0.1 is taken by another process")
    pid = start_kafka(settings, p, say)
    say(f"started kafka (pid {pid}), log {p.logfile('kafka')}")
    _wait("kafka", lambda: kafka_ready(settings), p, timeout, say)
    return pid


def status(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(name, version, endpoint, state) rows."""
    p = paths(settings)
    rows = []
    for name, version, endpoint, ready in (
        ("kafka", KAFKA_VERSION, settings.bootstrap, lambda: kafka_ready(settings)),
        ("registry", f"apicurio {APICURIO_VERSION}", settings.registry_url, lambda: registry_ready(settings)),
    ):
        pid = read_pid(p, name)
        if pid and _alive(pid):
            state = f"pid {pid}, " + ("ready" if ready() else "starting or not answering")
        elif ready():
            state = "answering, but not started by this data directory"
        else:
            state = "stopped"
        rows.append((name, version, endpoint, state))
    return rows
