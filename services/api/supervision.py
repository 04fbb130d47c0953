"""Supervision endpoints over the SQL read model: emergencies, projects and the per-city scoreboard.

Every figure is computed from the read model with the same pure rules the processors use
(services/emergency/rules.py, services/supervision/rules.py, services/sanctions/feedback.py) and
the injected clock, so any number of API processes answer alike, whatever the number of workers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import msgspec
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Query
from starlette.concurrency import run_in_threadpool

from schemas.convert import JsonObject, to_json
from schemas.events import Milestone, ReportKind
from services.api.auth import Auth
from services.api.bodies import (
    ANY_JSON,
    OBJECT,
    CityScore,
    IncidentBody,
    IncidentsBody,
    RecipientBody,
    ReportBody,
    ScoreboardBody,
)
from services.api.problems import Problem
from services.api.reads import ReadModel
from services.emergency import rules as emergency
from services.emergency.state import Incident, Report, Slot
from services.readmodel.rows import (
    EmergencyAckRow,
    EmergencyReportRow,
    MilestoneReportRow,
    ProjectPlanRow,
    SanctionTrackingRow,
    utc,
)
from services.readmodel.tables import (
    emergency_acks,
    emergency_reports,
    milestone_reports,
    project_plans,
    sanction_entries,
    sanction_tracking,
)
from services.sanctions import feedback
from services.supervision import rules as supervision
from services.supervision.state import Project
from topics.circle import Circle
from topics.clock import Clock
from topics.localtime import local_date


def incidents(report_rows: Sequence[EmergencyReportRow], ack_rows: Sequence[EmergencyAckRow]) -> dict[str, Incident]:
    """Incidents as the processor keeps them (services/emergency/state.py) from read-model rows."""
    acked = {(a.incident_id, a.report_seq, a.city): utc(a.acknowledged_at) for a in ack_rows}
    rows: dict[str, list[EmergencyReportRow]] = defaultdict(list)
    for r in sorted(report_rows, key=lambda r: (r.incident_id, r.report_seq)):
        rows[r.incident_id].append(r)
    out: dict[str, Incident] = {}
    for iid, mine in rows.items():
        first, last = mine[0], mine[-1]
        out[iid] = Incident(
            incident_id=iid,
            sender=first.sender,
            subtype=first.subtype,
            location_city=first.location_city,
            reports={
                str(r.report_seq): Report(
                    # the dispatch's report_kind is its notice's (a string in emergency.dispatch's schema)
                    kind=cast(ReportKind | None, r.report_kind),
                    level=r.raised_from or r.effective_level,
                    effective_level=r.effective_level,
                    sent_at=utc(r.dispatched_at),
                    recipients={
                        rec["city"]: Slot(
                            reason=rec["reason"],
                            deadline=datetime.fromisoformat(rec["ack_deadline"].replace("Z", "+00:00")),
                            acked_at=acked.get((iid, r.report_seq, rec["city"])),
                        )
                        for rec in r.recipients
                    },
                )
                for r in mine
            },
            closed=any(r.report_kind == "FINAL" for r in mine),
            last_seq=last.report_seq,
            level=last.effective_level,
        )
    return out


def ack_status(slot: Slot, now: datetime) -> str:
    return emergency.ack_status(slot, now)


def incident_json(inc: Incident, now: datetime) -> IncidentBody:
    cities: dict[str, list[str]] = defaultdict(list)
    reports: list[ReportBody] = []
    for seq, report in sorted(inc.reports.items(), key=lambda kv: int(kv[0])):
        recipients: list[RecipientBody] = []
        for city, slot in report.recipients.items():
            status = ack_status(slot, now)
            cities[city].append(status)
            recipients.append(
                {
                    "city": city,
                    "reason": slot.reason,
                    "ack_deadline": to_json(slot.deadline),
                    "acknowledged_at": to_json(slot.acked_at) if slot.acked_at else None,
                    "status": status,
                }
            )
        reports.append(
            {
                "report_seq": int(seq),
                "report_kind": report.kind,
                "effective_level": report.effective_level,
                "raised_from": report.raised_from,
                "dispatched_at": to_json(report.sent_at),
                "recipients": recipients,
            }
        )

    def worst(statuses: list[str]) -> str:
        return next(s for s in ("OVERDUE", "PENDING", "ACKNOWLEDGED") if s in statuses)

    return {
        "incident_id": inc.incident_id,
        "open": not inc.closed,
        "effective_level": inc.level,
        "sender": inc.sender,
        "subtype": inc.subtype,
        "location_city": inc.location_city,
        "acknowledgement": {city: worst(statuses) for city, statuses in sorted(cities.items())},
        "reports": reports,
    }


def project_state(plan: ProjectPlanRow, report_rows: Sequence[MilestoneReportRow]) -> Project:
    """A project as the processor keeps it (services/supervision/state.py) from read-model rows:
    the plan's row, and the newest report's row per milestone."""
    reported = {r.milestone_id: r for r in report_rows}
    planned = msgspec.convert(plan.milestones, list[Milestone])  # the plan's milestones, as JSON
    return Project(
        project_id=plan.project_id,
        name=plan.name,
        category=plan.category,
        lead_city=plan.lead_city,
        participating_cities=plan.participating_cities,
        responsible_unit=plan.responsible_unit,
        responsible_person=plan.responsible_person,
        plan_year=plan.plan_year,
        milestones={m.milestone_id: supervision.milestone(m, reported.get(m.milestone_id)) for m in planned},
    )


class Supervision:
    """The supervision figures, read from the read model on the clock."""

    def __init__(self, model: ReadModel, circle: Circle, clock: Clock) -> None:
        self.model = model
        self.circle = circle
        self.clock = clock

    def incidents(self, open_only: bool) -> dict[str, Incident]:
        reports = sa.select(emergency_reports)
        acks = sa.select(emergency_acks)
        if open_only:
            closed = sa.select(emergency_reports.c.incident_id).where(emergency_reports.c.report_kind == "FINAL")
            reports = reports.where(emergency_reports.c.incident_id.not_in(closed))
            acks = acks.where(emergency_acks.c.incident_id.not_in(closed))
        return incidents(self.model.rows(reports, EmergencyReportRow), self.model.rows(acks, EmergencyAckRow))

    def emergencies(self, open_only: bool) -> list[IncidentBody]:
        now = self.clock.now()
        items = [incident_json(inc, now) for inc in self.incidents(open_only).values()]
        items.sort(key=lambda i: i["reports"][0]["dispatched_at"], reverse=True)
        return items

    def project(self, project_id: str) -> JsonObject | None:
        plan = self.model.one(project_plans, project_plans.c.project_id == project_id, ProjectPlanRow)
        if plan is None:
            return None
        reports = self.model.rows(
            sa.select(milestone_reports).where(milestone_reports.c.project_id == project_id), MilestoneReportRow
        )
        today = local_date(self.clock.now(), self.circle.tz)
        return supervision.project_view(project_state(plan, reports), today, total_investment=plan.total_investment)

    def list_counts(self) -> dict[str, int]:
        t = sanction_entries
        rows = self.model.tuples(sa.select(t.c.list, sa.func.count()).where(t.c.status == "LISTED").group_by(t.c.list))
        return {"BLACK": 0, "FOCUS": 0, "RED": 0, **{r[0]: r[1] for r in rows}}

    def scoreboard(self) -> list[CityScore]:
        now = self.clock.now()
        plans = self.model.rows(sa.select(project_plans), ProjectPlanRow)
        reports: dict[str, list[MilestoneReportRow]] = defaultdict(list)
        for r in self.model.rows(sa.select(milestone_reports), MilestoneReportRow):
            reports[r.project_id].append(r)
        today = local_date(now, self.circle.tz)
        counts = supervision.city_counts([project_state(p, reports[p.project_id]) for p in plans], today)
        waiting: dict[str, int] = defaultdict(int)
        for inc in self.incidents(False).values():
            for city, n in emergency.unacknowledged(inc).items():
                waiting[city] += n
        rows = self.model.rows(sa.select(sanction_tracking), SanctionTrackingRow)
        answered = feedback.count(((c["city"], c["status"]) for row in rows for c in row.cities), self.circle.codes)
        board: list[CityScore] = []
        for code, member in self.circle.cities.items():
            mine = counts.get(code)
            board.append(
                {
                    "city": code,
                    "name": member.name,
                    "name_zh": member.name_zh,
                    "milestones_due": mine["due"] if mine else 0,
                    "milestones_overdue": mine["OVERDUE"] if mine else 0,
                    "ontime_ratio": supervision.ontime_ratio(mine) if mine else 1.0,
                    "emergencies_unacknowledged": waiting.get(code, 0),
                    "sanction_feedback_ratio": feedback.ratio(*answered[code]),
                    "sanction_listings_answered": answered[code][0],
                    "sanction_listings_missed": answered[code][1],
                }
            )
        return board


def supervision_router(figures: Supervision, auth: Auth) -> APIRouter:
    router = APIRouter(dependencies=[Depends(auth.require("read"))])

    @router.get(
        "/v1/emergencies",
        summary="Incidents, with the acknowledgement status of every recipient city",
        response_model=ANY_JSON,
    )
    async def emergencies(
        open: bool = Query(False, description="only incidents without a FINAL report"),
    ) -> IncidentsBody:
        return {"items": await run_in_threadpool(figures.emergencies, open)}

    @router.get(
        "/v1/projects/{project_id}",
        summary="A project, with its milestones, their states and its light",
        response_model=OBJECT,
    )
    async def project(project_id: str = Path(max_length=128)) -> JsonObject:
        found = await run_in_threadpool(figures.project, project_id)
        if found is None:
            raise Problem(404, "Unknown project", f"no project {project_id!r} on the cooperation-project list")
        return found

    @router.get("/v1/supervision/cities", summary="The per-city scoreboard", response_model=OBJECT)
    async def cities() -> ScoreboardBody:
        return {"as_of": to_json(figures.clock.now()), "cities": await run_in_threadpool(figures.scoreboard)}

    return router
