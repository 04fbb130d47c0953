"""Emergency routing as data and pure functions: effective level, recipients, deadlines, report order.

`services/data/emergency_rules.json` holds the acknowledgement deadlines per level, the levels a
declared city raises a notice to, the levels that fan out to bordering cities, and the subtypes
that flow downstream. The border and river graphs come from the circle's data file.

The rules take the input events as their Structs (schemas/events.py) and an incident's state as an
`Incident` (services/emergency/state.py): its reports, each with its recipients, their reason,
deadline, acknowledgement and alert. They return new Structs and never change one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from msgspec import structs

from schemas.errors import ConfigError, Reason, Rejected
from schemas.events import (
    EmergencyAck,
    EmergencyDispatch,
    EmergencyLevel,
    EmergencyNotice,
    Meta,
    Recipient,
    RecipientReason,
)
from services.emergency.state import AckStatus, Incident, Report, Slot
from topics.circle import Circle
from topics.datafile import check_sources, read_json

RULES_FILE = Path(__file__).resolve().parent.parent / "data" / "emergency_rules.json"
LEVELS: tuple[EmergencyLevel, ...] = ("I", "II", "III", "IV")  # most severe first
#: the strongest reason first
REASON_RANK: dict[RecipientReason, int] = {"DECLARED": 0, "DOWNSTREAM": 1, "ADJACENT": 2}
#: a moment after every deadline
_END = datetime.max.replace(tzinfo=UTC)


def more_severe(a: EmergencyLevel, b: EmergencyLevel) -> EmergencyLevel:
    return a if LEVELS.index(a) <= LEVELS.index(b) else b


@dataclass(frozen=True)
class EmergencyRules:
    ack_minutes: dict[EmergencyLevel, int]
    raise_other_province: EmergencyLevel
    raise_other_member: EmergencyLevel
    fanout_levels: frozenset[EmergencyLevel]
    downstream_subtypes: frozenset[str]
    #: each entry's source, by its path in the file (`ack_minutes.I`, ...)
    sources: dict[str, str]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> EmergencyRules:
        raw = read_json(path, "emergency rules")

        def level(value: object, where: str) -> EmergencyLevel:
            for known in LEVELS:
                if value == known:
                    return known
            raise ConfigError(f"{path}: {where}: {value!r} is not a level ({', '.join(LEVELS)})")

        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a JSON object")
        minutes = raw.get("ack_minutes")
        if not isinstance(minutes, dict) or set(minutes) != set(LEVELS):
            raise ConfigError(f"{path}: ack_minutes: needs a number of minutes for each level {', '.join(LEVELS)}")
        for name, value in minutes.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{path}: ack_minutes.{name}: must be a positive whole number, not {value!r}")
        raise_to = raw.get("raise_to") or {}
        fanout = raw.get("border_fanout_levels")
        if not isinstance(fanout, list):
            raise ConfigError(f"{path}: border_fanout_levels: must be a list of levels")
        subtypes = raw.get("downstream_subtypes")
        if not isinstance(subtypes, list) or not all(isinstance(s, str) for s in subtypes):
            raise ConfigError(f"{path}: downstream_subtypes: must be a list of subtypes")
        loaded = cls(
            {level(k, f"ack_minutes.{k}"): int(v) for k, v in minutes.items()},
            level(raise_to.get("other_province"), "raise_to.other_province"),
            level(raise_to.get("other_member"), "raise_to.other_member"),
            frozenset(level(v, f"border_fanout_levels[{i}]") for i, v in enumerate(fanout)),
            frozenset(subtypes),
            {},
        )
        entries = [*(f"ack_minutes.{name}" for name in LEVELS), "raise_to.other_province", "raise_to.other_member"]
        return replace(
            loaded, sources=check_sources(raw, [*entries, "border_fanout_levels", "downstream_subtypes"], path)
        )

    def effective_level(self, notice: EmergencyNotice, circle: Circle) -> EmergencyLevel:
        """The notice's level, raised by the declared affected cities (other province, other member)."""
        level = notice.level
        home = notice.location.city
        province = circle.province_of(home)
        for city in notice.affected_cities:
            if city == home:
                continue
            floor = self.raise_other_province if circle.province_of(city) != province else self.raise_other_member
            level = more_severe(level, floor)
        return level

    def recipients(self, notice: EmergencyNotice, level: EmergencyLevel, circle: Circle) -> dict[str, RecipientReason]:
        """city -> reason (DECLARED, DOWNSTREAM or ADJACENT, the strongest); never the sender."""
        home = notice.location.city
        found: dict[str, RecipientReason] = {}

        def add(city: str, reason: RecipientReason) -> None:
            if city not in found or REASON_RANK[reason] < REASON_RANK[found[city]]:
                found[city] = reason

        for city in notice.affected_cities:
            add(city, "DECLARED")
        if level in self.fanout_levels:
            for city in circle.neighbours(home):
                add(city, "ADJACENT")
        if notice.subtype in self.downstream_subtypes:
            for city in circle.downstream(home):
                add(city, "DOWNSTREAM")
        found.pop(notice.meta.source_city, None)
        return {city: found[city] for city in circle.codes if city in found}

    def deadline(self, level: EmergencyLevel, sent_at: datetime) -> datetime:
        return sent_at + timedelta(minutes=self.ack_minutes[level])


