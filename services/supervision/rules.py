"""Project supervision as pure functions over a project's state (a JSON-able dict).

A milestone is due when its planned date is on or before today (a local date in the circle's
zone); done on time when DONE with an actual date on or before the planned one; overdue when due
and not DONE. A lead city's on-time ratio is done-on-time over due. A project's traffic light is
GREEN with nothing overdue, YELLOW when overdue by at most `red_after_days` (30), RED when overdue
by more or any milestone BLOCKED. `services/data/supervision_rules.json` holds `red_after_days`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError, Reason, Rejected
from topics.datafile import check_sources, read_json

RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "supervision_rules.json"
#: milestone states, as the `state` label of tongcheng_project_milestones
STATES = ("DONE_ON_TIME", "DONE_LATE", "OVERDUE", "BLOCKED", "UPCOMING")


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


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


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


def milestone(planned: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    """A planned milestone with its newest report (status, actual_date, progress_pct, issue), if any."""
    return {
        "title": planned["title"],
        "planned_date": _day(planned["planned_date"]).isoformat(),
        "status": reported.get("status", "NOT_STARTED"),
        "actual_date": reported.get("actual_date"),
        "progress_pct": reported.get("progress_pct"),
        "issue": reported.get("issue"),
    }


def apply_plan(project: dict[str, Any] | None, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The project with its plan (re)applied, keeping the reports of milestones that remain; None for a repeat."""
    if project is not None and project.get("plan_event_id") == plan["meta"]["event_id"]:
        return None
    sender, pid = plan["meta"]["source_city"], plan["project_id"]
    lead = project["lead_city"] if project is not None else plan["lead_city"]
    if sender != lead:
        raise Rejected(
            Reason.NOT_OWNER,
            f"project {pid} is led by city {lead}; city {sender} cannot "
            + ("re-plan it" if project is not None else "plan it for another lead city"),
            "meta.source_city",
        )
    old = (project or {}).get("milestones", {})
    milestones = {}
    for m in plan["milestones"]:
        kept = old.get(m["milestone_id"], {})
        milestones[m["milestone_id"]] = {
            **milestone(m, kept),
            "alerted_at": kept.get("alerted_at"),
            "report_event_id": kept.get("report_event_id"),
        }
    return {
        **{f: plan[f] for f in PLAN_FIELDS},
        "participating_cities": list(plan["participating_cities"]),
        "plan_event_id": plan["meta"]["event_id"],
        "milestones": milestones,
    }


def apply_report(project: dict[str, Any] | None, report: dict[str, Any]) -> dict[str, Any] | None:
    """The project with one milestone report applied; None for a repeat. Raises Rejected."""
    pid, mid = report["project_id"], report["milestone_id"]
    if project is None:
        raise Rejected(Reason.UNKNOWN_PROJECT, f"no project {pid} on the plan", "project_id")
    known = project["milestones"].get(mid)
    if known is None:
        raise Rejected(
            Reason.UNKNOWN_MILESTONE,
            f"project {pid} has no milestone {mid} (milestones: {', '.join(project['milestones'])})",
            "milestone_id",
        )
    if known.get("report_event_id") == report["meta"]["event_id"]:
        return None
    sender = report["meta"]["source_city"]
    if sender != project["lead_city"] and sender not in project["participating_cities"]:
        raise Rejected(
            Reason.NOT_OWNER,
            f"city {sender} does not take part in project {pid} "
            f"(lead {project['lead_city']}, participants {', '.join(project['participating_cities']) or 'none'})",
            "meta.source_city",
        )
    actual = report.get("actual_date")
    milestone = {
        **known,
        "status": report["status"],
        "actual_date": _day(actual).isoformat() if actual else None,
        "progress_pct": report.get("progress_pct"),
        "issue": report.get("issue"),
        "report_event_id": report["meta"]["event_id"],
    }
    return {**project, "milestones": {**project["milestones"], mid: milestone}}


def milestone_state(m: dict[str, Any], today: date) -> str:
    """The one state of a milestone on local day `today`; every output of a project derives from it."""
    planned = _day(m["planned_date"])
    if m["status"] == "DONE":
        done_on = _day(m["actual_date"]) if m.get("actual_date") else planned
        return "DONE_ON_TIME" if done_on <= planned else "DONE_LATE"
    if planned <= today:
        return "OVERDUE"
    return "BLOCKED" if m["status"] == "BLOCKED" else "UPCOMING"


