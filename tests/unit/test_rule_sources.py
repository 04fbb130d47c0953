"""Every rule entry names its source: the shipped files do, and a file with an entry lacking one is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import ConfigError
from services.credit.rules import RULES_FILE as CREDIT_FILE
from services.credit.rules import CreditRules
from services.emergency.rules import RULES_FILE as EMERGENCY_FILE
from services.emergency.rules import EmergencyRules
from services.sanctions.rules import RULES_FILE as SANCTION_FILE
from services.sanctions.rules import SanctionRules
from services.supervision.rules import RULES_FILE as SUPERVISION_FILE
from services.supervision.rules import SupervisionRules
from topics.measures import MEASURES_FILE

LOADERS: dict[str, tuple[Path, Callable[[Path], Any]]] = {
    "credit": (CREDIT_FILE, CreditRules.load),
    "sanctions": (SANCTION_FILE, lambda p: SanctionRules.load(p, MEASURES_FILE)),
    "emergency": (EMERGENCY_FILE, EmergencyRules.load),
    "supervision": (SUPERVISION_FILE, SupervisionRules.load),
}


def shipped(name: str) -> dict[str, Any]:
    return json.loads(LOADERS[name][0].read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_shipped_rule_entry_names_a_document(name: str) -> None:
    rules = LOADERS[name][1](LOADERS[name][0])
    assert rules.sources and all(
        "DESIGN.md §" in s or "README" in s or "国家发展改革委令" in s for s in rules.sources.values()
    )
    assert set(rules.sources) == set(shipped(name)["sources"])


def test_the_publicity_periods_cite_ndrc_order_58_and_the_civil_codes_count() -> None:
    sources = CreditRules.load().sources
    for severity in ("MINOR", "GENERAL", "SERIOUS"):
        assert "58号" in sources[f"publicity.ADMIN_PENALTY.{severity}"]
        assert "民法典" in sources[f"publicity.ADMIN_PENALTY.{severity}"]


@pytest.mark.parametrize(
    "name,key",
    [(name, key) for name in sorted(LOADERS) for key in sorted(shipped(name)["sources"])],
)
@pytest.mark.parametrize("how", ["missing", "blank"])
def test_a_rule_entry_without_a_source_is_refused_naming_it(tmp_path: Path, name: str, key: str, how: str) -> None:
    raw = shipped(name)
    if how == "missing":
        del raw["sources"][key]
    else:
        raw["sources"][key] = "  "
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"sources.{key}: the rule entry {key} names no source"):
        LOADERS[name][1](path)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_file_without_sources_or_with_a_stray_one_is_refused(tmp_path: Path, name: str) -> None:
    raw = shipped(name)
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({**raw, "sources": {**raw["sources"], "nosuch.rule": "DESIGN.md §5"}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="sources.nosuch.rule: names a source for no rule entry"):
        LOADERS[name][1](path)
    del raw["sources"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match="sources: missing"):
        LOADERS[name][1](path)


def test_a_measure_without_its_legal_basis_is_refused(tmp_path: Path) -> None:
    raw = json.loads(MEASURES_FILE.read_text(encoding="utf-8"))
    raw["measures"][0]["legal_basis"] = ""
    path = tmp_path / "measures.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"measures\[0\].legal_basis: a measure needs its legal basis"):
        SanctionRules.load(SANCTION_FILE, path)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_rules_file_is_read_the_same_way(tmp_path: Path, name: str) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"sources": {}\n  "oops"}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules.json: line 2, column 3: "):
        LOADERS[name][1](path)
    with pytest.raises(ConfigError, match="cannot read the"):
        LOADERS[name][1](tmp_path / "missing.json")
