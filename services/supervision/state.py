"""The supervision processor's state: a `Project` per project in the `projects` table, and a
`ClosedAction` per closed enforcement action in the `closed-actions` table.

Each is a frozen msgspec Struct, stored as a msgpack map keyed by its field names
(services/common/runtime/encoding.py); the rules return changed copies (`msgspec.structs.replace`),
never changing one. The field names are those of the documents stored before these Structs, whose
dates and instants were ISO-8601 strings: such a document still reads as its Struct.

The API rebuilds projects of the same Structs from the read model (services/api/supervision.py),
which does not hold what only the processor needs (the plan's and reports' event ids, the alerts
raised): those fields have defaults.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from schemas.events import EnforcementDomain, MilestoneStatus, ProjectCategory


class TrackedMilestone(msgspec.Struct, frozen=True, kw_only=True):
    """A planned milestone with its newest report (status, actual date, progress, issue), and when
    the sweep alerted that it was overdue."""

    title: str
    planned_date: date
    status: MilestoneStatus = "NOT_STARTED"
    actual_date: date | None = None
    progress_pct: int | None = None
    issue: str | None = None
    alerted_at: datetime | None = None
    report_event_id: str | None = None  # the newest report's; None in the API's projects


class Project(msgspec.Struct, frozen=True, kw_only=True):
    """A project of the cooperation-project list: its plan and its milestones by milestone_id, in
    the plan's order."""

    project_id: str
    name: str
    category: ProjectCategory
    lead_city: str
    participating_cities: list[str]
    responsible_unit: str
    responsible_person: str
    plan_year: int
    plan_event_id: str | None = None  # the plan's; None in the API's projects
    milestones: dict[str, TrackedMilestone]


class ClosedAction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An enforcement action counted as CLOSED (by its CLOSED report's event). Only closed actions
    are kept, so `closed` is always True: it is not stored (omit_defaults), and the documents stored
    before it existed, {"domain", "event_id"}, read as closed (services/common/actions.py `was_closed`)."""

    domain: EnforcementDomain
    event_id: str
    closed: bool = True
