"""The `meta` record every event carries (schemas/avro/Meta.avsc), as a processor writes it."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict


class EventMeta(TypedDict):
    """`meta` of an event for the codec: its instants as aware datetimes (timestamp-millis)."""

    event_id: str
    event_type: str
    source_city: str
    source_system: str
    occurred_at: datetime
    published_at: datetime
    correlation_id: str | None
    #: the event_id of the event that caused this one
    causation_id: str | None