def days_overdue(m: dict[str, Any], today: date) -> int:
    """Whole local days since the planned date of an OVERDUE milestone: 0 on the planned day itself
    (due, and so overdue, but by no whole day yet); 0 for a milestone in any other state."""
    return (today - _day(m["planned_date"])).days if milestone_state(m, today) == "OVERDUE" else 0


@dataclass(frozen=True)
class Assessment:
    """Everything the supervision outputs say about one project on one local day: the state and
    days overdue of each milestone, and the light. The API view, the gauges, the alerts and the
    light are all read from here, so they cannot disagree."""

    states: dict[str, str]
    days_overdue: dict[str, int]
    light: str

    @property
    def overdue(self) -> list[str]:
        return [mid for mid, state in self.states.items() if state == "OVERDUE"]


def assess(project: dict[str, Any], today: date, rules: SupervisionRules = RULES) -> Assessment:
    milestones = project["milestones"]
    states = {mid: milestone_state(m, today) for mid, m in milestones.items()}
    days = {mid: days_overdue(m, today) for mid, m in milestones.items()}
    overdue = [mid for mid, state in states.items() if state == "OVERDUE"]
    blocked = any(m["status"] == "BLOCKED" for m in milestones.values())
    worst = max((days[mid] for mid in overdue), default=0)
    # GREEN only with nothing overdue: a milestone due today is overdue by 0 days, and YELLOW
    light = "RED" if blocked or worst > rules.red_after_days else "YELLOW" if overdue else "GREEN"
    return Assessment(states, days, light)


def traffic_light(project: dict[str, Any], today: date, rules: SupervisionRules = RULES) -> str:
    return assess(project, today, rules).light


def newly_overdue(project: dict[str, Any], today: date) -> list[str]:
    """Milestones overdue today that have not been alerted yet (MILESTONE_OVERDUE is raised once)."""
    return [mid for mid in assess(project, today).overdue if project["milestones"][mid].get("alerted_at") is None]


def mark_alerted(project: dict[str, Any], mids: list[str], at: str) -> dict[str, Any]:
    milestones = dict(project["milestones"])
    for mid in mids:
        milestones[mid] = {**milestones[mid], "alerted_at": at}
    return {**project, "milestones": milestones}


def labels(project: dict[str, Any], today: date) -> list[str]:
    """What one project counts toward in its lead city's gauges on local day `today`: each
    milestone's state, and `due` and `due_on_time` for the ratio; the projects table keeps these
    counts with the state, changed by each write (and by the sweep on the days they change)."""
    city = project["lead_city"]
    states = assess(project, today).states
    out = []
    for mid, m in project["milestones"].items():
        out.append(f"{city}|{states[mid]}")
        if _day(m["planned_date"]) <= today:
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


def city_counts(projects: list[dict[str, Any]], today: date) -> dict[str, dict[str, int]]:
    """Per lead city: milestones per state, plus `due` and `due_on_time` for the ratio."""
    out = {p["lead_city"]: {s: 0 for s in (*STATES, "due", "due_on_time")} for p in projects}
    for city, counts in counts_by_city(Counter(label for p in projects for label in labels(p, today))).items():
        out[city] = counts
    return out


def next_look(project: dict[str, Any], today: date) -> date | None:
    """The local day the sweep must look at a project next: today while a milestone is overdue and
    not yet alerted, else the next planned date after today (a milestone falls due; the counts
    change); None when no planned date is ahead."""
    if newly_overdue(project, today):
        return today
    ahead = [day for m in project["milestones"].values() if (day := _day(m["planned_date"])) > today]
    return min(ahead) if ahead else None


def ontime_ratio(counts: dict[str, int]) -> float:
    """Done on time over due; 1.0 while nothing is due."""
    return counts["due_on_time"] / counts["due"] if counts["due"] else 1.0


def project_view(project: dict[str, Any], today: date) -> dict[str, Any]:
    """A project with its milestones' states and its traffic light, as the API shows it."""
    seen = assess(project, today)
    return {
        **{k: v for k, v in project.items() if k not in ("plan_event_id", "milestones")},
        "traffic_light": seen.light,
        "milestones": [
            {
                "milestone_id": mid,
                "title": m["title"],
                "planned_date": m["planned_date"],
                "status": m["status"],
                "actual_date": m["actual_date"],
                "progress_pct": m["progress_pct"],
                "issue": m.get("issue"),
                "state": seen.states[mid],
                "days_overdue": seen.days_overdue[mid],
            }
            for mid, m in sorted(project["milestones"].items(), key=lambda kv: (kv[1]["planned_date"], kv[0]))
        ],
    }
