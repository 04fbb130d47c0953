"""The status page at `/`: the per-city scoreboard, open emergencies and list counts.

Rendered on the server from the same figures as `/v1/supervision/cities`, so it needs no script;
it reloads itself every 10 seconds. It speaks zh-CN by default, with the cities' Chinese names, and
English to a reader whose Accept-Language prefers it.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from schemas.convert import to_json
from services.api.bodies import CityScore, IncidentBody
from services.api.supervision import Supervision
from topics.circle import Circle
from topics.language import EN, LANGUAGES, ZH, negotiate

STYLE = """
body { font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 1.5rem; color: #1b1f24; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; } th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #d0d7de; }
th { text-align: left; background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b42318; font-weight: 600; } .muted { color: #57606a; }
.lists span { display: inline-block; margin-right: 1.5rem; font-size: 1.1rem; }
"""


#: the page's words; the figures are the same in both
TEXT: dict[str, dict[str, str]] = {
    ZH: {
        "title": "同城 运行状态",
        "heading": "同城：{circle}事件总线",
        "as_of": "数据截至 {as_of}；本页每 10 秒自动刷新。接口文档：{docs}，运行指标：{metrics}。",
        "scoreboard": "各城市督导情况",
        "city": "城市",
        "code": "代码",
        "ontime": "按期完成率",
        "due": "已到期节点",
        "overdue": "逾期节点",
        "unacknowledged": "未确认应急报告",
        "feedback": "惩戒措施反馈率",
        "lists": "联合奖惩名单",
        "emergencies": "未结应急事件",
        "incident": "事件",
        "subtype": "类型",
        "level": "级别",
        "at": "地点",
        "acknowledged": "已确认",
        "overdue_cities": "逾期未确认",
        "none": "无",
        "no_incidents": "当前没有未结应急事件。",
        "level_fmt": "{level}级",
    },
    EN: {
        "title": "Tongcheng status",
        "heading": "Tongcheng: the event bus of the {circle}",
        "as_of": "As of {as_of}; this page reloads every 10 seconds. API: {docs}, metrics: {metrics}.",
        "scoreboard": "Scoreboard by city",
        "city": "city",
        "code": "code",
        "ontime": "on-time ratio",
        "due": "milestones due",
        "overdue": "overdue",
        "unacknowledged": "unacknowledged emergency reports",
        "feedback": "sanction feedback ratio",
        "lists": "Joint reward-and-punishment lists",
        "emergencies": "Open emergencies",
        "incident": "incident",
        "subtype": "subtype",
        "level": "level",
        "at": "at",
        "acknowledged": "acknowledged",
        "overdue_cities": "overdue",
        "none": "none",
        "no_incidents": "No open incidents.",
        "level_fmt": "{level}",
    },
}
LIST_NAMES = {ZH: {"RED": "红名单", "FOCUS": "重点关注名单", "BLACK": "黑名单"}, EN: {}}
SUBTYPES = {
    ZH: {
        "WATER_POLLUTION": "水污染",
        "AIR_POLLUTION": "大气污染",
        "FLOOD": "洪涝",
        "HAZMAT_SPILL": "危化品泄漏",
        "EPIDEMIC": "疫情",
    },
    EN: {},
}


def pct(value: float) -> str:
    return f"{value:.0%}"


def render(
    board: list[CityScore],
    emergencies: list[IncidentBody],
    lists: dict[str, int],
    as_of: str,
    circle: Circle,
    lang: str = ZH,
) -> str:
    t = TEXT[lang]

    def city(code: str | None) -> str:
        known = circle.cities.get(code or "")
        if known is None:
            return code or ""
        return known.name_zh if lang == ZH else known.name

    rows = []
    for c in board:
        ontime_cls = ' class="num bad"' if c["ontime_ratio"] < 0.8 else ' class="num"'
        feedback_cls = ' class="num bad"' if c["sanction_feedback_ratio"] < 0.8 else ' class="num"'
        waiting_cls = ' class="num bad"' if c["emergencies_unacknowledged"] else ' class="num"'
        rows.append(
            f'<tr data-city="{c["city"]}"><td>{escape(city(c["city"]))}</td>'
            f'<td class="muted">{c["city"]}</td>'
            f"<td{ontime_cls}>{pct(c['ontime_ratio'])}</td>"
            f'<td class="num">{c["milestones_due"]}</td>'
            f'<td class="num">{c["milestones_overdue"]}</td>'
            f"<td{waiting_cls}>{c['emergencies_unacknowledged']}</td>"
            f"<td{feedback_cls}>{pct(c['sanction_feedback_ratio'])}</td></tr>"
        )
    incidents = []
    separator = "、" if lang == ZH else ", "
    for i in emergencies:
        waiting = [code for code, status in i["acknowledgement"].items() if status != "ACKNOWLEDGED"]
        overdue = [city(code) for code, status in i["acknowledgement"].items() if status == "OVERDUE"]
        subtype = i["subtype"] or ""
        incidents.append(
            f"<tr><td>{escape(i['incident_id'])}</td><td>{escape(SUBTYPES[lang].get(subtype, subtype))}</td>"
            f"<td>{escape(t['level_fmt'].format(level=i['effective_level']))}</td>"
            f"<td>{escape(city(i['location_city']))}</td>"
            f'<td class="num">{len(i["acknowledgement"]) - len(waiting)} / {len(i["acknowledgement"])}</td>'
            f'<td class="{"bad" if overdue else "muted"}">{escape(separator.join(overdue)) or t["none"]}</td></tr>'
        )
    incidents_html = (
        f"<table><tr><th>{t['incident']}</th><th>{t['subtype']}</th><th>{t['level']}</th><th>{t['at']}</th>"
        f"<th>{t['acknowledged']}</th><th>{t['overdue_cities']}</th></tr>" + "".join(incidents) + "</table>"
        if incidents
        else f'<p class="muted">{t["no_incidents"]}</p>'
    )
    lists_html = "".join(
        f'<span id="list-{name}">{LIST_NAMES[lang].get(name, name)} <b>{n}</b></span>' for name, n in lists.items()
    )
    circle_name = circle.name_zh if lang == ZH else circle.name
    as_of_line = t["as_of"].format(
        as_of=escape(as_of), docs='<a href="/docs">/docs</a>', metrics='<a href="/metrics">/metrics</a>'
    )
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>{t["title"]}</title><style>{STYLE}</style></head>
<body><h1>{escape(t["heading"].format(circle=circle_name))}</h1>
<p class="muted">{as_of_line}</p>
<h2>{t["scoreboard"]}</h2>
<table id="scoreboard"><tr><th>{t["city"]}</th><th>{t["code"]}</th><th>{t["ontime"]}</th><th>{t["due"]}</th>
<th>{t["overdue"]}</th><th>{t["unacknowledged"]}</th><th>{t["feedback"]}</th></tr>
{"".join(rows)}</table>
<h2>{t["lists"]}</h2><p class="lists">{lists_html}</p>
<h2>{t["emergencies"]}</h2>{incidents_html}
</body></html>"""


def status_router(figures: Supervision) -> APIRouter:
    router = APIRouter()

    def page(lang: str) -> str:
        now = to_json(figures.clock.now())
        return render(figures.scoreboard(), figures.emergencies(True), figures.list_counts(), now, figures.circle, lang)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status(request: Request, lang: str | None = None) -> HTMLResponse:
        """zh-CN unless the reader's Accept-Language (or `?lang=en`) prefers English."""
        chosen = lang if lang in LANGUAGES else negotiate(request.headers.get("accept-language"), ZH)
        headers = {"Content-Language": chosen, "Vary": "Accept-Language"}
        return HTMLResponse(await run_in_threadpool(page, chosen), headers=headers)

    return router
