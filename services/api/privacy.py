"""Personal data in the API's answers: masked by default, shown in full only to a token with the `pii`
scope that states its purpose, and then every read is written to the audit trail first.

Natural persons are the subjects whose id is `P` + salted SHA-256 (topics/identifiers.py).
Their names are masked as 张*, 欧阳** (the first character kept), and a resident ID number as
3201**********123X (the first four and last four kept). Organisations' public credit data is
shown in full.

The audit record (`<prefix>.audit.read.v1`, schema AuditRead) is acknowledged by the broker
before the data is sent: a read that cannot be audited is not answered (503).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from kafka.errors import KafkaError

from schemas.errors import PublishError, Unavailable
from schemas.events import AuditRead, Meta
from schemas.structs import plain
from services.api.auth import Caller
from services.api.problems import Problem
from services.readmodel.rows import SubjectBody
from topics import cloudevents
from topics.context import Context
from topics.identifiers import PERSON_ID_RE
from topics.publisher import HealingProducer

AUDIT_TYPE = "audit.read"
AUDIT_SOURCE = "tongcheng-api"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: an answer about one subject: a credit profile, a list entry (services/readmodel/tables.py)
B = TypeVar("B", bound=SubjectBody)


def is_person(subject_id: str) -> bool:
    return bool(PERSON_ID_RE.match(subject_id))


def mask_name(name: str) -> str:
    """张三 -> 张*, 欧阳娜娜 -> 欧***; a one-character name becomes *."""
    if len(name) <= 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_id_number(number: str) -> str:
    """320102199003071234 -> 3201**********1234."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def masked(body: B) -> B:
    """A subject's answer with a natural person's name (and ID number, if present) masked."""
    out = body.copy()
    if "name" in out:
        out["name"] = mask_name(str(out["name"]))
    if out.get("id_number"):
        out["id_number"] = mask_id_number(str(out["id_number"]))
    out["masked"] = True
    return out


class Audit:
    """Writes AuditRead records with the API's producer, and waits for the broker's acknowledgement."""

    def __init__(self, ctx: Context, producer: Callable[[], HealingProducer]) -> None:
        self.ctx = ctx
        self._producer = producer  # the API's HealingProducer, made at the first use
        self.topic = ctx.topics.topic(AUDIT_TYPE)

    def record(self, caller: Caller, subject_ids: Iterable[str], endpoint: str, timeout: float = 15.0) -> None:
        assert caller.purpose is not None
        # to the millisecond, as the record keeps it
        now = EPOCH + timedelta(milliseconds=int(self.ctx.clock.now().timestamp() * 1000))
        reads = [
            AuditRead(
                meta=Meta(
                    event_id=str(uuid.uuid4()),
                    event_type=AUDIT_TYPE,
                    source_city=caller.city,
                    source_system=AUDIT_SOURCE,
                    occurred_at=now,
                    published_at=now,
                ),
                token_id=caller.token.id,
                city=caller.city,
                subject_id=sid,
                purpose=caller.purpose,
                endpoint=endpoint,
                read_at=now,
            )
            for sid in subject_ids
        ]
        if not reads:
            return
        events = [plain(r) for r in reads]
        try:
            values = self.ctx.codec.encode_many(f"{self.topic}-value", "AuditRead", events)
            producer = self._producer()
            futures = [
                producer.send(
                    self.topic,
                    key=r.subject_id.encode(),
                    value=v,
                    headers=cloudevents.event_headers(self.ctx.topics.prefix, AUDIT_TYPE, e, "api"),
                )
                for r, e, v in zip(reads, events, values, strict=True)
            ]
            for future in futures:
                future.get(timeout=timeout)
        except (KafkaError, PublishError, Unavailable) as exc:
            raise Problem(
                503,
                "Audit trail unavailable",
                f"personal data is shown only once its read is recorded, and it could not be: {exc}",
                headers={"Retry-After": "5"},
            ) from exc


def shown(caller: Caller, subject_id: str, body: B) -> B:
    """The body as this caller may see it (the audit is the caller's job: `Audit.record` first)."""
    if not is_person(subject_id) or caller.unmasked:
        return body
    return masked(body)
