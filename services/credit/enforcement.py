"""Enforcement into credit: a CLOSED joint action's findings become CreditRecord PUBLISH events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

DOMAIN_TO_CREDIT = {"MARKET_SUPERVISION": "MARKET", "ANTI_COUNTERFEIT": "MARKET"}
NAMESPACE = uuid.UUID("5b0e7a8c-1f3d-4c6e-9a2b-7d4e5f6a1b2c")


def derived_event_id(action_event_id: str, n: int) -> str:
    """Deterministic, so a redelivered action yields the very same records (deduplicated downstream)."""
    return str(uuid.uuid5(NAMESPACE, f"{action_event_id}/{n}"))


def records_from_action(action: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    if action["status"] != "CLOSED":
        return []
    meta = action["meta"]
    decided = (action.get("ended_at") or meta["occurred_at"]).date()
    out = []
    for n, finding in enumerate(action["findings"], 1):
        if not finding.get("decision_no"):
            continue
        out.append(
            {
                "meta": {
                    "event_id": derived_event_id(meta["event_id"], n),
                    "event_type": "credit.record",
                    "source_city": action["lead_city"],
                    "source_system": "tongcheng-enforcement",
                    "occurred_at": meta["occurred_at"],
                    "published_at": now,
                    "correlation_id": action["action_id"],
                    "causation_id": meta["event_id"],
                },
                "record_id": f"{action['action_id']}/{n}",
                "action": "PUBLISH",
                "subject": finding["subject"],
                "category": "ADMIN_PENALTY",
                "polarity": "NEGATIVE",
                "severity": finding["severity"],
                "domain": DOMAIN_TO_CREDIT.get(action["domain"], action["domain"]),
                "decision_no": finding["decision_no"],
                "decision_date": decided,
                "authority": {
                    "name": f"Joint enforcement {action['action_id']} led by {action['lead_city']}",
                    "uscc": None,
                },
                "legal_basis": f"Joint enforcement action {action['action_id']} ({action['domain']})",
                "content": finding["violation"],
                "penalty_types": finding.get("penalty_types", []),
                "fine_amount": finding.get("fine_amount"),
                "evaluation": None,
                "valid_until": None,
                "publicity_until": None,
            }
        )
    return out
