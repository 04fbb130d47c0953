"""Read endpoints over the SQL read model (services/readmodel/tables.py), kept current by the readmodel worker.

Each needs a token with the `read` scope. Natural persons are masked unless the token also holds
`pii` and states its purpose; such reads are written to the audit trail before they are answered
(services/api/privacy.py).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Literal, TypedDict, TypeVar, TypeVarTuple

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from schemas.errors import Rejected
from schemas.events import ListingStatus, ListKind
from services.api.auth import Auth, Caller
from services.api.bodies import OBJECT
from services.api.privacy import Audit, is_person, shown
from services.api.problems import Problem
from services.readmodel.rows import (
    CityFeedbackDoc,
    CreditProfileBody,
    CreditProfileRow,
    MeasureDoc,
    SanctionEntryBody,
    SanctionEntryRow,
    SanctionTrackingRow,
    SubjectBody,
    credit_profile_json,
    instant,
    sanction_entry_json,
    utc,
)
from services.readmodel.sql import TableRow
from services.readmodel.tables import credit_profiles, sanction_entries, sanction_tracking
from services.sanctions.rules import RULES
from topics.context import Context
from topics.identifiers import PERSON_ID_RE, is_valid_uscc, person_subject_id
from topics.validation import loads_event


def check_subject_id(subject_id: str) -> None:
    if not (is_valid_uscc(subject_id) or PERSON_ID_RE.match(subject_id)):
        raise Problem(
            422,
            "Invalid subject id",
            f"{subject_id[:70]!r} is neither an 18-character USCC with a correct check character "
            "nor a person subject id (P + 64 hex digits)",
            reason="invalid_subject_id",
            field="subject_id",
        )


R = TypeVar("R", bound=TableRow)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class ReadModel:
    """Reads of the read model's tables: whole rows as their `TableRow` Structs
    (services/readmodel/tables.py), or the tuples of a select of some columns."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _read(self, read: Callable[[Connection], T]) -> T:
        # OperationalError: SQLite file or server unreachable; ProgrammingError: PostgreSQL table
        # missing before the first migration
        try:
            with self.engine.connect() as conn:
                return read(conn)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            raise Problem(
                503,
                "Read model unavailable",
                f"the read-model database cannot be read: {exc.orig}",
                headers={"Retry-After": "5"},
            ) from exc

    def rows(self, query: sa.Select[*tuple[object, ...]], shape: type[R]) -> list[R]:
        """The rows of a select of a whole table, as its row Struct: the columns' values as the
        database gives them (a JSON column's document as the sink wrote it)."""
        return self._read(lambda conn: [shape(**row) for row in conn.execute(query).mappings()])

    def one(self, table: sa.Table, where: sa.ColumnElement[bool], shape: type[R]) -> R | None:
        rows = self.rows(sa.select(table).where(where).limit(1), shape)
        return rows[0] if rows else None

    def tuples(self, query: sa.Select[*Ts]) -> list[tuple[*Ts]]:
        """The rows of a select of some columns, as tuples."""
        return self._read(lambda conn: list(conn.execute(query).tuples()))


class MeasureBody(TypedDict):
    """A listed measure with its catalogue entry."""

    code: str
    applies_in: list[str]
    description: str | None
    legal_basis: str | None


class SanctionBody(SubjectBody):
    """One subject's entry (GET /v1/sanctions/{subject_id}): the SanctionEntry fields, its measures
    described, and each city's feedback on the revision `feedback_revision`."""

    list: ListKind
    status: ListingStatus
    measures: builtins.list[MeasureBody]
    reasons: builtins.list[str]
    initiated_by: str
    effective_from: str
    expires_at: str | None
    revision: int
    removal_reason: str | None
    feedback_revision: int | None
    feedback_due_at: str | None
    feedback: builtins.list[CityFeedbackDoc]


class SanctionPage(TypedDict):
    items: list[SanctionEntryBody]
    #: the `after` of the next page; None on the last
    next_after: str | None


def measure_json(measure: MeasureDoc) -> MeasureBody:
    """A listed measure with its catalogue entry: what it means and its legal basis."""
    known = RULES.measures.get(measure["code"])
    return {
        **measure,
        "description": known.description if known else None,
        "legal_basis": known.legal_basis if known else None,
    }


LOOKUP_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id_number": {
                            "type": "string",
                            "pattern": "^[0-9]{17}[0-9Xx]$",
                            "description": "A resident ID number (GB 11643); hashed, never stored or sent on",
                        }
                    },
                    "required": ["id_number"],
                    "additionalProperties": False,
                }
            }
        },
    }
}


async def id_number_of(request: Request) -> str:
    """The `id_number` of a lookup body (read after the token is checked, so a caller without one
    hears 401 whatever it sends)."""
    try:
        body = loads_event(await request.body())
    except Rejected as exc:
        raise Problem(422, "Invalid request", exc.detail, reason=exc.reason.value) from exc
    number = body.get("id_number") if isinstance(body, dict) else None
    if not isinstance(number, str) or set(body) != {"id_number"}:
        raise Problem(422, "Invalid request", 'expected {"id_number": "..."}', field="id_number")
    return number


