"""The supervision processor: the cooperation-project list, its milestones, and enforcement counts.

- `njmc.project.plan.v1` (compacted): each project's plan, with its milestones and planned dates;
- `njmc.project.milestone.v1`: status reports; one about an unknown project or milestone goes to
  the DLQ with its reason;
- `njmc.enforcement.action.v1`: joint enforcement actions, counted once per action_id when CLOSED
  in `tongcheng_enforcement_actions_total{domain}`.

A timer on the injected clock raises MILESTONE_OVERDUE on `njmc.supervision.alert.v1` once per
milestone, and refreshes the per-city gauges: milestones by state and the on-time ratio.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

import faust

from schemas.events import EnforcementAction, MilestoneReport, ProjectPlan
from services.common.actions import was_closed
from services.common.alerts import emit_alert
from services.common.runtime import Record, StreamService, Verdict, run_worker
from services.registry import processor
from services.supervision import rules
from services.supervision.state import ClosedAction, Project
from topics.context import Context
from topics.localtime import day_start, local_date
from topics.metrics import Metrics
from topics.settings import Settings

SERVICE = "supervision"
ALERT_NS = uuid.UUID("c3e5a7b9-1d2f-4a6c-8e0b-2d4f6a8c0e13")
log = logging.getLogger("tongcheng.supervision")
E = TypeVar("E", ProjectPlan, MilestoneReport)


class SupervisionService(StreamService):
    SERVICE = SERVICE

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        super().__init__(ctx, metrics, app)
        partitions = self.partitions("project.plan")
        self.projects = self.proc.table("projects", partitions, Project)
        self.actions = self.proc.table("closed-actions", partitions, ClosedAction)
        #: projects counted by their milestones' states, and filed by the next day one changes
        tz = ctx.circle.tz
        self.projects.count_by(lambda project, now: rules.labels(project, local_date(now, tz)))
        self.projects.due_by(lambda project, now: rules.next_look(project, local_date(now, tz)))
        self.agent("project.plan", self.each_event("project.plan", self.apply_plan))
        self.agent("project.milestone", self.each_event("project.milestone", self.apply_report))
        self.agent("enforcement.action", self.each_event("enforcement.action", self.count_action))
        self.timer(ctx.settings.sweep_seconds, self.sweep)

    async def apply_plan(self, event: Record, plan: ProjectPlan) -> Verdict:
        return self.update_project(plan.project_id, rules.apply_plan, plan)

    async def apply_report(self, event: Record, report: MilestoneReport) -> Verdict:
        return self.update_project(report.project_id, rules.apply_report, report)

    def update_project(
        self, project_id: str, apply: Callable[[Project | None, E], Project | None], event: E
    ) -> Verdict:
        key = project_id.encode()
        project = apply(self.projects.get(key), event)
        if project is None:
            return "duplicate"
        self.projects[key] = project
        return "applied"

    async def count_action(self, event: Record, action: EnforcementAction) -> Verdict:
        if action.status != "CLOSED":
            return "applied"
        key = action.action_id.encode()
        if was_closed(self.actions.get(key)):
            return "duplicate"
        self.actions[key] = ClosedAction(domain=action.domain, event_id=action.meta.event_id)
        self.metrics.enforcement_actions.labels(domain=action.domain).inc()
        return "applied"

    async def sweep(self) -> None:
        """MILESTONE_OVERDUE once per milestone that is due and not done; then the gauges."""
        now = self.ctx.clock.now()
        today = local_date(now, self.ctx.circle.tz)
        raised = 0
        for key in self.projects.ready(today):  # only the projects whose next look has come
            project = self.projects.get(key)
            if project is None:
                continue
            late = rules.newly_overdue(project, today)
            if late:
                project = rules.mark_alerted(project, late, now)
                self.projects[key] = project
                for mid in late:
                    ref = f"{project.project_id}/{mid}"
                    planned = project.milestones[mid].planned_date
                    await emit_alert(
                        self.proc,
                        ALERT_NS,
                        "MILESTONE_OVERDUE",
                        ref,
                        city=project.lead_city,
                        ref=ref,
                        # a milestone is due from the start of its planned day, local time (DESIGN.md:
                        # planned_date on or before today, a local date)
                        due_at=day_start(planned, self.ctx.circle.tz),
                        source_city=project.lead_city,
                        now=now,
                    )
                raised += len(late)
            else:
                self.projects.touch(key)
        await self.proc.flush()
        if raised:
            log.info("milestone sweep: %d MILESTONE_OVERDUE alerts as of %s", raised, today)
        counts = rules.counts_by_city(self.projects.counts())  # no project is read
        for city in self.ctx.circle.codes:
            mine = counts.get(city)
            for state in rules.STATES:
                self.metrics.project_milestones.labels(city=city, state=state).set(mine[state] if mine else 0)
            self.metrics.project_ontime_ratio.labels(city=city).set(rules.ontime_ratio(mine) if mine else 1.0)


def run(settings: Settings) -> int:
    return run_worker(settings, SupervisionService, processor(SERVICE).metrics_offset)
