"""The processors' declarations (services/registry.py) say what the code and the files do: the
tables each worker opens, the metrics it serves, its rules, its port, and the generated files
(the Prometheus scrape files, the README's processor table) are the generator's output."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from ops import declared
from ops.cli import build_parser
from ops.cli.processes import available_workers
from services.registry import PROCESSORS, WORKERS, ProcessorSpec, processor
from topics.acls import READS, SERVICES
from topics.catalog import OWNER
from topics.metrics import Metrics
from topics.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TABLE = re.compile(r"""proc\.table\(\s*"([^"]+)\"""")


def test_the_generated_files_are_the_generator_s_output() -> None:
    assert declared.stale() == [], "run `tongcheng k8s generate` and commit what it wrote"


@pytest.mark.parametrize("spec", PROCESSORS, ids=lambda p: p.name)
def test_each_declaration_says_what_its_worker_does(spec: ProcessorSpec) -> None:
    source = inspect.getsource(importlib.import_module(spec.module))
    assert set(TABLE.findall(source)) == set(spec.tables), f"{spec.module} opens other tables than declared"
    served = {m.name for m in Metrics().registry.collect()}
    assert set(spec.metrics) <= served, f"{spec.name}: metrics not in topics/metrics.py"
    if spec.rules:
        importlib.import_module(spec.rules)
    assert callable(importlib.import_module(spec.module).run)
    assert spec.owns == tuple(t for t, o in OWNER.items() if o == spec.name)
    assert spec.reads and spec.name in SERVICES


def test_every_principal_that_reads_is_a_declared_processor() -> None:
    assert set(READS) == set(WORKERS)


def test_ports_are_the_settings_port_plus_the_offset() -> None:
    settings = Settings()
    ports = {p.name: p.metrics_port(settings) for p in PROCESSORS}
    assert len(set(ports.values())) == len(ports)
    # the ports the README, the compose file and the dashboards have always used
    assert (
        ports.items()
        >= {
            "credit": 9401,
            "readmodel": 9402,
            "sanctions": 9403,
            "emergency": 9404,
            "supervision": 9405,
        }.items()
    )
    assert processor("credit").metrics_port(settings.with_(metrics_port=9500)) == 9501
    with pytest.raises(KeyError, match="unknown processor"):
        processor("nope")


def test_the_cli_lists_the_declared_workers_and_bench_plans() -> None:
    parser = build_parser()
    assert available_workers() == list(WORKERS)
    for name in WORKERS:
        assert parser.parse_args(["worker", name]).service == name
    bench = [plan for p in PROCESSORS for plan in p.bench]
    assert bench[:6] == ["credit", "sanctions", "emergency", "projects", "supervision", "readmodel"]
    for plan in bench:
        assert parser.parse_args(["bench", plan]).processor == plan


def test_the_readme_names_each_processor_s_metrics_on_its_port() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    settings = Settings()
    for spec in PROCESSORS:
        for metric in spec.metrics:
            rows = [line for line in readme.splitlines() if f"`{metric}" in line and line.startswith("| `")]
            assert any(f":{spec.metrics_port(settings)})" in row for row in rows), f"{metric} ({spec.name})"
