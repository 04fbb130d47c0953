"""Idempotent provisioning of the catalogue: create what is missing, report drift, destroy nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from topics import kafka_auth
from topics.catalog import Catalog, TopicSpec
from topics.settings import Settings


@dataclass
class Drift:
    topic: str
    what: str  # "partitions" or a config key
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.actual}, declared {self.declared}"


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"created   {name}" for name in self.created]
        out += [f"DRIFT     {d}" for d in self.drift]
        out.append(
            f"{len(self.created)} created, {len(self.unchanged)} unchanged, {len(self.drift)} drift"
            + (" (not changed: fix by hand or migrate; no data was touched)" if self.drift else "")
        )
        return out


def admin_client(settings: Settings) -> KafkaAdminClient:
    """An admin client as the principal of `settings` (ops commands run as `admin`)."""
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id="tongcheng-admin",
        request_timeout_ms=15000,
        **kafka_auth.client_config(settings),
    )


def existing_topics(admin: KafkaAdminClient) -> dict[str, int]:
    """Topic name -> partition count."""
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics() if not t["name"].startswith("__")}


def _actual_configs(admin: KafkaAdminClient, specs: list[TopicSpec]) -> dict[str, dict[str, str]]:
    if not specs:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=dict.fromkeys(s.config)) for s in specs]
    described: dict[str, Any] = admin.describe_configs(resources, config_filter="all").get("topic", {})
    return {name: {k: str(v.get("value")) for k, v in cfg.items()} for name, cfg in described.items()}


def apply(catalog: Catalog, admin: KafkaAdminClient) -> ApplyReport:
    """Create the missing topics of `catalog`; compare the rest with their declaration."""
    report = ApplyReport()
    have = existing_topics(admin)
    specs = catalog.specs()
    missing = [s for s in specs if s.name not in have]
    if missing:
        admin.create_topics(
            {
                s.name: {
                    "num_partitions": s.partitions,
                    "replication_factor": catalog.replication_factor,
                    "configs": s.config,
                }
                for s in missing
            },
            wait_for_metadata=True,
        )
        report.created = [s.name for s in missing]
    present = [s for s in specs if s.name in have]
    actual = _actual_configs(admin, present)
    for s in present:
        before = len(report.drift)
        if have[s.name] != s.partitions:
            report.drift.append(Drift(s.name, "partitions", str(s.partitions), str(have[s.name])))
        for key, declared in s.config.items():
            value = actual.get(s.name, {}).get(key)
            if value != declared:
                report.drift.append(Drift(s.name, key, declared, str(value)))
        if len(report.drift) == before:
            report.unchanged.append(s.name)
    return report


def list_topics(catalog: Catalog, admin: KafkaAdminClient) -> list[tuple[str, int | None, int, str]]:
    """(name, actual partitions or None when missing, declared partitions, cleanup policy)."""
    have = existing_topics(admin)
    return [(s.name, have.get(s.name), s.partitions, s.config.get("cleanup.policy", "")) for s in catalog.specs()]
