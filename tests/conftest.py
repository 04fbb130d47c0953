"""Shared fixtures. Integration tests run against one real local broker and registry per session."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from topics.clock import ManualClock

EXAMPLES = Path(__file__).resolve().parent.parent / "topics" / "examples"


def example(event_type: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{event_type}.json").read_text(encoding="utf-8"))


def exported_metric_names() -> set[str]:
    """Every sample name the processes can serve: each Tongcheng metric by its type (a counter as
    `_total`, a histogram as `_bucket`, `_count`, `_sum`), the lag exporter's, and Prometheus' `up`."""
    from ops.lag_exporter import FAMILIES
    from topics.metrics import Metrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = set(FAMILIES) | {"up"}
    for family in Metrics().registry.collect():
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
