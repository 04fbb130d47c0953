"""Enforcement actions as their owner judges them: the lead city reports, each event counts once."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.errors import Reason, Rejected
from services.common.actions import closes, was_closed
from services.credit import enforcement


def action(status: str, event_id: str, sender: str = "320100", lead: str = "320100") -> dict[str, Any]:
    return {
        "meta": {"event_id": event_id, "source_city": sender},
        "action_id": "A1",
        "lead_city": lead,
        "status": status,
    }


def test_each_status_report_once_and_closed_once() -> None:
    planned = enforcement.seen(None, action("PLANNED", "e1"))
    assert planned == {"lead_city": "320100", "closed": False, "event_ids": ["e1"]}
    assert enforcement.seen(planned, action("PLANNED", "e1")) is None  # a redelivery
    closed = enforcement.seen(planned, action("CLOSED", "e2"))
    assert closed is not None and closed["closed"] and was_closed(closed)
    assert not was_closed(planned) and not was_closed(None)
    assert was_closed({"event_id": "old"})  # kept when only CLOSED actions were recorded
    assert closes(planned, action("CLOSED", "e2")) and not closes(closed, action("CLOSED", "e3"))
    assert not closes(None, action("EXECUTED", "e1"))
    assert enforcement.seen({"event_id": "old"}, action("CLOSED", "old")) is None


@pytest.mark.parametrize(
    ("sender", "lead"),
    [("340500", "320100"), ("340500", "340500")],  # another city reports it; another city takes it over
)
def test_only_the_lead_city_reports_its_action(sender: str, lead: str) -> None:
    known = enforcement.seen(None, action("PLANNED", "e1"))
    with pytest.raises(Rejected) as info:
        enforcement.seen(known, action("EXECUTED", "e2", sender=sender, lead=lead))
    assert info.value.reason is Reason.NOT_OWNER and "led by city 320100" in info.value.detail
