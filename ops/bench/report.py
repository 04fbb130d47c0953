"""The figures of a benchmark run: percentiles, the machine, and the closing JSON line."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from typing import Any

#: the keys of the last line, in this order
KEYS = ("processor", "records", "records_per_s", "ceiling_per_s", "ratio", "p50_ms", "p99_ms", "rate", "workers")


def say(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of `values` by the nearest-rank rule; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least 1
    return ordered[int(min(rank, len(ordered))) - 1]


def machine() -> str:
    return (
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.platform()}"
    )


@dataclass
class Result:
    processor: str
    records: int
    records_per_s: float | None
    ceiling_per_s: float | None
    latencies: list[float] | None  # seconds; None when the latency phase measured nothing
    rate: float | None  # events/s of the latency phase; None when it did not run
    workers: int = 1  # workers of the processor in its group during the throughput phase
    restarts: dict[str, Any] | None = None  # `--restarts`: ops/bench/restarts.py's figures, after the keys

    def as_dict(self) -> dict[str, Any]:
        ratio = None
        if self.records_per_s and self.ceiling_per_s:
            ratio = round(self.records_per_s / self.ceiling_per_s, 3)
        p50 = percentile(self.latencies, 0.5) if self.latencies else None
        p99 = percentile(self.latencies, 0.99) if self.latencies else None
        values = {
            "processor": self.processor,
            "records": self.records,
            "records_per_s": round(self.records_per_s) if self.records_per_s is not None else None,
            "ceiling_per_s": round(self.ceiling_per_s) if self.ceiling_per_s is not None else None,
            "ratio": ratio,
            "p50_ms": round(p50 * 1000, 1) if p50 is not None else None,
            "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
            "rate": self.rate,
            "workers": self.workers,
        }
        return {**{k: values[k] for k in KEYS}, **(self.restarts or {})}

    def json_line(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False)


def latency_line(what: str, rate: float, values: list[float]) -> str:
    """A human line: `what` at `rate`/s: p50, p99, max over the matched events."""
    if not values:
        return f"latency:    {what} at {rate:g}/s: nothing matched"
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    assert p50 is not None and p99 is not None
    return (
        f"latency:    {what} at {rate:g}/s: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(values) * 1000:.0f} ms ({len(values)} matched)"
    )
