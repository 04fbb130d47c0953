"""What ops asks the running local stack, as the `admin` principal: the live brokers, the active
controller, whether Kafka and the registry are ready, and the SCRAM users of the embedded setup."""

from __future__ import annotations

import httpx

from ops.broker.nodes import nodes
from ops.broker.processes import port_open
from topics import kafka_auth
from topics.settings import Settings


def as_admin(settings: Settings) -> Settings:
    """The settings of ops commands on the local broker: the `admin` principal, its secret from the
    secrets file unless admin's own was given."""
    if settings.kafka_user == kafka_auth.ADMIN:
        return settings
    return settings.with_(kafka_user=kafka_auth.ADMIN, kafka_password="")


def live_brokers(settings: Settings) -> set[int]:
    """The ids of the brokers the cluster describes as registered and unfenced (empty when none answers)."""
    if not any(port_open(port) for port in settings.kafka_ports):
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
