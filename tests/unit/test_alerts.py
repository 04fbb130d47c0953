"""The one `supervision.alert` the sweeps raise (services/common/alerts.py): its id derives from its
kind and what it is about, so a sweep run again raises the same alert, and the body is valid."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import cast

from schemas.catalogue import SchemaCatalogue
from schemas.codec import encode_payload
from schemas.events import SupervisionAlert
from schemas.structs import plain
from services.common.alerts import emit_alert
from services.common.runtime import Processor
from topics.catalog import EVENT_TYPES

NS = uuid.UUID("7a1d3c5e-9f2b-4c6d-8e0a-b4c6d8e0f2a1")
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


class Recorder:
    service = "emergency"
    meta = Processor.meta

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, SupervisionAlert]] = []

    async def emit(self, event_type: str, key: str, alert: SupervisionAlert) -> None:
        self.sent.append((event_type, key, alert))


def raise_one(proc: Recorder) -> None:
    asyncio.run(
        emit_alert(
            cast(Processor, proc),
            NS,
            "EMERGENCY_ACK_OVERDUE",
            "inc-1#2/320200",
            city="320200",
            ref="inc-1#2",
            due_at=datetime(2026, 5, 4, 11, 0, tzinfo=UTC),
            source_city="320100",
            now=NOW,
        )
    )


def test_an_alert_has_the_id_of_its_kind_and_subject_and_a_valid_body() -> None:
    proc = Recorder()
    raise_one(proc)
    raise_one(proc)
    (event_type, key, alert), again = proc.sent
    assert again == proc.sent[0]  # the same alert when the sweep runs again
    assert (event_type, key) == ("supervision.alert", "inc-1#2")
    assert alert.alert_id == str(uuid.uuid5(NS, "EMERGENCY_ACK_OVERDUE/inc-1#2/320200"))
    assert alert.meta.event_id == alert.alert_id
    assert alert.meta.source_city == "320100"
    assert alert.meta.source_system == "tongcheng-emergency"
    assert (alert.kind, alert.city, alert.raised_at) == ("EMERGENCY_ACK_OVERDUE", "320200", NOW)
    schema = SchemaCatalogue().parsed(EVENT_TYPES["supervision.alert"].schema)
    assert encode_payload(schema, plain(alert))  # the schema takes it
