"""The files outside ops/k8s/ that list the workers, generated from their declarations
(services/registry.py) by `tongcheng k8s generate` and compared by `tongcheng k8s check` and the tests:

- `ops/prometheus/prometheus.yml`: the scrape jobs of `tongcheng up` (everything on 127.0.0.1);
- `ops/prometheus/compose.yml`: the same jobs by container name, which docker-compose mounts.

Each worker is scraped on its declared metrics port with a `service` label, in port order.
"""

from __future__ import annotations

from pathlib import Path

from services.registry import PROCESSORS
from topics.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

PROMETHEUS_HEADS = {
    "prometheus.yml": (
        "# Prometheus for the embedded `tongcheng up` (everything on 127.0.0.1, default ports).\n"
        "# docker-compose mounts ops/prometheus/compose.yml instead, which names the containers.\n"
    ),
    "compose.yml": "# Prometheus inside docker-compose: the same jobs as prometheus.yml, by container name.\n",
}


def scrape_config(name: str, settings: Settings | None = None) -> str:
    """The text of ops/prometheus/`name`: on 127.0.0.1 (prometheus.yml) or by container (compose.yml)."""
    settings = settings or Settings()
    local = name == "prometheus.yml"

    def host(container: str) -> str:
        return "127.0.0.1" if local else container

    lines = [
        PROMETHEUS_HEADS[name] + "global:",
        "  scrape_interval: 15s",
        "  evaluation_interval: 15s",
        "",
        "rule_files:",
        "  - rules/tongcheng.rules.yml",
        "",
        "scrape_configs:",
        "  - job_name: tongcheng-api",
        "    static_configs:",
        f'      - targets: ["{host("api")}:{settings.api_port}"]',
        "  - job_name: tongcheng-workers",
        "    static_configs:",
    ]
    for spec in sorted(PROCESSORS, key=lambda p: p.metrics_offset):
        lines.append(f'      - targets: ["{host("worker-" + spec.name)}:{spec.metrics_port(settings)}"]')
        lines.append(f"        labels: {{service: {spec.name}}}")
    lines += [
        "  - job_name: tongcheng-lag",
        "    static_configs:",
        f'      - targets: ["{host("lag-exporter")}:{settings.lag_port}"]',
    ]
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    """Path (relative to the repository) -> its text."""
    return {Path("ops/prometheus") / name: scrape_config(name) for name in PROMETHEUS_HEADS}


def write(root: Path = ROOT) -> list[Path]:
    written = []
    for rel, text in generated().items():
        (root / rel).write_text(text, encoding="utf-8")
        written.append(root / rel)
    return written


def stale(root: Path = ROOT) -> list[str]:
    """The generated files under `root` that differ from the generator's output (or are missing)."""
    return [
        str(rel)
        for rel, text in generated().items()
        if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != text
    ]
