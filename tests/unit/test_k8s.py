"""ops/k8s/, checked without a cluster: the committed manifests are the generator's output, the core
kinds are valid Kubernetes (kubernetes-validate, strict), and the Strimzi kinds have the structure
Strimzi reads and say what the declarations say (catalogue, ACLs, replication, processors)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ops import kubernetes
from services.registry import WORKERS
from topics import acls
from topics.catalog import Catalog
from topics.settings import ENV

K8S = Path(kubernetes.__file__).resolve().parent / "k8s"
KUBERNETES_VERSION = "1.30.0"
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_the_committed_manifests_are_the_generator_s_output() -> None:
    assert kubernetes.stale() == [], "run `tongcheng k8s generate` and commit ops/k8s/"


def test_the_core_kinds_are_valid_kubernetes(docs: list[dict[str, Any]]) -> None:
    core = [d for d in docs if d["kind"] not in STRIMZI_KINDS]
    assert {d["kind"] for d in core} == {"ConfigMap", "Deployment"}
    for d in core:
        kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)  # raises on any error


def test_every_strimzi_resource_names_the_cluster(docs: list[dict[str, Any]]) -> None:
    for d in docs:
        if d["kind"] not in STRIMZI_KINDS:
            continue
        assert d["apiVersion"] == "kafka.strimzi.io/v1beta2", d["metadata"]["name"]
        assert DNS_NAME.match(d["metadata"]["name"]), d["metadata"]["name"]
        assert d["metadata"]["namespace"] == kubernetes.NAMESPACE
        if d["kind"] != "Kafka":
            assert d["metadata"]["labels"]["strimzi.io/cluster"] == kubernetes.CLUSTER
        assert isinstance(d["spec"], dict)


def test_the_kafka_runs_kraft_on_node_pools_of_three(docs: list[dict[str, Any]]) -> None:
    (cluster,) = of_kind(docs, "Kafka")
    assert cluster["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    spec = cluster["spec"]["kafka"]
    assert "replicas" not in spec and "storage" not in spec and "zookeeper" not in cluster["spec"]
    settings = kubernetes.production_settings()
    assert spec["config"]["default.replication.factor"] == settings.replication_factor == 3
    assert spec["config"]["min.insync.replicas"] == settings.min_insync_replicas == 2
    assert spec["config"]["offsets.topic.replication.factor"] == 3
    assert spec["authorization"] == {"type": "simple", "superUsers": ["admin"]}
    (listener,) = spec["listeners"]
    assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert settings.bootstrap.endswith(f":{listener['port']}")
    pools = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "KafkaNodePool")}
    roles = sorted(role for p in pools.values() for role in p["roles"])
    assert roles == ["broker", "controller"]
    for pool in pools.values():
        assert pool["replicas"] == 3
        assert pool["storage"]["type"] == "jbod" and pool["storage"]["volumes"]


def test_a_kafka_topic_per_catalogue_entry(docs: list[dict[str, Any]]) -> None:
    settings = kubernetes.production_settings()
    catalog = Catalog(settings.topic_prefix, settings.replication_factor, settings.min_insync_replicas)
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(docs, "KafkaTopic")}
    assert set(topics) == {s.name for s in catalog.specs()}
    for spec in catalog.specs():
        got = topics[spec.name]
        assert got["partitions"] == spec.partitions and got["replicas"] == 3
        assert got["config"] == spec.config and got["config"]["min.insync.replicas"] == "2"


def test_a_kafka_user_per_principal_with_the_declared_acls(docs: list[dict[str, Any]]) -> None:
    settings = kubernetes.production_settings()
    users = {u["metadata"]["name"]: u["spec"] for u in of_kind(docs, "KafkaUser")}
    assert list(users) == acls.principals(settings)
    want: dict[str, set[tuple[str, str, str, str]]] = defaultdict(set)
    for b in acls.bindings(settings.topic_prefix, acls.city_codes(settings)):
        op = "".join(part.capitalize() for part in b.operation.split("_"))
        want[b.principal.removeprefix("User:")].add((b.resource.lower(), b.name, b.pattern.lower(), op))
    for user, spec in users.items():
        assert spec["authentication"] == {"type": "scram-sha-512"}
        got = {
            (a["resource"]["type"].lower(), a["resource"].get("name", ""), a["resource"].get("patternType", ""), op)
            for a in spec.get("authorization", {}).get("acls", [])
            for op in a["operations"]
        }
        got = {(r.replace("transactionalid", "transactional_id"), n, p, o) for r, n, p, o in got}
        assert got == want.get(user, set()), user
    assert "authorization" not in users["admin"]


def test_a_deployment_per_processor_with_probes_and_scraping(docs: list[dict[str, Any]]) -> None:
    settings = kubernetes.production_settings()
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == {f"worker-{w}" for w in WORKERS}
    (config,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "tongcheng-settings"]
    assert set(config["data"]) <= set(ENV.values())
    assert config["data"][ENV["profile"]] == "production"
    for service in WORKERS:
        d = deployments[f"worker-{service}"]
        assert d["spec"]["replicas"] >= 2
        pod = d["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["command"] == ["tongcheng", "worker", service]
        port = kubernetes.metrics_port(settings, service)
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        env = {e["name"]: e for e in container["env"]}
        assert env[ENV["kafka_user"]]["value"] == service
        assert env[ENV["kafka_password"]]["valueFrom"]["secretKeyRef"]["name"] == service  # the KafkaUser's
        assert set(env) <= set(ENV.values())
    (prom,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "tongcheng-prometheus"]
    scrape = yaml.safe_load(prom["data"]["prometheus.yml"])
    (job,) = scrape["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