def read_router(engine: Engine, ctx: Context, auth: Auth, audit: Audit) -> APIRouter:
    router = APIRouter()
    model = ReadModel(engine)
    circle = ctx.circle
    reader = auth.reader_of_subjects()

    async def audited(caller: Caller, request: Request, subject_ids: list[str]) -> None:
        """Write the audit records of the unmasked natural persons in an answer, before it is sent."""
        persons = [s for s in subject_ids if is_person(s)]
        if caller.unmasked and persons:
            await run_in_threadpool(audit.record, caller, persons, f"{request.method} {request.url.path}")

    async def profile(subject_id: str) -> CreditProfileBody:
        row = await run_in_threadpool(
            model.one, credit_profiles, credit_profiles.c.subject_id == subject_id, CreditProfileRow
        )
        if row is None:
            raise Problem(404, "Unknown subject", f"no credit profile for {subject_id}")
        return credit_profile_json(row)

    @router.get("/v1/credit/{subject_id}", summary="The merged credit profile of one subject", response_model=OBJECT)
    async def credit_profile(subject_id: str, request: Request, caller: Caller = Depends(reader)) -> CreditProfileBody:
        check_subject_id(subject_id)
        body = await profile(subject_id)
        await audited(caller, request, [subject_id])
        return shown(caller, subject_id, body)

    @router.post(
        "/v1/credit/lookup",
        summary="A natural person's credit profile by resident ID number (the number never leaves the API)",
        openapi_extra=LOOKUP_BODY,
        response_model=OBJECT,
    )
    async def credit_lookup(request: Request, caller: Caller = Depends(reader)) -> CreditProfileBody:
        number = await id_number_of(request)
        try:
            subject_id = person_subject_id(number, ctx.settings.person_salt)
        except ValueError as exc:
            raise Problem(422, "Invalid ID number", str(exc), reason="invalid_id_number", field="id_number") from exc
        body = await profile(subject_id)
        body["id_number"] = number.upper()
        await audited(caller, request, [subject_id])
        return shown(caller, subject_id, body)

    @router.get(
        "/v1/sanctions",
        summary="Entries of the joint reward-and-punishment list, a page at a time",
        response_model=OBJECT,
    )
    async def sanctions(
        request: Request,
        list_: Literal["RED", "FOCUS", "BLACK"] | None = Query(None, alias="list", description="one list only"),
        city: str | None = Query(None, description="entries with a measure applying in this member city"),
        status: Literal["LISTED", "REMOVED", "ALL"] = Query("LISTED"),
        limit: int = Query(50, ge=1, le=500),
        after: str | None = Query(None, max_length=65, description="the next_after of the previous page"),
        caller: Caller = Depends(reader),
    ) -> SanctionPage:
        if city is not None and not circle.is_member(city):
            raise Problem(
                422,
                "Unknown city",
                f"{city[:20]!r} is not a member city of {circle.code}",
                reason="unknown_city",
                field="city",
            )
        t = sanction_entries
        query = sa.select(t).order_by(t.c.subject_id).limit(limit + 1)
        if list_:
            query = query.where(t.c.list == list_)
        if status != "ALL":
            query = query.where(t.c.status == status)
        if city:
            query = query.where(t.c.applies_in.contains(f",{city},"))
        if after:
            query = query.where(t.c.subject_id > after)
        rows = await run_in_threadpool(model.rows, query, SanctionEntryRow)
        page = rows[:limit]
        await audited(caller, request, [r.subject_id for r in page])
        return {
            "items": [shown(caller, r.subject_id, sanction_entry_json(r)) for r in page],
            "next_after": page[-1].subject_id if len(rows) > limit else None,
        }

    @router.get(
        "/v1/sanctions/{subject_id}",
        summary="One subject's entry, with its measures and each city's feedback",
        response_model=OBJECT,
    )
    async def sanction(subject_id: str, request: Request, caller: Caller = Depends(reader)) -> SanctionBody:
        check_subject_id(subject_id)
        row = await run_in_threadpool(
            model.one, sanction_entries, sanction_entries.c.subject_id == subject_id, SanctionEntryRow
        )
        if row is None:
            raise Problem(404, "Not listed", f"{subject_id} has no entry on any list")
        entry = sanction_entry_json(row)
        tracking = await run_in_threadpool(
            model.one, sanction_tracking, sanction_tracking.c.subject_id == subject_id, SanctionTrackingRow
        )
        # the two come from two topics: `feedback_revision` says which revision the feedback is of
        body: SanctionBody = {
            **entry,
            "measures": [measure_json(m) for m in entry["measures"]],
            "feedback_revision": tracking.list_revision if tracking is not None else None,
            "feedback_due_at": instant(utc(tracking.due_at)) if tracking is not None and tracking.due_at else None,
            "feedback": tracking.cities if tracking is not None else [],
        }
        await audited(caller, request, [subject_id])
        return shown(caller, subject_id, body)

    return router
