"""zh-CN and en: the status page, problem+json titles and the city inbox follow the reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

from consumers.inbox import WorkItem
from services.api.problems import TITLES_ZH, Problem, ProblemLanguage, on_http_error, on_problem
from services.api.status import render
from topics.circle import DATA_DIR, load_circle
from topics.language import EN, ZH, from_locale, negotiate
from topics.settings import Settings

API = Path(__file__).resolve().parents[2] / "services" / "api"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", ZH),
        ("en-US,en;q=0.9", EN),
        ("en;q=0.5, zh-TW;q=0.8", ZH),
        ("fr, de", ZH),
        ("de, en;q=0.1", EN),
        ("*", ZH),
        (None, ZH),
        ("zh;q=0", ZH),
    ],
)
def test_accept_language_picks_zh_cn_or_en(header: str | None, lang: str) -> None:
    assert negotiate(header, ZH) == lang


def test_the_locale_gives_the_terminal_s_language() -> None:
    assert (from_locale("zh_CN.UTF-8"), from_locale("en_GB.UTF-8"), from_locale("C.UTF-8"), from_locale(None)) == (
        ZH,
        EN,
        EN,
        EN,
    )
    assert Settings.from_env({"LANG": "zh_CN.UTF-8"}).lang == ZH
    assert Settings.from_env({"LANG": "zh_CN.UTF-8", "TONGCHENG_LANG": "en"}).lang == EN


def test_every_problem_title_the_api_raises_has_a_chinese_title() -> None:
    call = re.compile(r'(?:Problem|problem_response|unavailable)\(\s*(?:\d{3},\s*)?"([^"]+)"', re.S)
    titles = {t for f in API.glob("*.py") for t in call.findall(f.read_text(encoding="utf-8"))}
    assert len(titles) > 15
    assert titles <= set(TITLES_ZH), sorted(titles - set(TITLES_ZH))


def test_problem_titles_follow_accept_language() -> None:
    app = FastAPI()
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_middleware(ProblemLanguage)

    @app.get("/x")
    async def x() -> None:
        raise Problem(404, "Unknown subject", "no credit profile for 91320106MA1XY31255")

    with TestClient(app) as client:
        zh = client.get("/x", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        en = client.get("/x", headers={"Accept-Language": "en"})
        plain = client.get("/x")
        missing = client.get("/nowhere", headers={"Accept-Language": "zh"})
    assert zh.status_code == 404 and zh.json()["title"] == "未知主体" and zh.headers["content-language"] == ZH
    assert zh.json()["detail"] == "no credit profile for 91320106MA1XY31255"
    assert zh.headers["content-type"].startswith("application/problem+json")
    assert en.json()["title"] == plain.json()["title"] == "Unknown subject"
    assert missing.json()["title"] == "未找到"


def _board(circle_file: Path | None = None) -> tuple[str, str]:
    circle = load_circle(circle_file)
    board = [
        {
            "city": c,
            "ontime_ratio": 1.0,
            "sanction_feedback_ratio": 0.5,
            "milestones_due": 1,
            "milestones_overdue": 0,
            "emergencies_unacknowledged": 0,
        }
        for c in circle.codes
    ]
    first, second = circle.codes[:2]
    incident = {
        "incident_id": "INC-1",
        "subtype": "WATER_POLLUTION",
        "effective_level": "II",
        "location_city": first,
        "acknowledgement": {second: "OVERDUE"},
    }
    args = (board, [incident], {"BLACK": 1, "FOCUS": 0, "RED": 2}, "2026-11-22T09:30:00+08:00", circle)
    return render(*args, lang=ZH), render(*args, lang=EN)


def test_the_status_page_speaks_chinese_with_the_cities_chinese_names_and_english_on_request() -> None:
    zh, en = _board()
    assert '<html lang="zh-CN">' in zh and "南京都市圈" in zh and "黑名单" in zh and "水污染" in zh
    assert "<td>南京</td>" in zh and "Nanjing" not in zh and "镇江" in zh  # the overdue city, by name
    assert '<html lang="en">' in en and "<td>Nanjing</td>" in en and "南京" not in en
    sxc_zh, _ = _board(DATA_DIR / "sxcmc.circle.json")
    assert "苏锡常都市圈" in sxc_zh and "<td>苏州</td>" in sxc_zh


def test_the_inbox_speaks_either_language() -> None:
    item = WorkItem(
        "APPLY",
        "91320106MA1XY31255",
        "南京示例化工有限公司",
        "BLACK",
        1,
        "320100",
        measures=[{"code": "HONOR_BAN", "description": "不得参加评先评优 / barred from honours", "legal_basis": "X"}],
    )
    zh = item.text(lambda code: f"南京（{code}）", ZH)
    en = item.text(lambda code: f"Nanjing ({code})", EN)
    assert zh.splitlines() == [
        "执行 黑名单 91320106MA1XY31255 南京示例化工有限公司（第 1 版，由南京（320100）发起）",
        "    HONOR_BAN：不得参加评先评优〔依据：X〕",
    ]
    assert en.splitlines()[1] == "    HONOR_BAN: barred from honours [X]"
