"""The `supervision.alert` a processor's sweep raises when a deadline has passed: one shape for every
kind (SANCTION_FEEDBACK_OVERDUE, MILESTONE_OVERDUE, EMERGENCY_ACK_OVERDUE), and an id derived from
what it is about, so that a sweep run again raises the very same alert."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from schemas.events import AlertKind, SupervisionAlert

if TYPE_CHECKING:
    from services.common.runtime import Processor


async def emit_alert(
    proc: Processor,
    namespace: uuid.UUID,
    kind: AlertKind,
    about: str,
    *,
    city: str,
    ref: str,
    due_at: datetime,
    source_city: str,
    now: datetime,
) -> None:
    """Queue the alert of `kind` on `ref` for `city`; its id is uuid5(`namespace`, "`kind`/`about`"),
    and its `meta` names `source_city`, the city the late thing came from."""
    alert_id = str(uuid.uuid5(namespace, f"{kind}/{about}"))
    alert = SupervisionAlert(
        meta=proc.meta("supervision.alert", alert_id, source_city, now, None),
        alert_id=alert_id,
        kind=kind,
        city=city,
        ref=ref,
        due_at=due_at,
        raised_at=now,
    )
    await proc.emit("supervision.alert", ref, alert)