RULES = EmergencyRules.load()


def check_order(incident: Incident | None, notice: EmergencyNotice) -> bool:
    """Whether a report may be applied; False for a redelivery. Raises Rejected when out of order."""
    seq, kind = notice.report_seq, notice.report_kind
    iid = notice.incident_id
    if incident is None:
        if kind != "INITIAL":
            raise Rejected(Reason.REPORT_OUT_OF_ORDER, f"{iid}: the first report must be INITIAL, not {kind}")
        return True
    known = incident.reports.get(str(seq))
    if known is not None and known.event_id == notice.meta.event_id:
        return False
    sender = notice.meta.source_city
    if sender != incident.sender:
        raise Rejected(
            Reason.NOT_OWNER,
            f"{iid} was reported by city {incident.sender}; city {sender} cannot send its {kind}",
            "meta.source_city",
        )
    if incident.closed:
        raise Rejected(
            Reason.INCIDENT_CLOSED, f"{iid} was closed by its FINAL report {incident.last_seq}; {kind} {seq} refused"
        )
    if seq <= incident.last_seq:
        raise Rejected(
            Reason.REPORT_OUT_OF_ORDER, f"{iid}: report_seq {seq} does not follow {incident.last_seq}", "report_seq"
        )
    if kind == "INITIAL":
        raise Rejected(Reason.REPORT_OUT_OF_ORDER, f"{iid}: INITIAL after report {incident.last_seq}", "report_kind")
    return True


def apply_notice(incident: Incident | None, notice: EmergencyNotice, rules: EmergencyRules, circle: Circle) -> Incident:
    """The incident with one report added (after `check_order`)."""
    meta = notice.meta
    sent_at = meta.published_at
    level = rules.effective_level(notice, circle)
    deadline = rules.deadline(level, sent_at)
    report = Report(
        event_id=meta.event_id,
        kind=notice.report_kind,
        level=notice.level,
        effective_level=level,
        sent_at=sent_at,
        recipients={
            city: Slot(reason=reason, deadline=deadline)
            for city, reason in rules.recipients(notice, level, circle).items()
        },
    )
    seq = notice.report_seq
    closed = notice.report_kind == "FINAL"
    if incident is None:
        return Incident(
            incident_id=notice.incident_id,
            sender=meta.source_city,
            category=notice.category,
            subtype=notice.subtype,
            location_city=notice.location.city,
            reports={str(seq): report},
            closed=closed,
            last_seq=seq,
            level=level,
        )
    return structs.replace(
        incident, reports={**incident.reports, str(seq): report}, closed=closed, last_seq=seq, level=level
    )


def dispatch_recipients(report: Report) -> list[Recipient]:
    """The recipients of a report as its EmergencyDispatch names them, in the report's order."""
    return [
        Recipient(city=city, reason=slot.reason, ack_deadline=slot.deadline) for city, slot in report.recipients.items()
    ]


def dispatch(notice: EmergencyNotice, report: Report, meta: Meta) -> EmergencyDispatch:
    """The EmergencyDispatch event of one report (as `apply_notice` recorded it), with its `meta`."""
    return EmergencyDispatch(
        meta=meta,
        incident_id=notice.incident_id,
        report_seq=notice.report_seq,
        effective_level=report.effective_level,
        raised_from=report.raised_from,
        recipients=dispatch_recipients(report),
        report_kind=notice.report_kind,
        subtype=notice.subtype,
        location_city=notice.location.city,
    )


def apply_ack(incident: Incident | None, ack: EmergencyAck) -> tuple[Incident, Report] | None:
    """(incident, the report acknowledged) with the ack recorded; None for a repeat. Raises Rejected.

    A recipient's acknowledgement is its earliest `acknowledged_at`: a later or equal one is a
    repeat, an earlier one (arriving after) replaces it, so the final state does not depend on the
    order acks arrive in.
    """
    iid, seq, city = ack.incident_id, ack.report_seq, ack.city
    if ack.meta.source_city != city:
        raise Rejected(Reason.NOT_OWNER, f"an ack for city {city} was sent by city {ack.meta.source_city}", "city")
    if incident is None:
        raise Rejected(Reason.UNKNOWN_INCIDENT, f"no incident {iid}", "incident_id")
    report = incident.reports.get(str(seq))
    if report is None:
        raise Rejected(Reason.UNKNOWN_REPORT, f"{iid} has no report {seq}", "report_seq")
    slot = report.recipients.get(city)
    if slot is None:
        raise Rejected(
            Reason.NOT_OWNER,
            f"{city} is not a recipient of {iid} report {seq} (recipients: {', '.join(report.recipients) or 'none'})",
            "city",
        )
    if slot.acked_at is not None and slot.acked_at <= ack.acknowledged_at:
        return None
    slot = structs.replace(slot, acked_at=ack.acknowledged_at)
    report = structs.replace(report, recipients={**report.recipients, city: slot})
    return structs.replace(incident, reports={**incident.reports, str(seq): report}), report


