"""Read endpoints over the SQL read model (consumers/readmodel.py), kept current by the readmodel worker."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from consumers.readmodel import credit_profile_json, credit_profiles
from services.api.problems import Problem
from services.common.identifiers import PERSON_ID_RE, is_valid_uscc


def check_subject_id(subject_id: str) -> None:
    if not (is_valid_uscc(subject_id) or PERSON_ID_RE.match(subject_id)):
        raise Problem(
            422,
            "Invalid subject id",
            f"{subject_id!r} is neither an 18-character USCC with a correct check character "
            "nor a person subject id (P + 64 hex digits)",
            reason="invalid_subject_id",
            field="subject_id",
        )


class ReadModel:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def one(self, table: sa.Table, where: Any) -> Any:
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(table).where(where)).first()
        except sa.exc.OperationalError as exc:
            raise Problem(503, "Read model unavailable", f"the read-model database cannot be read: {exc.orig}") from exc
        except sa.exc.ProgrammingError as exc:  # PostgreSQL: table missing before the first migration
            raise Problem(503, "Read model unavailable", f"the read-model database cannot be read: {exc.orig}") from exc


def read_router(engine: Engine) -> APIRouter:
    router = APIRouter()
    model = ReadModel(engine)

    @router.get("/v1/credit/{subject_id}", summary="The merged credit profile of one subject")
    async def credit_profile(subject_id: str) -> dict[str, Any]:
        check_subject_id(subject_id)
        row = await run_in_threadpool(model.one, credit_profiles, credit_profiles.c.subject_id == subject_id)
        if row is None:
            raise Problem(404, "Unknown subject", f"no credit profile for {subject_id}")
        return credit_profile_json(row)

    return router
