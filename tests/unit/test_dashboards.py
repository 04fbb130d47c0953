"""The Grafana dashboard and its provisioning: every panel queries metrics the processes export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.conftest import exported_metric_names

GRAFANA = Path(__file__).resolve().parents[2] / "ops" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tongcheng.json"
#: PromQL words that look like metric names but are not
PROMQL = {"sum", "by", "max", "min", "rate", "increase", "histogram_quantile", "le", "without", "avg", "count"}


def metric_names(expr: str) -> set[str]:
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|by \([^)]*\)", " ", expr)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped) if w not in PROMQL}


def panels() -> list[dict]:  # type: ignore[type-arg]
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_every_panel_queries_exported_metrics() -> None:
    known = exported_metric_names()
    for p in panels():
        assert p["targets"], p["title"]
        for t in p["targets"]:
            names = metric_names(t["expr"])
            assert names, (p["title"], t["expr"])
            assert names <= known, (p["title"], names - known)


def test_the_dashboard_covers_what_ops_teams_watch() -> None:
    text = DASHBOARD.read_text()
    titles = " ".join(p["title"].lower() for p in panels())
    for needle in ("scoreboard", "incidents", "listed", "consumed", "dlq", "lag"):
        assert needle in titles, needle
    for metric in ("tongcheng_sanction_feedback_ratio", "tongcheng_project_ontime_ratio", "kafka_consumergroup_lag"):
        assert metric in text


def test_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in panels())
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tongcheng.yml").read_text())
    assert provider["providers"][0]["options"]["path"].endswith("/tongcheng")
