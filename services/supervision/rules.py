"""Project supervision as pure functions over a project's state (a `Project`, services/supervision/state.py).

A milestone is due when its planned date is on or before today (a local date in the circle's
zone); done on time when DONE with an actual date on or before the planned one; overdue when due
and not DONE. A lead city's on-time ratio is done-on-time over due. A project's traffic light is
GREEN with nothing overdue, YELLOW when overdue by at most `red_after_days` (30), RED when overdue
by more or any milestone BLOCKED. `services/data/supervision_rules.json` holds `red_after_days`.

The rules take the input events as their Structs (schemas/events.py) and return new `Project`s,
never changing one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal, Protocol

from msgspec import structs

from schemas.convert import JsonObject
from schemas.errors import ConfigError, Reason, Rejected
from schemas.events import Milestone, MilestoneReport, MilestoneStatus, ProjectPlan
from services.supervision.state import Project, TrackedMilestone
from topics.datafile import check_sources, read_json

RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "supervision_rules.json"
#: a milestone's state on a local day, as the `state` label of tongcheng_project_milestones
MilestoneState = Literal["DONE_ON_TIME", "DONE_LATE", "OVERDUE", "BLOCKED", "UPCOMING"]
STATES: tuple[MilestoneState, ...] = ("DONE_ON_TIME", "DONE_LATE", "OVERDUE", "BLOCKED", "UPCOMING")
Light = Literal["GREEN", "YELLOW", "RED"]


@dataclass(frozen=True)
class SupervisionRules:
    red_after_days: int
    #: each entry's source, by its path in the file
    sources: dict[str, str]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> SupervisionRules:
        raw = read_json(path, "supervision rules")
        days = raw.get("red_after_days") if isinstance(raw, dict) else None
        if not isinstance(days, int) or days < 0:
            raise ConfigError(f"{path}: red_after_days: must be a whole number of days, not {days!r}")
        return cls(days, check_sources(raw, ["red_after_days"], path))


RULES = SupervisionRules.load()


#: the plan fields a project keeps, as the processor's table and the API's view show them
PLAN_FIELDS = (
    "project_id",
    "name",
    "category",
    "lead_city",
    "participating_cities",
    "responsible_unit",
    "responsible_person",
    "plan_year",
)


class Reported(Protocol):
    """What a milestone's newest report says of it: a MilestoneReport, or its read-model row."""

    @property
    def status(self) -> MilestoneStatus: ...
    @property
    def actual_date(self) -> date | None: ...
    @property
    def progress_pct(self) -> int | None: ...
    @property
    def issue(self) -> str | None: ...


def milestone(planned: Milestone, reported: Reported | None) -> TrackedMilestone:
    """A planned milestone with its newest report (status, actual_date, progress_pct, issue), if any."""
    if reported is None:
        return TrackedMilestone(title=planned.title, planned_date=planned.planned_date)
    return TrackedMilestone(
        title=planned.title,
        planned_date=planned.planned_date,
        status=reported.status,
        actual_date=reported.actual_date,
        progress_pct=reported.progress_pct,
        issue=reported.issue,
    )


def apply_plan(project: Project | None, plan: ProjectPlan) -> Project | None:
    """The project with its plan (re)applied, keeping the reports of milestones that remain; None for a repeat."""
    if project is not None and project.plan_event_id == plan.meta.event_id:
        return None
    sender, pid = plan.meta.source_city, plan.project_id
    lead = project.lead_city if project is not None else plan.lead_city
    if sender != lead:
        raise Rejected(
            Reason.NOT_OWNER,
            f"project {pid} is led by city {lead}; city {sender} cannot "
            + ("re-plan it" if project is not None else "plan it for another lead city"),
            "meta.source_city",
        )
    old = project.milestones if project is not None else {}
    milestones = {}
    for m in plan.milestones:
        kept = old.get(m.milestone_id)
        milestones[m.milestone_id] = (
            milestone(m, None)
            if kept is None
            else structs.replace(kept, title=m.title, planned_date=m.planned_date)  # its report and alert kept
        )
    return Project(
        project_id=plan.project_id,
        name=plan.name,
        category=plan.category,
        lead_city=plan.lead_city,
        participating_cities=list(plan.participating_cities),
        responsible_unit=plan.responsible_unit,
        responsible_person=plan.responsible_person,
        plan_year=plan.plan_year,
        plan_event_id=plan.meta.event_id,
        milestones=milestones,
    )


def apply_report(project: Project | None, report: MilestoneReport) -> Project | None:
    """The project with one milestone report applied; None for a repeat. Raises Rejected."""
    pid, mid = report.project_id, report.milestone_id
    if project is None:
        raise Rejected(Reason.UNKNOWN_PROJECT, f"no project {pid} on the plan", "project_id")
    known = project.milestones.get(mid)
    if known is None:
        raise Rejected(
            Reason.UNKNOWN_MILESTONE,
            f"project {pid} has no milestone {mid} (milestones: {', '.join(project.milestones)})",
            "milestone_id",
        )
    if known.report_event_id == report.meta.event_id:
        return None
    sender = report.meta.source_city
    if sender != project.lead_city and sender not in project.participating_cities:
        raise Rejected(
            Reason.NOT_OWNER,
            f"city {sender} does not take part in project {pid} "
            f"(lead {project.lead_city}, participants {', '.join(project.participating_cities) or 'none'})",
            "meta.source_city",
        )
    changed = structs.replace(
        known,
        status=report.status,
        actual_date=report.actual_date,
        progress_pct=report.progress_pct,
        issue=report.issue,
        report_event_id=report.meta.event_id,
    )
    return structs.replace(project, milestones={**project.milestones, mid: changed})