def missed(slot: Slot, now: datetime) -> bool:
    """Whether a recipient missed its deadline as of `now`: the deadline has passed (strictly: an
    ack at the very deadline is in time) with no ack, or with an ack after it."""
    if slot.acked_at is not None:
        return slot.acked_at > slot.deadline
    return slot.deadline < now


def ack_status(slot: Slot, now: datetime) -> AckStatus:
    """ACKNOWLEDGED, OVERDUE (no ack and the deadline has passed) or PENDING, as the API shows it."""
    if slot.acked_at is not None:
        return "ACKNOWLEDGED"
    return "OVERDUE" if missed(slot, now) else "PENDING"


class Late(NamedTuple):
    """A recipient that missed its deadline for one report."""

    seq: str  # the report's report_seq, as the incident's `reports` key it
    city: str
    deadline: datetime


def overdue(incident: Incident, now: datetime) -> list[Late]:
    """Every recipient that missed its deadline (no ack by it, or an ack after it) and has not been
    alerted yet: each missed deadline raises one alert."""
    out = []
    for seq, report in incident.reports.items():
        for city, slot in report.recipients.items():
            if slot.alerted_at is None and missed(slot, now) and slot.deadline < now:
                out.append(Late(seq, city, slot.deadline))
    return out


def mark_alerted(incident: Incident, which: Iterable[Late], now: datetime) -> Incident:
    reports = dict(incident.reports)
    for seq, city, _ in which:
        report = reports[seq]
        slot = structs.replace(report.recipients[city], alerted_at=now)
        reports[seq] = structs.replace(report, recipients={**report.recipients, city: slot})
    return structs.replace(incident, reports=reports)


def next_deadline(incident: Incident) -> datetime | None:
    """The earliest deadline still to watch (not yet alerted, and not acknowledged in time), or None."""
    pending = [
        slot.deadline
        for report in incident.reports.values()
        for slot in report.recipients.values()
        if slot.alerted_at is None and (slot.acked_at is None or missed(slot, _END))
    ]
    return min(pending) if pending else None


@dataclass(frozen=True)
class Gauges:
    """The emergency gauges of a set of incidents, as one function of their state and the clock."""

    open_incidents: dict[str, int]  # by effective level
    unacknowledged: dict[str, int]  # by city
    ack_overdue: dict[str, int]  # by city


def labels(incident: Incident, now: datetime) -> list[str]:
    """What one incident counts toward in the gauges: its level while open, and per city each
    report it has yet to acknowledge (`waiting:`) and each of those past its deadline (`late:`);
    the incidents table keeps these counts with the state, changed by each write."""
    out = [] if incident.closed else [f"open:{incident.level}"]
    for city, n in unacknowledged(incident).items():
        out += [f"waiting:{city}"] * n
    for city, n in unacknowledged(incident, past=now).items():
        out += [f"late:{city}"] * n
    return out


def gauges_of(counts: dict[str, int], cities: Iterable[str]) -> Gauges:
    cities = list(cities)
    return Gauges(
        {level: counts.get(f"open:{level}", 0) for level in LEVELS},
        {city: counts.get(f"waiting:{city}", 0) for city in cities},
        {city: counts.get(f"late:{city}", 0) for city in cities},
    )


def gauges(incidents: Iterable[Incident], now: datetime, cities: Iterable[str]) -> Gauges:
    """The emergency gauges as one function of the incidents and the clock (the sum of their labels)."""
    return gauges_of(Counter(label for incident in incidents for label in labels(incident, now)), cities)


def unacknowledged(incident: Incident, past: datetime | None = None) -> dict[str, int]:
    """Per city, the reports it has yet to acknowledge: of an open incident all of them, of a
    closed one its FINAL report only. With `past`, only those whose deadline had passed by then
    (strictly before it, as `ack_status` says OVERDUE)."""
    out: dict[str, int] = {}
    for seq, report in incident.reports.items():
        if incident.closed and int(seq) != incident.last_seq:
            continue
        for city, slot in report.recipients.items():
            if slot.acked_at is None and (past is None or missed(slot, past)):
                out[city] = out.get(city, 0) + 1
    return out
