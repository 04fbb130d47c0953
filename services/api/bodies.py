"""The JSON bodies of the API's answers, as TypedDicts: checked by mypy where they are built.

A route still declares `response_model=OBJECT`, the JSON object it documented before: FastAPI
would validate a TypedDict response model with pydantic, which writes its keys in the TypedDict's
order and drops keys it does not declare, and the answers are built to the letter already.
"""

from __future__ import annotations

from typing import TypedDict

#: the response model of a JSON-object answer, for FastAPI (OpenAPI: an object of any properties)
OBJECT = dict[str, object]
#: the response model of an answer documented as any JSON value (OpenAPI: a schema without constraints)
ANY_JSON = object


class RecipientBody(TypedDict):
    city: str
    reason: str
    ack_deadline: str
    acknowledged_at: str | None
    #: ACKNOWLEDGED, PENDING or OVERDUE (services/emergency/rules.py `ack_status`)
    status: str


class ReportBody(TypedDict):
    report_seq: int
    report_kind: str | None
    effective_level: str
    raised_from: str | None
    dispatched_at: str
    recipients: list[RecipientBody]


class IncidentBody(TypedDict):
    """One incident with the acknowledgement status of every recipient (GET /v1/emergencies)."""

    incident_id: str
    open: bool
    effective_level: str
    sender: str
    subtype: str | None
    location_city: str | None
    #: per recipient city, its worst status over the incident's reports
    acknowledgement: dict[str, str]
    reports: list[ReportBody]


class IncidentsBody(TypedDict):
    items: list[IncidentBody]


class CityScore(TypedDict):
    """One member city's row of the scoreboard (GET /v1/supervision/cities, the status page)."""

    city: str
    name: str
    name_zh: str
    milestones_due: int
    milestones_overdue: int
    ontime_ratio: float
    emergencies_unacknowledged: int
    sanction_feedback_ratio: float
    sanction_listings_answered: int
    sanction_listings_missed: int


class ScoreboardBody(TypedDict):
    as_of: str
    cities: list[CityScore]
