"""Read endpoints over the SQL read model (services/readmodel/tables.py), kept current by the readmodel worker.

Each needs a token with the `read` scope. Natural persons are masked unless the token also holds
`pii` and states its purpose; such reads are written to the audit trail before they are answered
(services/api/privacy.py).
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from schemas.convert import to_json
from schemas.errors import Rejected
from services.api.auth import Auth, Caller
from services.api.privacy import Audit, is_person, shown
from services.api.problems import Problem
from services.readmodel.tables import (
    credit_profile_json,
    credit_profiles,
    sanction_entries,
    sanction_entry_json,
    sanction_tracking,
    utc,
)
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


class ReadModel:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self, query: Any) -> list[Any]:
        # OperationalError: SQLite file or server unreachable; ProgrammingError: PostgreSQL table
        # missing before the first migration
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            raise Problem(
                503,
                "Read model unavailable",
                f"the read-model database cannot be read: {exc.orig}",
                headers={"Retry-After": "5"},
            ) from exc

    def one(self, table: sa.Table, where: Any) -> Any:
        rows = self.all(sa.select(table).where(where).limit(1))
        return rows[0] if rows else None


def measure_json(measure: dict[str, Any]) -> dict[str, Any]:
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

    async def profile(subject_id: str) -> dict[str, Any]:
        row = await run_in_threadpool(model.one, credit_profiles, credit_profiles.c.subject_id == subject_id)
        if row is None:
            raise Problem(404, "Unknown subject", f"no credit profile for {subject_id}")
        return credit_profile_json(row)

    @router.get("/v1/credit/{subject_id}", summary="The merged credit profile of one subject")
    async def credit_profile(subject_id: str, request: Request, caller: Caller = Depends(reader)) -> dict[str, Any]:
        check_subject_id(subject_id)
        body = await profile(subject_id)
        await audited(caller, request, [subject_id])
        return shown(caller, subject_id, body)

    @router.post(
        "/v1/credit/lookup",
        summary="A natural person's credit profile by resident ID number (the number never leaves the API)",
        openapi_extra=LOOKUP_BODY,
    )
    async def credit_lookup(request: Request, caller: Caller = Depends(reader)) -> dict[str, Any]:
        number = await id_number_of(request)
        try:
            subject_id = person_subject_id(number, ctx.settings.person_salt)
        except ValueError as exc:
            raise Problem(422, "Invalid ID number", str(exc), reason="invalid_id_number", field="id_number") from exc
        body = await profile(subject_id)
        await audited(caller, request, [subject_id])
        return shown(caller, subject_id, {**body, "id_number": number.upper()})

    @router.get("/v1/sanctions", summary="Entries of the joint reward-and-punishment list, a page at a time")
    async def sanctions(
        request: Request,
        list_: Literal["RED", "FOCUS", "BLACK"] | None = Query(None, alias="list", description="one list only"),
        city: str | None = Query(None, description="entries with a measure applying in this member city"),
        status: Literal["LISTED", "REMOVED", "ALL"] = Query("LISTED"),
        limit: int = Query(50, ge=1, le=500),
        after: str | None = Query(None, max_length=65, description="the next_after of the previous page"),
        caller: Caller = Depends(reader),
    ) -> dict[str, Any]:
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
        rows = await run_in_threadpool(model.all, query)
        page = rows[:limit]
        await audited(caller, request, [r.subject_id for r in page])
        return {
            "items": [shown(caller, r.subject_id, sanction_entry_json(r)) for r in page],
            "next_after": page[-1].subject_id if len(rows) > limit else None,
        }

    @router.get("/v1/sanctions/{subject_id}", summary="One subject's entry, with its measures and each city's feedback")
    async def sanction(subject_id: str, request: Request, caller: Caller = Depends(reader)) -> dict[str, Any]:
        check_subject_id(subject_id)
        row = await run_in_threadpool(model.one, sanction_entries, sanction_entries.c.subject_id == subject_id)
        if row is None:
            raise Problem(404, "Not listed", f"{subject_id} has no entry on any list")
        body = sanction_entry_json(row)
        body["measures"] = [measure_json(m) for m in body["measures"]]
        tracking = await run_in_threadpool(model.one, sanction_tracking, sanction_tracking.c.subject_id == subject_id)
        # the two come from two topics: `feedback_revision` says which revision the feedback is of
        body["feedback_revision"] = tracking.list_revision if tracking is not None else None
        body["feedback_due_at"] = to_json(utc(tracking.due_at)) if tracking is not None and tracking.due_at else None
        body["feedback"] = tracking.cities if tracking is not None else []
        await audited(caller, request, [subject_id])
        return shown(caller, subject_id, body)

    return router
