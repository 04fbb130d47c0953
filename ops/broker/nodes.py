"""The local KRaft nodes' configuration: the cache and data paths, the nodes of one or three, and
each node's server.properties with its SCRAM and TLS settings and the admin's secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ops import certs
from schemas.errors import TongchengError
from topics import kafka_auth
from topics.kafka_auth import MECHANISM
from topics.settings import ENV, Settings

KAFKA_VERSION = "4.1.2"
APICURIO_VERSION = "3.0.9"  # the newest 3.x line that runs on Java 17
HERE = Path(__file__).resolve().parent


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


def kafka_properties(settings: Settings, p: Paths, admin_secret: str | None, n: Node) -> Path:
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


def format_marker(n: Node) -> Path:
    return n.data / "security"


def admin_secret(settings: Settings, n: Node, formatted: bool) -> str | None:
    """The admin's SCRAM secret for a secure start (None when insecure); refuses a data directory
    formatted without SCRAM credentials, which no secure client could use."""
    if settings.insecure:
        return None
    marker = format_marker(n)
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
