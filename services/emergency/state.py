"""The emergency processor's state: one `Incident` per incident in the `incidents` table.

Each is a frozen msgspec Struct, stored as a msgpack map keyed by its field names
(services/common/runtime/encoding.py); the rules return changed copies (`msgspec.structs.replace`),
never changing one. The field names are those of the documents stored before these Structs, whose
instants were ISO-8601 strings: such a document still reads as its Struct.

The API rebuilds incidents of the same Structs from the read model (services/api/supervision.py),
which does not hold what only the processor needs (a report's notice id, the incident's category,
the alerts raised): those fields have defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from schemas.events import EmergencyCategory, EmergencyLevel, RecipientReason, ReportKind

#: a recipient's acknowledgement of one report, as the API shows it
AckStatus = Literal["ACKNOWLEDGED", "OVERDUE", "PENDING"]


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    """One recipient of one report: why it receives it, by when it must acknowledge it, its
    earliest acknowledgement, and when the sweep alerted that it had missed the deadline."""

    reason: RecipientReason
    deadline: datetime
    acked_at: datetime | None = None
    alerted_at: datetime | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """One report of an incident (a notice, as routed) and its recipients by city, in the circle's order."""

    event_id: str | None = None  # the notice's; None in the API's incidents
    kind: ReportKind | None  # None in the API's incidents, for a dispatch from before it carried it
    level: EmergencyLevel  # as the notice declared it
    effective_level: EmergencyLevel
    sent_at: datetime  # the notice's meta.published_at
    recipients: dict[str, Slot]

    @property
    def raised_from(self) -> EmergencyLevel | None:
        """The declared level when the effective one is raised above it, else None."""
        return self.level if self.level != self.effective_level else None


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    """An incident: its reports by `report_seq` (as a string, the stored map's key), the level of
    the newest one, and whether a FINAL report closed it."""

    incident_id: str
    sender: str
    category: EmergencyCategory | None = None  # None in the API's incidents
    #: None in the API's incidents, for a dispatch from before it carried them
    subtype: str | None
    location_city: str | None
    reports: dict[str, Report]
    closed: bool = False
    last_seq: int = 0
    level: EmergencyLevel