def milestone_state(m: TrackedMilestone, today: date) -> MilestoneState:
    """The one state of a milestone on local day `today`; every output of a project derives from it."""
    planned = m.planned_date
    if m.status == "DONE":
        done_on = m.actual_date or planned
        return "DONE_ON_TIME" if done_on <= planned else "DONE_LATE"
    if planned <= today:
        return "OVERDUE"
    return "BLOCKED" if m.status == "BLOCKED" else "UPCOMING"


def days_overdue(m: TrackedMilestone, today: date) -> int:
    """Whole local days since the planned date of an OVERDUE milestone: 0 on the planned day itself
    (due, and so overdue, but by no whole day yet); 0 for a milestone in any other state."""
    return (today - m.planned_date).days if milestone_state(m, today) == "OVERDUE" else 0


@dataclass(frozen=True)
class Assessment:
    """Everything the supervision outputs say about one project on one local day: the state and
    days overdue of each milestone, and the light. The API view, the gauges, the alerts and the
    light are all read from here, so they cannot disagree."""

    states: dict[str, MilestoneState]
    days_overdue: dict[str, int]
    light: Light

    @property
    def overdue(self) -> list[str]:
        return [mid for mid, state in self.states.items() if state == "OVERDUE"]


def assess(project: Project, today: date, rules: SupervisionRules = RULES) -> Assessment:
    milestones = project.milestones
    states = {mid: milestone_state(m, today) for mid, m in milestones.items()}
    days = {mid: days_overdue(m, today) for mid, m in milestones.items()}
    overdue = [mid for mid, state in states.items() if state == "OVERDUE"]
    blocked = any(m.status == "BLOCKED" for m in milestones.values())
    worst = max((days[mid] for mid in overdue), default=0)
    # GREEN only with nothing overdue: a milestone due today is overdue by 0 days, and YELLOW
    light: Light = "RED" if blocked or worst > rules.red_after_days else "YELLOW" if overdue else "GREEN"
    return Assessment(states, days, light)


def traffic_light(project: Project, today: date, rules: SupervisionRules = RULES) -> Light:
    return assess(project, today, rules).light


def newly_overdue(project: Project, today: date) -> list[str]:
    """Milestones overdue today that have not been alerted yet (MILESTONE_OVERDUE is raised once)."""
    return [mid for mid in assess(project, today).overdue if project.milestones[mid].alerted_at is None]


def mark_alerted(project: Project, mids: list[str], at: datetime) -> Project:
    milestones = dict(project.milestones)
    for mid in mids:
        milestones[mid] = structs.replace(milestones[mid], alerted_at=at)
    return structs.replace(project, milestones=milestones)


def labels(project: Project, today: date) -> list[str]:
    """What one project counts toward in its lead city's gauges on local day `today`: each
    milestone's state, and `due` and `due_on_time` for the ratio; the projects table keeps these
    counts with the state, changed by each write (and by the sweep on the days they change)."""
    city = project.lead_city
    states = assess(project, today).states
    out = []
    for mid, m in project.milestones.items():
        out.append(f"{city}|{states[mid]}")
        if m.planned_date <= today:
            out.append(f"{city}|due")
            if states[mid] == "DONE_ON_TIME":
                out.append(f"{city}|due_on_time")
    return out


def counts_by_city(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per lead city: milestones per state, plus `due` and `due_on_time`, from the label counts."""
    out: dict[str, dict[str, int]] = {}
    for label, n in counts.items():
        city, what = label.split("|", 1)
        out.setdefault(city, {s: 0 for s in (*STATES, "due", "due_on_time")})[what] += n
    return out


def city_counts(projects: list[Project], today: date) -> dict[str, dict[str, int]]:
    """Per lead city: milestones per state, plus `due` and `due_on_time` for the ratio."""
    out = {p.lead_city: {s: 0 for s in (*STATES, "due", "due_on_time")} for p in projects}
    for city, counts in counts_by_city(Counter(label for p in projects for label in labels(p, today))).items():
        out[city] = counts
    return out


def next_look(project: Project, today: date) -> date | None:
    """The local day the sweep must look at a project next: today while a milestone is overdue and
    not yet alerted, else the next planned date after today (a milestone falls due; the counts
    change); None when no planned date is ahead."""
    if newly_overdue(project, today):
        return today
    ahead = [m.planned_date for m in project.milestones.values() if m.planned_date > today]
    return min(ahead) if ahead else None


def ontime_ratio(counts: dict[str, int]) -> float:
    """Done on time over due; 1.0 while nothing is due."""
    return counts["due_on_time"] / counts["due"] if counts["due"] else 1.0


def project_view(project: Project, today: date, total_investment: str | None = None) -> JsonObject:
    """A project with its milestones' states and its traffic light, as the API shows it (with the
    plan's `total_investment`, which the API reads from the read model, after the plan's fields)."""
    seen = assess(project, today)
    view: JsonObject = {
        "project_id": project.project_id,
        "name": project.name,
        "category": project.category,
        "lead_city": project.lead_city,
        "participating_cities": project.participating_cities,
        "responsible_unit": project.responsible_unit,
        "responsible_person": project.responsible_person,
        "plan_year": project.plan_year,
    }
    if total_investment is not None:
        view["total_investment"] = total_investment
    view["traffic_light"] = seen.light
    view["milestones"] = [
        {
            "milestone_id": mid,
            "title": m.title,
            "planned_date": m.planned_date.isoformat(),
            "status": m.status,
            "actual_date": m.actual_date.isoformat() if m.actual_date is not None else None,
            "progress_pct": m.progress_pct,
            "issue": m.issue,
            "state": seen.states[mid],
            "days_overdue": seen.days_overdue[mid],
        }
        for mid, m in sorted(project.milestones.items(), key=lambda kv: (kv[1].planned_date, kv[0]))
    ]
    return view
