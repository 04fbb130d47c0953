"""The SQL read model: tables (SQLAlchemy Core) and the projections that fill them from topics.

Alembic owns the schema (consumers/migrations); these table objects describe the newest head and
are what the sink and the API read and write. Each projection maps one decoded event to one row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from consumers.sql import Projection
from schemas.codec import to_json

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData()

credit_profiles = sa.Table(
    "credit_profiles",
    metadata,
    sa.Column("subject_id", sa.String(65), primary_key=True),
    sa.Column("subject_kind", sa.String(24), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("grade", sa.String(1), nullable=False, index=True),
    sa.Column("counts", JSONDoc, nullable=False),
    sa.Column("cities", JSONDoc, nullable=False),
    sa.Column("active_records", JSONDoc, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("source_partition", sa.Integer, nullable=False),
    sa.Column("source_offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def credit_profile_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    return {
        "subject_id": event["subject_id"],
        "subject_kind": event["subject_kind"],
        "name": event["name"],
        "grade": event["grade"],
        "counts": dict(event["counts"]),
        "cities": list(event["cities"]),
        "active_records": to_json(event["active_records"]),
        "revision": event["revision"],
        "as_of": event["as_of"],
        "event_id": event["meta"]["event_id"],
        "source_partition": partition,
        "source_offset": offset,
        "updated_at": datetime.now(UTC),
    }


def credit_profile_json(row: Any) -> dict[str, Any]:
    """One credit_profiles row as the API's JSON (the CreditProfile fields, without meta)."""
    return {
        "subject_id": row.subject_id,
        "subject_kind": row.subject_kind,
        "name": row.name,
        "grade": row.grade,
        "counts": row.counts,
        "cities": row.cities,
        "active_records": row.active_records,
        "revision": row.revision,
        "as_of": to_json(utc(row.as_of)),
    }


CREDIT_PROFILES = Projection("credit.profile", credit_profiles, credit_profile_row, keys=("subject_id",))

#: every projection the read-model worker runs, by event type
PROJECTIONS: dict[str, Projection] = {p.event_type: p for p in (CREDIT_PROFILES,)}
