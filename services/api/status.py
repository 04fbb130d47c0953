"""The status page at `/`: the per-city scoreboard, open emergencies and list counts.

Rendered on the server from the same figures as `/v1/supervision/cities`, so it needs no script;
it reloads itself every 10 seconds.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from schemas.codec import to_json
from services.api.supervision import Supervision

STYLE = """
body { font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 1.5rem; color: #1b1f24; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; } th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #d0d7de; }
th { text-align: left; background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b42318; font-weight: 600; } .muted { color: #57606a; }
.lists span { display: inline-block; margin-right: 1.5rem; font-size: 1.1rem; }
"""


def pct(value: float) -> str:
    return f"{value:.0%}"


def render(board: list[dict[str, Any]], emergencies: list[dict[str, Any]], lists: dict[str, int], as_of: str) -> str:
    rows = []
    for c in board:
        ontime_cls = ' class="num bad"' if c["ontime_ratio"] < 0.8 else ' class="num"'
        feedback_cls = ' class="num bad"' if c["sanction_feedback_ratio"] < 0.8 else ' class="num"'
        waiting_cls = ' class="num bad"' if c["emergencies_unacknowledged"] else ' class="num"'
        rows.append(
            f'<tr data-city="{c["city"]}"><td>{escape(c["name_zh"])} {escape(c["name"])}</td>'
            f'<td class="muted">{c["city"]}</td>'
            f"<td{ontime_cls}>{pct(c['ontime_ratio'])}</td>"
            f'<td class="num">{c["milestones_due"]}</td>'
            f'<td class="num">{c["milestones_overdue"]}</td>'
            f"<td{waiting_cls}>{c['emergencies_unacknowledged']}</td>"
            f"<td{feedback_cls}>{pct(c['sanction_feedback_ratio'])}</td></tr>"
        )
    incidents = []
    for i in emergencies:
        waiting = [city for city, status in i["acknowledgement"].items() if status != "ACKNOWLEDGED"]
        overdue = [city for city, status in i["acknowledgement"].items() if status == "OVERDUE"]
        incidents.append(
            f"<tr><td>{escape(i['incident_id'])}</td><td>{escape(i['subtype'] or '')}</td>"
            f"<td>{i['effective_level']}</td><td>{escape(i['location_city'] or '')}</td>"
            f'<td class="num">{len(i["acknowledgement"]) - len(waiting)} / {len(i["acknowledgement"])}</td>'
            f'<td class="{"bad" if overdue else "muted"}">{", ".join(overdue) or "none"}</td></tr>'
        )
    incidents_html = (
        "<table><tr><th>incident</th><th>subtype</th><th>level</th><th>at</th><th>acknowledged</th>"
        "<th>overdue</th></tr>" + "".join(incidents) + "</table>"
        if incidents
        else '<p class="muted">No open incidents.</p>'
    )
    lists_html = "".join(f'<span id="list-{name}">{name} <b>{n}</b></span>' for name, n in lists.items())
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>Tongcheng 同城 status</title><style>{STYLE}</style></head>
<body><h1>Tongcheng 同城: the circle's event bus</h1>
<p class="muted">As of {escape(as_of)}; this page reloads every 10 seconds.
API: <a href="/docs">/docs</a>, metrics: <a href="/metrics">/metrics</a>.</p>
<h2>Scoreboard by city</h2>
<table id="scoreboard"><tr><th>city</th><th>code</th><th>on-time ratio</th><th>milestones due</th>
<th>overdue</th><th>unacknowledged emergency reports</th><th>sanction feedback ratio</th></tr>
{"".join(rows)}</table>
<h2>Joint reward-and-punishment lists</h2><p class="lists">{lists_html}</p>
<h2>Open emergencies</h2>{incidents_html}
</body></html>"""


def status_router(figures: Supervision) -> APIRouter:
    router = APIRouter()

    def page() -> str:
        return render(
            figures.scoreboard(), figures.emergencies(True), figures.list_counts(), to_json(figures.clock.now())
        )

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status() -> HTMLResponse:
        return HTMLResponse(await run_in_threadpool(page))

    return router
