"""Enforcement into credit: a CLOSED joint action's findings become CreditRecord PUBLISH events."""

from __future__ import annotations

import uuid
from datetime import datetime, tzinfo

import msgspec

from schemas.errors import Reason, Rejected
from schemas.events import Authority, CreditRecord, EnforcementAction, Meta
from services.common.actions import was_closed
from topics.localtime import local_date

DOMAIN_TO_CREDIT = {"MARKET_SUPERVISION": "MARKET", "ANTI_COUNTERFEIT": "MARKET"}
NAMESPACE = uuid.UUID("5b0e7a8c-1f3d-4c6e-9a2b-7d4e5f6a1b2c")


def derived_event_id(action_event_id: str, n: int) -> str:
    """Deterministic, so a redelivered action yields the very same records (deduplicated downstream)."""
    return str(uuid.uuid5(NAMESPACE, f"{action_event_id}/{n}"))


#: event ids remembered per action, to know a redelivery from a new status report
MAX_EVENT_IDS = 16


class KeptAction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the credit processor keeps of an enforcement action (its closed-actions table): its lead
    city, whether it reached CLOSED, and the ids of its last status reports.

    A document kept when only CLOSED actions were recorded is {"event_id": ...}: it reads with
    `lead_city` None, `closed` True and `event_ids` empty. Fields at their default are not stored,
    so `event_id` never is again, and nor is `closed` when True: a document without it is one of a
    closed action, as it always was.
    """

    lead_city: str | None = None  # None only in a document of the old form
    closed: bool = True
    event_ids: tuple[str, ...] = ()
    event_id: str | None = None  # the old form's one event id


def seen(known: KeptAction | None, action: EnforcementAction) -> KeptAction | None:
    """What is kept of an action once `action` (one of its status reports) is applied; None for a
    report already applied. Raises Rejected (not_owner) for a report that is not its lead city's.

    `known` is None for a new action.
    """
    meta, aid = action.meta, action.action_id
    if known is None:
        ids: tuple[str, ...] = ()
        lead = action.lead_city
    else:
        ids = known.event_ids or ((known.event_id,) if known.event_id is not None else ())
        lead = known.lead_city if known.lead_city is not None else action.lead_city
    if meta.event_id in ids:
        return None
    if meta.source_city != lead or action.lead_city != lead:
        raise Rejected(
            Reason.NOT_OWNER,
            f"enforcement action {aid} is led by city {lead}; city {meta.source_city} cannot report it"
            + ("" if action.lead_city == lead else f" nor hand it to {action.lead_city}"),
            "meta.source_city",
        )
    closed = was_closed(known) or action.status == "CLOSED"
    return KeptAction(lead_city=lead, closed=closed, event_ids=(*ids, meta.event_id)[-MAX_EVENT_IDS:])


def records_from_action(action: EnforcementAction, now: datetime, tz: tzinfo) -> list[CreditRecord]:
    """The CreditRecords of a CLOSED action. Their decision date is the local date (in `tz`, the
    circle's zone) on which the action ended, which starts each record's publicity period."""
    if action.status != "CLOSED":
        return []
    meta = action.meta
    decided = local_date(action.ended_at or meta.occurred_at, tz)
    out = []
    for n, finding in enumerate(action.findings, 1):
        if not finding.decision_no:
            continue
        out.append(
            CreditRecord(
                meta=Meta(
                    event_id=derived_event_id(meta.event_id, n),
                    event_type="credit.record",
                    source_city=action.lead_city,
                    source_system="tongcheng-credit",  # the service that derived it, and signs it
                    occurred_at=meta.occurred_at,
                    published_at=now,
                    correlation_id=action.action_id,
                    causation_id=meta.event_id,
                ),
                record_id=f"{action.action_id}/{n}",
                action="PUBLISH",
                subject=finding.subject,
                category="ADMIN_PENALTY",
                polarity="NEGATIVE",
                severity=finding.severity,
                domain=DOMAIN_TO_CREDIT.get(action.domain, action.domain),
                decision_no=finding.decision_no,
                decision_date=decided,
                authority=Authority(
                    name=f"Joint enforcement {action.action_id} led by {action.lead_city}",
                    uscc=None,
                ),
                legal_basis=f"Joint enforcement action {action.action_id} ({action.domain})",
                content=finding.violation,
                penalty_types=list(finding.penalty_types),
                fine_amount=finding.fine_amount,
                evaluation=None,
                valid_until=None,
                publicity_until=None,
            )
        )
    return out
