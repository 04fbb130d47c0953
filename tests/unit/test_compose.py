"""docker-compose.yml, checked without a Docker engine: it parses, every command it runs is a
`tongcheng` command, every TONGCHENG_ variable it sets is a setting, every image is pinned; and the
production layout: three Kafka nodes on volumes of their own with the replication the settings give
the topics, Apicurio on PostgreSQL, PostgreSQL on a volume at the tests' major version, restart
policies, health checks and limits, one service image, and the ports the settings expect."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.cli import build_parser
from services.registry import PROCESSORS, WORKERS
from topics.settings import ENV, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def commands(service: dict[str, Any]) -> list[list[str]]:
    cmd = service.get("command")
    if not cmd:
        return []
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    if cmd[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in cmd[2].split("&&")]
    return [cmd]


def test_every_service_the_issue_names_is_there(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    workers = {f"worker-{w}" for w in WORKERS}
    assert {s for s in services if s.startswith("worker-")} == workers  # no worker the declarations lack
    others = {"kafka-1", "kafka-2", "kafka-3", "registry", "postgres", "init", "api", "lag-exporter", "prometheus"}
    assert workers | others | {"grafana"} <= services
    assert "healthcheck" in compose["services"]["postgres"]


def test_every_tongcheng_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    parser = build_parser()
    seen = 0
    for name, service in compose["services"].items():
        for argv in commands(service):
            if argv[0] != "tongcheng":
                continue
            seen += 1
            try:
                args = parser.parse_args(argv[1:])
            except SystemExit as exc:
                pytest.fail(f"{name}: `{' '.join(argv)}` is not a tongcheng command (exit {exc.code})")
            if args.command == "worker":
                assert args.service in WORKERS, f"{name}: no worker {args.service!r}"
    assert seen >= 9


def test_every_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = set(ENV.values())
    for name, service in compose["services"].items():
        for var in service.get("environment") or {}:
            if var.startswith("TONGCHENG_"):
                assert var in known, f"{name}: {var} is not read by topics/settings.py"


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_mounted_configs_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is missing"


# --- the production layout ---------------------------------------------------------------------

LONG_RUNNING_EXCEPT = {"secrets", "init"}  # one-shot jobs


def kafka_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image", "").startswith("apache/kafka:")}


def properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def tongcheng_settings(service: dict[str, Any]) -> Settings:
    return Settings.from_env({k: str(v) for k, v in (service.get("environment") or {}).items()})


def tongcheng_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image", "").startswith("tongcheng:")}


def test_three_kafka_nodes_each_on_its_own_volume(compose: dict[str, Any]) -> None:
    nodes = kafka_services(compose)
    assert len(nodes) == 3
    volumes = set()
    for name, service in nodes.items():
        mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
        volume = mounts["/var/lib/kafka/data"]
        assert volume in compose["volumes"], f"{name}: {volume} is not a named volume"
        volumes.add(volume)
        assert service["environment"]["NODE_ID"] == name.removeprefix("kafka-")
    assert len(volumes) == 3
    assert len({s["environment"]["CLUSTER_ID"] for s in nodes.values()}) == 1
    props = properties(ROOT / "ops" / "compose" / "server.properties")
    voters = {v.split("@")[1].split(":")[0] for v in props["controller.quorum.voters"].split(",")}
    assert voters == set(nodes)


def test_replication_is_consistent_with_the_settings(compose: dict[str, Any]) -> None:
    nodes = kafka_services(compose)
    props = properties(ROOT / "ops" / "compose" / "server.properties")
    for name, service in tongcheng_services(compose).items():
        if name == "secrets":
            continue
        s = tongcheng_settings(service)
        hosts = {h.split(":")[0] for h in s.bootstrap.split(",")}
        assert hosts == set(nodes), f"{name}: bootstrap {s.bootstrap}"
        assert {h.split(":")[1] for h in s.bootstrap.split(",")} == {props["listeners"].split(",")[0].rsplit(":", 1)[1]}
        assert s.replication_factor == len(nodes) == int(props["default.replication.factor"]), name
        assert s.min_insync_replicas == int(props["min.insync.replicas"]) == 2, name
        assert int(props["offsets.topic.replication.factor"]) == s.replication_factor
        assert int(props["transaction.state.log.min.isr"]) == s.min_insync_replicas
        assert s.registry_url.startswith("http://registry:8080/"), name
        assert "@postgres:5432/" + compose["services"]["postgres"]["environment"]["POSTGRES_DB"] in s.database_url


def test_restart_policies_health_checks_and_limits(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in LONG_RUNNING_EXCEPT:
            continue
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name}: no restart policy"
        assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), f"{name}: no resource limits"


def test_one_service_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    services = tongcheng_services(compose)
    assert {s["image"] for s in services.values()} == {"tongcheng:0.1.0"}
    for name, service in services.items():
        assert service["build"] == {"context": ".", "dockerfile": "ops/Dockerfile"}, name
    assert (ROOT / "ops" / "Dockerfile").exists()


def test_postgres_on_a_volume_at_the_tests_major_version(compose: dict[str, Any]) -> None:
    from ops.postgres import MAJOR

    pg = compose["services"]["postgres"]
    tag = pg["image"].split(":")[1]
    assert int(tag.split(".")[0]) == MAJOR
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if installed:  # the machine's, which the tests run
        assert int(installed[-1].parts[-3]) == MAJOR
    mounts = dict(reversed(v.split(":")[:2]) for v in pg["volumes"])
    assert mounts["/var/lib/postgresql/data"] in compose["volumes"]


def test_the_registry_keeps_its_schemas_in_postgres(compose: dict[str, Any]) -> None:
    registry = compose["services"]["registry"]
    env = registry["environment"]
    assert env["APICURIO_STORAGE_KIND"] == "sql" and env["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    assert env["APICURIO_DATASOURCE_URL"].startswith("jdbc:postgresql://postgres:5432/")
    database = env["APICURIO_DATASOURCE_URL"].rsplit("/", 1)[1]
    init = (ROOT / "ops" / "compose" / "postgres-init.sql").read_text()
    assert f"CREATE DATABASE {database}" in init
    assert registry["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_ports_are_those_the_settings_expect(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "ops" / "prometheus" / "compose.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    for spec in PROCESSORS:
        worker = spec.name
        service = compose["services"][f"worker-{worker}"]
        s = tongcheng_settings(service)
        port = spec.metrics_port(s)
        assert f"127.0.0.1:{port}/" in " ".join(service["healthcheck"]["test"]), worker
        assert f"worker-{worker}:{port}" in targets, worker
        assert s.metrics_host == "0.0.0.0"
    api = compose["services"]["api"]
    s = tongcheng_settings(api)
    assert api["ports"] == [f"127.0.0.1:{s.api_port}:{s.api_port}"] and f"api:{s.api_port}" in targets
    lag = compose["services"]["lag-exporter"]
    s = tongcheng_settings(lag)
    assert lag["ports"] == [f"127.0.0.1:{s.lag_port}:{s.lag_port}"] and f"lag-exporter:{s.lag_port}" in targets
