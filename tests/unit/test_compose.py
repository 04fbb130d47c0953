"""docker-compose.yml, checked without a Docker engine: it parses, every command it runs is a
`tongcheng` command, every TONGCHENG_ variable it sets is a setting, every image is pinned."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import WORKERS, build_parser
from services.common.settings import ENV

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
    assert (
        workers | {"kafka", "registry", "postgres", "init", "api", "lag-exporter", "prometheus", "grafana"} <= services
    )
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
                assert var in known, f"{name}: {var} is not read by services/common/settings.py"


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
