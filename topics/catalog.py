"""The topic catalogue of DESIGN.md section 4, as code.

Names are `<prefix>.<domain>.<event>.v<major>`; the prefix is the circle (`njmc` by default).
Each event type knows its topic, its Avro schema and where its key comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FOREVER = "-1"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class EventType:
    name: str  # e.g. "credit.record"; also the topic's <domain>.<event>
    schema: str  # Avro record name in schemas/avro
    key_path: tuple[str, ...]  # where the message key is found in the event
    partitions: int
    compact: bool = False
    retention_ms: str = FOREVER
    derived: bool = False  # written by processors, never by cities

    def key_of(self, event: Mapping[str, Any]) -> str:
        value: Any = event
        for part in self.key_path:
            value = value[part]
        return str(value)


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("credit.record", "CreditRecord", ("subject", "subject_id"), 6),
        EventType("credit.profile", "CreditProfile", ("subject_id",), 6, compact=True, derived=True),
        EventType("sanction.list", "SanctionEntry", ("subject_id",), 6, compact=True, derived=True),
        EventType("sanction.feedback", "SanctionFeedback", ("subject_id",), 6),
        EventType("sanction.tracking", "SanctionTracking", ("subject_id",), 6, compact=True, derived=True),
        EventType("enforcement.action", "EnforcementAction", ("action_id",), 3),
        EventType("emergency.notice", "EmergencyNotice", ("incident_id",), 3),
        EventType("emergency.ack", "EmergencyAck", ("incident_id",), 3),
        EventType("emergency.dispatch", "EmergencyDispatch", ("incident_id",), 3, derived=True),
        EventType("project.plan", "ProjectPlan", ("project_id",), 3, compact=True),
        EventType("project.milestone", "MilestoneReport", ("project_id",), 3),
        EventType("supervision.alert", "SupervisionAlert", ("ref",), 3, retention_ms=str(365 * DAY_MS), derived=True),
        # reads of natural persons' unmasked data (the API's audit trail): append-only, kept forever
        EventType("audit.read", "AuditRead", ("subject_id",), 3, derived=True),
    )
}

INPUT_TYPES = [name for name, e in EVENT_TYPES.items() if not e.derived]

#: The one service that judges each input event type and holds the state it changes. It alone
#: writes the type's DLQ and its accepted stream (`Catalog.accepted`): the events it applied,
#: byte for byte with their headers, after every check (schema, contract, provenance, event_id,
#: order and ownership). Every other reader of the type consumes the accepted stream.
OWNER: dict[str, str] = {
    "credit.record": "credit",
    "enforcement.action": "credit",
    "sanction.feedback": "sanctions",
    "emergency.notice": "emergency",
    "emergency.ack": "emergency",
    "project.plan": "supervision",
    "project.milestone": "supervision",
}
#: The derived event types and the services that write each.
WRITERS: dict[str, tuple[str, ...]] = {
    "credit.profile": ("credit",),
    "sanction.list": ("sanctions",),
    "sanction.tracking": ("sanctions",),
    "emergency.dispatch": ("emergency",),
    # overdue alerts: milestones (supervision), acknowledgements (emergency), feedback (sanctions)
    "supervision.alert": ("supervision", "emergency", "sanctions"),
    "audit.read": ("api",),
}
#: derived types that are not for the cities' subscribers: only the admin principal reads them
PRIVATE: tuple[str, ...] = ("audit.read",)
assert set(OWNER) == set(INPUT_TYPES) and set(WRITERS) | set(OWNER) == set(EVENT_TYPES)
DLQ_RETENTION_MS = str(30 * DAY_MS)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    event_type: EventType | None = None

    @property
    def subject(self) -> str | None:
        """Registry subject of the value schema (TopicNameStrategy)."""
        return f"{self.name}-value" if self.event_type else None


class Catalog:
    """Every topic of one circle, with the replication settings of one profile."""

    def __init__(self, prefix: str = "njmc", replication_factor: int = 1, min_insync_replicas: int = 1) -> None:
        self.prefix = prefix
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas

    def topic(self, event_type: str) -> str:
        if event_type not in EVENT_TYPES:
            raise KeyError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
        return f"{self.prefix}.{event_type}.v1"

    def dlq(self, event_type_or_topic: str) -> str:
        base = event_type_or_topic
        if base in EVENT_TYPES:
            base = self.topic(base)
        return f"{base}.dlq"

    def accepted(self, event_type: str) -> str:
        """The accepted stream of an input type: what its owner applied (see OWNER)."""
        if event_type not in OWNER:
            raise KeyError(f"{event_type!r} is not an input event type; known: {', '.join(OWNER)}")
        return f"{self.prefix}.{event_type}.accepted.v1"

    def event_type_of(self, topic: str) -> EventType | None:
        """The event type a topic carries, its accepted stream included (None for DLQs and foreign topics)."""
        if not topic.startswith(self.prefix + ".") or not topic.endswith(".v1"):
            return None
        name = topic[len(self.prefix) + 1 : -3]
        if name.endswith(".accepted") and name[: -len(".accepted")] in OWNER:
            name = name[: -len(".accepted")]
        return EVENT_TYPES.get(name)

    def stream(self, event_type: str) -> str:
        """The topic a reader other than the owner consumes: a derived type's topic, an input type's
        accepted stream."""
        return self.accepted(event_type) if event_type in OWNER else self.topic(event_type)

    def is_accepted(self, topic: str) -> bool:
        return topic.endswith(".accepted.v1")

    def specs(self) -> list[TopicSpec]:
        common = {"min.insync.replicas": str(self.min_insync_replicas)}
        out: list[TopicSpec] = []
        for e in EVENT_TYPES.values():
            if e.compact:
                config = {"cleanup.policy": "compact", **common}
            else:
                config = {"cleanup.policy": "delete", "retention.ms": e.retention_ms, "retention.bytes": "-1", **common}
            out.append(TopicSpec(self.topic(e.name), e.partitions, config, e))
            if e.name in OWNER:  # the accepted stream: kept as long as its input
                out.append(TopicSpec(self.accepted(e.name), e.partitions, config, e))
            out.append(
                TopicSpec(self.dlq(e.name), 1, {"cleanup.policy": "delete", "retention.ms": DLQ_RETENTION_MS, **common})
            )
        return out

    def spec(self, name: str) -> TopicSpec:
        for s in self.specs():
            if s.name == name:
                return s
        raise KeyError(f"{name} is not in the catalogue")
