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

sanction_entries = sa.Table(
    "sanction_entries",
    metadata,
    sa.Column("subject_id", sa.String(65), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("list", sa.String(8), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("measures", JSONDoc, nullable=False),
    #: the cities any measure applies in, as ",320100,320200,": a portable `city=` filter
    sa.Column("applies_in", sa.Text, nullable=False),
    sa.Column("reasons", JSONDoc, nullable=False),
    sa.Column("initiated_by", sa.String(6), nullable=False),
    sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("removal_reason", sa.Text),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("source_partition", sa.Integer, nullable=False),
    sa.Column("source_offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_sanction_entries_list_status", "list", "status", "subject_id"),
)

sanction_tracking = sa.Table(
    "sanction_tracking",
    metadata,
    sa.Column("subject_id", sa.String(65), primary_key=True),
    sa.Column("list", sa.String(8), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("list_revision", sa.Integer, nullable=False),
    sa.Column("listed_revision", sa.Integer, nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("cities", JSONDoc, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def sanction_entry_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    cities = sorted({c for m in event["measures"] for c in m["applies_in"]})
    return {
        "subject_id": event["subject_id"],
        "name": event["name"],
        "list": event["list"],
        "status": event["status"],
        "measures": to_json(event["measures"]),
        "applies_in": "," + ",".join(cities) + ",",
        "reasons": list(event["reasons"]),
        "initiated_by": event["initiated_by"],
        "effective_from": event["effective_from"],
        "expires_at": event["expires_at"],
        "revision": event["revision"],
        "removal_reason": event["removal_reason"],
        "event_id": event["meta"]["event_id"],
        "source_partition": partition,
        "source_offset": offset,
        "updated_at": datetime.now(UTC),
    }


def sanction_entry_json(row: Any) -> dict[str, Any]:
    """One sanction_entries row as the API's JSON (the SanctionEntry fields, without meta)."""
    return {
        "subject_id": row.subject_id,
        "name": row.name,
        "list": row.list,
        "status": row.status,
        "measures": row.measures,
        "reasons": row.reasons,
        "initiated_by": row.initiated_by,
        "effective_from": to_json(utc(row.effective_from)),
        "expires_at": to_json(utc(row.expires_at)) if row.expires_at else None,
        "revision": row.revision,
        "removal_reason": row.removal_reason,
    }


def sanction_tracking_row(event: dict[str, Any], partition: int, offset: int) -> dict[str, Any]:
    return {
        "subject_id": event["subject_id"],
        "list": event["list"],
        "status": event["status"],
        "list_revision": event["list_revision"],
        "listed_revision": event["listed_revision"],
        "due_at": event["due_at"],
        "cities": to_json(event["cities"]),
        "version": event["version"],
        "updated_at": datetime.now(UTC),
    }


SANCTION_ENTRIES = Projection("sanction.list", sanction_entries, sanction_entry_row, keys=("subject_id",))
SANCTION_TRACKING = Projection(
    "sanction.tracking", sanction_tracking, sanction_tracking_row, keys=("subject_id",), version="version"
)

#: every projection the read-model worker runs, by event type
PROJECTIONS: dict[str, Projection] = {p.event_type: p for p in (CREDIT_PROFILES, SANCTION_ENTRIES, SANCTION_TRACKING)}
