"""Enforcement actions as their owner judges them: the lead city reports, each event counts once."""

from __future__ import annotations

import msgspec
import pytest

from schemas.errors import Reason, Rejected
from schemas.events import EnforcementAction
from services.common.actions import closes, was_closed
from services.credit import enforcement
from services.credit.enforcement import KeptAction
from tests.unit.credit_events import enforcement_action

LEGACY = KeptAction(event_id="old")  # kept when only CLOSED actions were recorded: {"event_id": "old"}


def action(status: str, event_id: str, sender: str = "320100", lead: str = "320100") -> EnforcementAction:
    return enforcement_action(
        {
            "meta": {"event_id": event_id, "source_city": sender},
            "action_id": "A1",
            "lead_city": lead,
            "status": status,
        }
    )


def test_each_status_report_once_and_closed_once() -> None:
    planned = enforcement.seen(None, action("PLANNED", "e1"))
    assert planned == KeptAction(lead_city="320100", closed=False, event_ids=("e1",))
    assert enforcement.seen(planned, action("PLANNED", "e1")) is None  # a redelivery
    closed = enforcement.seen(planned, action("CLOSED", "e2"))
    assert closed is not None and closed.closed and was_closed(closed)
    assert not was_closed(planned) and not was_closed(None)
    assert was_closed(LEGACY)
    assert closes(planned, action("CLOSED", "e2")) and not closes(closed, action("CLOSED", "e3"))
    assert not closes(None, action("EXECUTED", "e1"))
    assert enforcement.seen(LEGACY, action("CLOSED", "old")) is None


def test_the_kept_documents_read_as_before() -> None:
    """The closed-actions table's documents: the ones stored before these were Structs, and the
    old form of a CLOSED action, {"event_id": ...}, read as they did."""
    read = msgspec.msgpack.Decoder(KeptAction).decode
    assert read(msgspec.msgpack.encode({"event_id": "old"})) == LEGACY
    doc = {"lead_city": "320100", "closed": False, "event_ids": ["e1"]}
    assert read(msgspec.msgpack.encode(doc)) == enforcement.seen(None, action("PLANNED", "e1"))
    assert read(msgspec.msgpack.encode({**doc, "closed": True})).closed
    # what is stored now: the same fields, `closed` left out when True (read as closed, then and now)
    planned = enforcement.seen(None, action("PLANNED", "e1"))
    assert planned is not None and msgspec.msgpack.encode(planned) == msgspec.msgpack.encode(doc)
    closed = enforcement.seen(planned, action("CLOSED", "e2"))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(closed)) == {"lead_city": "320100", "event_ids": ["e1", "e2"]}


@pytest.mark.parametrize(
    ("sender", "lead"),
    [("340500", "320100"), ("340500", "340500")],  # another city reports it; another city takes it over
)
def test_only_the_lead_city_reports_its_action(sender: str, lead: str) -> None:
    known = enforcement.seen(None, action("PLANNED", "e1"))
    with pytest.raises(Rejected) as info:
        enforcement.seen(known, action("EXECUTED", "e2", sender=sender, lead=lead))
    assert info.value.reason is Reason.NOT_OWNER and "led by city 320100" in info.value.detail
