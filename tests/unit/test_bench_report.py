"""The closing JSON line of `tongcheng bench` (ops/bench/report.py)."""

import json

from ops.bench.report import KEYS, Result, percentile


def test_the_line_has_exactly_the_keys_in_order_and_the_ratio_to_three_decimals() -> None:
    line = Result("credit", 20000, 5819.4, 29096.2, [0.5, 1.0, 2.0], 2000.0).json_line()
    d = json.loads(line)
    assert tuple(d) == KEYS
    assert d["records_per_s"] == 5819 and d["ceiling_per_s"] == 29096
    assert d["ratio"] == round(5819.4 / 29096.2, 3) == 0.2
    assert d["p50_ms"] == 1000.0 and d["p99_ms"] == 2000.0 and d["rate"] == 2000.0
    assert "\n" not in line


def test_what_was_not_measured_is_null() -> None:
    d = Result("projects", 20000, 13782.0, None, None, None).as_dict()
    assert d["ceiling_per_s"] is None and d["ratio"] is None
    assert d["p50_ms"] is None and d["p99_ms"] is None and d["rate"] is None
    assert Result("credit", 0, None, None, [], None).as_dict()["p50_ms"] is None


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_bench_provenance_runs_without_a_broker(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`tongcheng bench provenance` signs and verifies in-process: no broker, no secrets beforehand."""
    import argparse

    from ops.bench import provenance
    from topics.settings import Settings

    assert provenance.run(Settings(data_dir=tmp_path), argparse.Namespace(records=200, quick=True)) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["records"] == 200 and last["verify"]["median_us"] > 0 and last["sign"]["median_us"] > 0


def test_restart_figures_follow_the_keys() -> None:
    figures = {"peak_rss_mb": 136.2, "kill_restart_s": 9.1, "rebuild_changelog_records_per_subject": 1.04}
    d = json.loads(Result("credit", 30000, 3098.0, None, None, None, restarts=figures).json_line())
    assert tuple(d) == (*KEYS, *figures) and d["kill_restart_s"] == 9.1
