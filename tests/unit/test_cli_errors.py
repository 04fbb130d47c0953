"""The command line's error handler: a malformed circle or roster keys file (CircleFileError) is one
line on standard error and exit code 2, like a bad setting, whether the settings or the command read it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ops.cli import main
from topics.circle import DATA_DIR, CircleFileError
from topics.settings import Settings


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("TONGCHENG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TONGCHENG_DATA_DIR", str(tmp_path / "data"))


def one_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no traceback
    assert lines[0].startswith(f"tongcheng {command}: ")
    return lines[0]


def test_a_malformed_circle_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    circle = json.loads((DATA_DIR / "njmc.circle.json").read_text(encoding="utf-8"))
    circle["timezone"] = 5
    path = tmp_path / "bad.circle.json"
    path.write_text(json.dumps(circle), encoding="utf-8")
    monkeypatch.setenv("TONGCHENG_CIRCLE_FILE", str(path))
    assert main(["docs", "asyncapi"]) == 2
    assert "timezone" in one_line(capsys.readouterr().err, "docs")


def test_a_malformed_roster_keys_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "roster-keys.json"
    path.write_text("not JSON", encoding="utf-8")
    monkeypatch.setenv("TONGCHENG_ROSTER_KEYS_FILE", str(path))
    assert main(["keys", "list"]) == 2
    assert "roster keys file is not JSON" in one_line(capsys.readouterr().err, "keys")


def test_a_circle_file_error_while_reading_the_settings_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreadable(cls: type[Settings]) -> Settings:
        raise CircleFileError("circle.json: line 3: cities: expected a list")

    monkeypatch.setattr(Settings, "from_env", classmethod(unreadable))
    assert main(["docs", "asyncapi"]) == 2
    assert one_line(capsys.readouterr().err, "docs").endswith("circle.json: line 3: cities: expected a list")
