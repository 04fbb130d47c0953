"""A newcomer's first run, end to end: `tongcheng up --demo` on its own ports, a real Prometheus
(Debian's package) scraping it with the project's alert rules, and the status page in headless
Chromium.

It shows that the API answers, the metrics move, bad input lands in the DLQs, an alert fires
(an emergency left unacknowledged past its deadline, reached by moving the injected clock), and
the status page renders the scoreboard with real numbers.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ops.chaos.probes import wait_until
from services.api.tokens import TokenStore
from tests.conftest import example
from topics.context import build_context
from topics.publisher import Publisher
from topics.settings import Settings
from topics.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "TONGCHENG_KAFKA_PORT": "29092",
    "TONGCHENG_CONTROLLER_PORT": "29093",
    "TONGCHENG_REGISTRY_PORT": "28081",
    "TONGCHENG_API_PORT": "28000",
    "TONGCHENG_METRICS_PORT": "29400",
    "TONGCHENG_LAG_PORT": "29308",
}
PROMETHEUS_PORT = 29090
T = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    data = tmp_path_factory.mktemp("firstrun")
    clock = data / "clock"
    clock.write_text(T.isoformat())
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        **PORTS,
        "TONGCHENG_DATA_DIR": str(data),
        "TONGCHENG_CLOCK_FILE": str(clock),
        "TONGCHENG_SWEEP_SECONDS": "1",
    }
    log = open(data / "up.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "up", "--demo", "--demo-rate", "30"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("TONGCHENG_")})
    try:
        wait_until("`tongcheng up`", lambda: b"press Ctrl-C" in (data / "up.log").read_bytes(), 180)
        yield settings, data
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
        assert code == 0, (data / "up.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def prometheus(up: tuple[Settings, Path]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: ops/setup.sh installs Debian's prometheus package"
    _, data = up
    config = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    # the shipped rules, each alert's `for:` cut to 5 s: the test shows the rule wired end to end
    # (metric, expression, firing); the durations themselves are promtool's unit tests' concern
    rules = yaml.safe_load((ROOT / "ops" / "prometheus" / "rules" / "tongcheng.rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = "5s"
    (data / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True))
    config["rule_files"] = [str(data / "rules.yml")]
    moved = {"8000": PORTS["TONGCHENG_API_PORT"], "9308": PORTS["TONGCHENG_LAG_PORT"]}
    moved |= {str(9400 + i): str(29400 + i) for i in range(1, 6)}
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            group["targets"] = [f"127.0.0.1:{moved[t.rsplit(':', 1)[1]]}" for t in group["targets"]]
    path = data / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
        ],
        stdout=open(data / "prometheus.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}"
    try:
        wait_until("prometheus", lambda: httpx.get(f"{url}/-/ready").status_code == 200, 60)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def value(url: str, expr: str) -> float:
    found = query(url, expr)
    return float(found[0]["value"][1]) if found else 0.0


def test_metrics_move_bad_input_lands_in_the_dlqs_and_an_alert_fires(
    up: tuple[Settings, Path], prometheus: str
) -> None:
    settings, data = up
    api = f"http://127.0.0.1:{PORTS['TONGCHENG_API_PORT']}"
    # every process is scraped
    wait_until("all targets up", lambda: len(query(prometheus, 'up{job=~"tongcheng-.*"} == 1')) == 7, 90)
    # the demo traffic moves the metrics
    first = wait_until("events consumed", lambda: value(prometheus, "sum(tongcheng_events_consumed_total)"), 90)
    wait_until("more events", lambda: value(prometheus, "sum(tongcheng_events_consumed_total)") > first, 60)
    # every processor keeps consuming: each one's count grows between two reads 5 s apart
    services = ("credit", "sanctions", "emergency", "supervision", "readmodel")

    def consumed() -> dict[str, float]:
        found = query(prometheus, "sum by (service) (tongcheng_events_consumed_total)")
        return {r["metric"]["service"]: float(r["value"][1]) for r in found}

    before = wait_until(
        "every processor consuming", lambda: (c := consumed()) and all(c.get(s, 0) > 0 for s in services) and c, 90
    )
    time.sleep(5)
    assert all(consumed()[s] > before[s] for s in ("credit", "readmodel")), (before, consumed())
    wait_until(
        "consumer lag exported", lambda: query(prometheus, 'kafka_consumergroup_lag{consumergroup=~"tongcheng-.*"}'), 60
    )
    # bad input lands in the DLQs
    ctx = build_context(settings)
    dlqs = [spec.name for spec in ctx.topics.specs() if spec.name.endswith(".dlq")]
    sub = Subscriber(ctx, dlqs, from_beginning=True)
    reasons: set[str] = set()
    try:
        deadline = time.monotonic() + 90
        while len(reasons) < 2 and time.monotonic() < deadline:
            reasons |= {d.headers.get("error.reason", "") for d in sub.poll(timeout_ms=500)}
    finally:
        sub.close()
    assert len(reasons) >= 2, reasons
    # the API answers from the read model
    _, token = TokenStore(settings.tokens_file).issue("320100", ("read",))  # as `tongcheng token issue` does
    reader = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{api}/v1/supervision/cities").status_code == 401  # reads need a token
    board = wait_until(
        "scoreboard", lambda: httpx.get(f"{api}/v1/supervision/cities", headers=reader).json()["cities"], 30
    )
    assert len(board) == 10
    # an emergency at level I that nobody acknowledges: 15 minutes, reached by moving the clock
    notice = {**example("emergency.notice"), "incident_id": "INC-FIRST-RUN", "level": "I"}
    with Publisher(ctx, "340200", "test") as pub:
        pub.publish("emergency.notice", notice)
    wait_until("the dispatch", lambda: value(prometheus, 'sum(tongcheng_emergency_open_incidents{level="I"})') >= 1, 60)
    (data / "clock").write_text((T + timedelta(minutes=16)).isoformat())
    wait_until("overdue gauge", lambda: value(prometheus, "sum(tongcheng_emergency_ack_overdue)") >= 1, 60)

    def firing() -> bool:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
        return any(a["labels"]["alertname"] == "EmergencyAckOverdue" and a["state"] == "firing" for a in alerts)

    wait_until("EmergencyAckOverdue firing", firing, 150)


def test_the_status_page_renders_the_scoreboard_in_chromium(up: tuple[Settings, Path]) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: ops/setup.sh installs Debian's chromium package"
    _, data = up
    url = f"http://127.0.0.1:{PORTS['TONGCHENG_API_PORT']}/"
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={data / 'chromium'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = done.stdout
    assert 'id="scoreboard"' in dom, done.stderr[-2000:]
    rows = re.findall(r'<tr data-city="(\d{6})">(.*?)</tr>', dom, re.S)
    assert len(rows) == 10
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for _, row in rows]
    assert all(re.fullmatch(r"\d+%", c[2]) and c[3].isdigit() and re.fullmatch(r"\d+%", c[6]) for c in cells)
    counts = {name: int(n) for name, n in re.findall(r'id="list-(\w+)">\w+ <b>(\d+)</b>', dom)}
    assert set(counts) == {"BLACK", "FOCUS", "RED"}
    # the demo's traffic reaches the page: some projects have fallen due by now
    assert sum(int(c[3]) for c in cells) > 0, cells
