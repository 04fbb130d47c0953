"""The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`), and
every tongcheng_ metric they use is one the processes export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import exported_metric_names

PROM = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: ops/setup.sh installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=PROM, timeout=60)


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", "rules/tongcheng.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", "tests/tongcheng.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_scrape_configs_are_valid() -> None:
    for name in ("prometheus.yml", "compose.yml"):
        done = promtool("check", "config", name)
        assert done.returncode == 0, done.stdout + done.stderr


def test_rules_use_only_exported_metrics() -> None:
    used = set(re.findall(r"\b((?:tongcheng|kafka)_[a-z_]+)", (PROM / "rules" / "tongcheng.rules.yml").read_text()))
    known = exported_metric_names()
    assert {"tongcheng_emergency_ack_overdue", "kafka_consumergroup_lag"} <= used <= known, used - known
