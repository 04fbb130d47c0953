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
from collections.abc import Iterable
from typing import Any

from kafka.errors import KafkaError

from schemas.errors import PublishError, Unavailable
from services.api.auth import Caller
from services.api.problems import Problem
from topics import cloudevents
from topics.context import Context
from topics.identifiers import PERSON_ID_RE

AUDIT_TYPE = "audit.read"
AUDIT_SOURCE = "tongcheng-api"


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


def masked(body: dict[str, Any]) -> dict[str, Any]:
    """A subject's answer with a natural person's name (and ID number, if present) masked."""
    out = dict(body)
    if "name" in out:
        out["name"] = mask_name(str(out["name"]))
    if out.get("id_number"):
        out["id_number"] = mask_id_number(str(out["id_number"]))
    out["masked"] = True
    return out


class Audit:
    """Writes AuditRead records with the API's producer, and waits for the broker's acknowledgement."""

    def __init__(self, ctx: Context, producer: Any) -> None:
        self.ctx = ctx
        self._producer = producer  # a HealingProducer, made at the first use
        self.topic = ctx.topics.topic(AUDIT_TYPE)

    def record(self, caller: Caller, subject_ids: Iterable[str], endpoint: str, timeout: float = 15.0) -> None:
        assert caller.purpose is not None
        now_ms = int(self.ctx.clock.now().timestamp() * 1000)
        events: list[dict[str, Any]] = [
            {
                "meta": {
                    "event_id": str(uuid.uuid4()),
                    "event_type": AUDIT_TYPE,
                    "source_city": caller.city,
                    "source_system": AUDIT_SOURCE,
                    "occurred_at": now_ms,
                    "published_at": now_ms,
                    "correlation_id": None,
                    "causation_id": None,
                },
                "token_id": caller.token.id,
                "city": caller.city,
                "subject_id": sid,
                "purpose": caller.purpose,
                "endpoint": endpoint,
                "read_at": now_ms,
            }
            for sid in subject_ids
        ]
        if not events:
            return
        try:
            values = self.ctx.codec.encode_many(f"{self.topic}-value", "AuditRead", events)
            producer = self._producer()
            futures = [
                producer.send(
                    self.topic,
                    key=e["subject_id"].encode(),
                    value=v,
                    headers=cloudevents.event_headers(self.ctx.topics.prefix, AUDIT_TYPE, e, "api"),
                )
                for e, v in zip(events, values, strict=True)
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


def shown(caller: Caller, subject_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body as this caller may see it (the audit is the caller's job: `Audit.record` first)."""
    if not is_person(subject_id) or caller.unmasked:
        return body
    return masked(body)
