"""A circle is data: the shipped circle files, what the settings take from them, and a malformed
file refused naming its line and field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import ConfigError
from topics.circle import DATA_DIR, CircleFileError, load_circle
from topics.settings import Settings

SXCMC = DATA_DIR / "sxcmc.circle.json"


def test_the_shipped_circles_load_with_their_sources_and_chinese_names() -> None:
    nanjing, sxc = load_circle(), load_circle(SXCMC)
    assert (nanjing.code, nanjing.topic_prefix, len(nanjing.cities)) == ("njmc", "njmc", 10)
    assert (sxc.code, sxc.topic_prefix, sxc.name_zh) == ("sxcmc", "sxcmc", "苏锡常都市圈")
    assert {c: city.name_zh for c, city in sxc.cities.items()} == {"320500": "苏州", "320200": "无锡", "320400": "常州"}
    assert "长江三角洲城市群发展规划" in sxc.source["title"] and "南京都市圈发展规划" in nanjing.source["title"]
    # water from Changzhou reaches Wuxi and Suzhou; Suzhou and Changzhou share no land border
    assert sxc.downstream("320400") == ["320200", "320500"] and sxc.downstream("320500") == []
    assert sxc.neighbours("320400") == {"320200"}


def test_the_settings_take_the_circle_and_its_prefix_from_the_file(tmp_path: Path) -> None:
    assert (Settings().circle, Settings().topic_prefix) == ("njmc", "njmc")
    s = Settings(circle_file=SXCMC)
    assert (s.circle, s.topic_prefix) == ("sxcmc", "sxcmc")
    assert Settings(circle="sxcmc").topic_prefix == "sxcmc"
    assert s.with_(circle_file=None).topic_prefix == "njmc"  # derived again, not kept
    raw = {**json.loads(SXCMC.read_text(encoding="utf-8")), "topic_prefix": "sxc-test"}
    (tmp_path / "c.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    assert Settings(circle_file=tmp_path / "c.json").topic_prefix == "sxc-test"
    assert Settings(circle_file=tmp_path / "c.json", topic_prefix="other").topic_prefix == "other"
    with pytest.raises(ConfigError, match="is circle 'sxcmc'"):
        Settings(circle="njmc", circle_file=SXCMC)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        target: Any = raw
        for part in path[:-1]:
            target = target[part]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


CASES = [
    # (change, the field the message names, the text on the line it names, a fragment of why); a missing
    # field is named on the line of its object, a bad pair on the line of its list
    (_set(("cities", 1, "code"), "32020"), "cities[1].code", '"32020"', "not a GB/T 2260"),
    (_set(("cities", 1, "code"), "990200"), "cities[1].code", '"990200"', "no GB/T 2260 province"),
    (_set(("cities", 2, "name_zh"), "Changzhou"), "cities[2].name_zh", '"name_zh": "Changzhou"', "no Chinese"),
    (_set(("cities", 0, "province"), KeyError), "cities[0].province", "{", "missing"),
    (_set(("cities", 0, "parent"), "320000"), "cities[0].parent", '"parent": "320000"', "no parent"),
    (_set(("cities", 2, "code"), "320500"), "cities[2].code", '"code": "320500"', "listed twice"),
    (_set(("borders", 1, 1), "320100"), "borders[1][1]", '"320100"', "not a member city"),
    (_set(("borders", 0), ["320500"]), "borders[0]", "[", "pair"),
    (_set(("rivers", 2, "flows", 1, 0), "320300"), "rivers[2].flows[1][0]", '"320300"', "not a member city"),
    (_set(("rivers", 0, "flow"), []), "rivers[0].flow", '"flow"', "unknown field"),
    (_set(("timezone",), "Asia/Suzhou"), "timezone", '"Asia/Suzhou"', "unknown time zone"),
    (_set(("circle",), "SXC.mc"), "circle", '"SXC.mc"', "lowercase"),
    (_set(("source", "title"), KeyError), "source.title", '"source"', "missing"),
    (_set(("citys",), []), "citys", '"citys"', "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "on_line", "why"), CASES, ids=[c[1] for c in CASES])
def test_a_malformed_circle_file_is_refused_naming_the_line_and_the_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str, on_line: str, why: str
) -> None:
    raw = json.loads(SXCMC.read_text(encoding="utf-8"))
    change(raw)
    text = json.dumps(raw, ensure_ascii=False, indent=2)
    (tmp_path / "c.json").write_text(text, encoding="utf-8")
    with pytest.raises(CircleFileError) as caught:
        load_circle(tmp_path / "c.json")
    message = str(caught.value)
    prefix = f"{tmp_path / 'c.json'}: line "
    assert message.startswith(prefix), message
    line = int(message[len(prefix) :].split(":", 1)[0])
    assert f": {field}: " in message and why in message, message
    assert on_line in text.splitlines()[line - 1], (message, text.splitlines()[line - 1])


def test_a_file_that_is_not_json_names_the_line_and_column(tmp_path: Path) -> None:
    text = SXCMC.read_text(encoding="utf-8").replace('"320200", "320400"]', '"320200" "320400"]')
    (tmp_path / "c.json").write_text(text, encoding="utf-8")
    with pytest.raises(CircleFileError, match=r"line 20, column \d+: not valid JSON"):
        load_circle(tmp_path / "c.json")
