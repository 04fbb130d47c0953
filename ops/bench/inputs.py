"""Realistic input for each processor benchmark, encoded and ready to send.

City input (credit records, notices, acks, plans, milestones, enforcement actions, sanction
feedback) goes through the publisher SDK (`Publisher.prepare`: meta, contract checks, Avro), as a
city system would send it. Derived input (profiles, list entries, tracking, dispatches: what the
sanctions processor and the read model consume) is made by the processors' own rules run in
process on the city input (services/*/rules.py), with `meta` as the processors fill it, so it
carries what a running circle would carry: revisions that grow, listings with their measures,
dispatches with their recipients and deadlines.

The bodies are ops/bench/workload.py's, as ops/simulate.py sends them (the same shapes and mixes),
reproducible from a seed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from msgspec.structs import replace

from ops.bench import workload
from ops.bench.workload import credit_records, subject_ids
from schemas.errors import Rejected
from schemas.events import (
    CreditProfile,
    CreditRecord,
    EmergencyNotice,
    Meta,
    SanctionEntry,
    SanctionFeedback,
    SanctionTracking,
)
from schemas.structs import plain, typed
from services.credit import rules as credit_rules
from services.credit.state import CreditState
from services.emergency import rules as emergency_rules
from services.sanctions import feedback as sanction_feedback
from services.sanctions import rules as sanction_rules
from services.sanctions.state import ListEntry
from topics.catalog import EVENT_TYPES
from topics.context import Context
from topics.localtime import local_date
from topics.publisher import Prepared, Publisher

SOURCE = "tongcheng-bench"
NS = uuid.UUID("6a0c3f7e-8b14-4d2a-9e55-1f7c2b9d3a60")  # ids of the derived events made here


@dataclass
class Timed:
    """One event of the latency phase, sent `at` seconds after the phase starts."""

    at: float
    event: Prepared
    stream: str = "main"  # "main", or "credit" for the credit load beside the emergency benchmark


@dataclass
class Inputs:
    """Builds the events; one instance per benchmark run (it keeps the state the rules need)."""

    ctx: Context
    producer: KafkaProducer
    seed: int = 1
    sign: bool = True  # the inputs carry their city's signature (the derived ones never do)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.cities = list(self.ctx.circle.codes)
        self.publishers = {c: Publisher(self.ctx, c, SOURCE, self.producer, self.sign) for c in self.cities}
        self.now = self.ctx.clock.now()
        self.today = local_date(self.now, self.ctx.circle.tz)
        self.n = 0
        # in-process state of the rules (what the processors will hold once they consumed it)
        self.credit_states: dict[str, CreditState] = {}
        self.entries: dict[str, ListEntry] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        self.sanction_rules = sanction_rules.RULES
        self.window_days = self.ctx.settings.feedback_window_days or self.sanction_rules.feedback_window_days

    # --- encoding ------------------------------------------------------------------------------

    def prepare(self, city: str, event_type: str, body: dict[str, Any]) -> Prepared:
        return self.publishers[city].prepare(event_type, body)

    def derived(self, event_type: str, key: str, body: dict[str, Any]) -> Prepared:
        kind = EVENT_TYPES[event_type]
        topic = self.ctx.topics.topic(event_type)
        value = self.ctx.codec.encode(f"{topic}-value", kind.schema, body)
        return Prepared(event_type, topic, key.encode(), value, body)

    def meta(self, event_type: str, event_id: str, city: str, service: str, cause: str | None) -> dict[str, Any]:
        now = self.ctx.clock.now()
        return {
            "event_id": event_id,
            "event_type": event_type,
            "source_city": city,
            "source_system": f"tongcheng-{service}",
            "occurred_at": now,
            "published_at": now,
            "correlation_id": None,
            "causation_id": cause,
        }

    def derived_id(self, *parts: Any) -> str:
        return str(uuid.uuid5(NS, "/".join(str(p) for p in parts)))

    # --- credit ----------------------------------------------------------------------------------

    def credit_records(self, count: int, subjects: int) -> Iterator[Prepared]:
        """CreditRecords: ops/bench/workload.py's mix (valid USCCs, AMEND/REVOKE/REPAIR, 2% redeliveries)."""
        for city, body in credit_records(count, subjects, self.cities, self.today, self.seed):
            yield self.prepare(city, "credit.record", body)

    def profiles(self, records: Iterator[Prepared]) -> Iterator[tuple[Prepared, Prepared | None]]:
        """(record, the CreditProfile the credit processor emits for it, or None for a redelivery)."""
        for record in records:
            event = typed(record.event, CreditRecord)
            key = event.subject.subject_id
            try:
                state, applied = credit_rules.apply(self.credit_states.get(key), event, self.ctx.circle.tz)
            except Rejected:  # e.g. a REPAIR before its time: the credit processor dead-letters it
                applied = False
            if not applied:
                yield record, None
                continue
            state, _ = credit_rules.evaluate(state, self.today, bump=False)
            self.credit_states[key] = state
            as_of = self.ctx.clock.now()
            pid = self.derived_id("profile", key, state.revision)
            meta = Meta(**self.meta("credit.profile", pid, event.meta.source_city, "credit", event.meta.event_id))
            body = plain(credit_rules.profile(state, as_of, meta))
            yield record, self.derived("credit.profile", key, body)

    # --- sanctions -------------------------------------------------------------------------------

    def sanction_outputs(self, profile: Prepared) -> list[Prepared]:
        """The list entry and tracking the sanctions processor emits for a profile (often none)."""
        p = typed(profile.event, CreditProfile)
        key = p.subject_id
        prev = self.entries.get(key)
        if prev is not None and prev.profile_revision >= p.revision:
            return []
        decision = self.sanction_rules.decide(p, self.today)
        now = self.ctx.clock.now()
        entry = sanction_rules.next_entry(prev, decision, p, now, self.cities, self.ctx.circle.tz)
        if entry is None:
            if prev is not None:
                self.entries[key] = replace(prev, profile_revision=p.revision)
            return []
        entry = sanction_feedback.track(prev, entry, now, self.window_days, self.sanction_rules.feedback_lists)
        self.entries[key] = entry
        cause = p.meta.event_id
        return [self.entry_event(entry, cause), self.tracking_event(entry, cause)]

    def entry_event(self, entry: ListEntry, cause: str | None) -> Prepared:
        meta = self.sanction_meta("sanction.list", "entry", entry.revision, entry, cause)
        return self.sanction_event("sanction.list", entry, sanction_rules.list_body(entry, self.ctx.circle.tz, meta))

    def tracking_event(self, entry: ListEntry, cause: str | None) -> Prepared:
        meta = self.sanction_meta("sanction.tracking", "tracking", entry.tracking_version, entry, cause)
        body = sanction_feedback.tracking_body(entry, self.cities, self.ctx.clock.now(), meta)
        return self.sanction_event("sanction.tracking", entry, body)

    def sanction_meta(self, event_type: str, kind: str, version: int, entry: ListEntry, cause: str | None) -> Meta:
        """The meta the sanctions processor gives an event; its id from `kind` and `version`."""
        event_id = self.derived_id(kind, entry.subject_id, version)
        return Meta(**self.meta(event_type, event_id, entry.initiated_by, "sanctions", cause))

    def sanction_event(self, event_type: str, entry: ListEntry, body: SanctionEntry | SanctionTracking) -> Prepared:
        return self.derived(event_type, entry.subject_id, plain(body))

    def black_listed(self) -> list[dict[str, Any]]:
        """The current BLACK listings, with what ops/bench/workload.py reads of a listing."""
        return [
            {"subject_id": e.subject_id, "revision": e.revision, "measures": [{"code": m.code} for m in e.measures]}
            for e in self.entries.values()
            if e.list == "BLACK" and e.status == "LISTED"
        ]

    def feedback(self, count: int) -> list[Prepared]:
        """SanctionFeedback from the member cities on the current BLACK listings (as ops/simulate.py)."""
        black = self.black_listed()
        out: list[Prepared] = []
        for _ in range(count if black else 0):
            self.n += 1
            now = self.ctx.clock.now().isoformat()
            body = workload.feedback(self.rng, black, self.cities, f"BENCH-{self.n}", now)
            out.append(self.prepare(body["city"], "sanction.feedback", body))
        return out

    def tracking_for(self, fb: Prepared) -> Prepared | None:
        """The tracking event the sanctions processor emits for one feedback (None when unchanged)."""
        event = typed(fb.event, SanctionFeedback)
        key = event.subject_id
        entry = sanction_feedback.record(self.entries.get(key), event, self.sanction_rules.counted_outcomes)
        if entry is None:
            return None
        self.entries[key] = entry
        return self.tracking_event(entry, event.meta.event_id)

    # --- emergency -------------------------------------------------------------------------------

    def notice(self) -> Prepared:
        body = workload.notice(self.rng, self.cities, "基准测试事件")
        return self.prepare(body["location"]["city"], "emergency.notice", body)

    def acks(self, notice: Prepared, share: float = 0.85) -> list[Prepared]:
        """Acknowledgements from the recipients the rules route the notice to (85% of them answer)."""
        n = typed(notice.event, EmergencyNotice)
        level = emergency_rules.RULES.effective_level(n, self.ctx.circle)
        out = []
        for city in emergency_rules.RULES.recipients(n, level, self.ctx.circle):
            if self.rng.random() < share:
                body = {
                    "incident_id": n.incident_id,
                    "report_seq": 1,
                    "city": city,
                    "actions_taken": ["已接收"],
                    "acknowledged_at": self.ctx.clock.now().isoformat(),
                }
                out.append(self.prepare(city, "emergency.ack", body))
        return out

    def dispatch(self, notice: Prepared) -> Prepared:
        """The EmergencyDispatch the emergency processor emits for a notice."""
        n = typed(notice.event, EmergencyNotice)
        incident = emergency_rules.apply_notice(None, n, emergency_rules.RULES, self.ctx.circle)
        meta = self.meta(
            "emergency.dispatch",
            self.derived_id("dispatch", n.incident_id, 1),
            n.meta.source_city,
            "emergency",
            n.meta.event_id,
        )
        body = plain(emergency_rules.dispatch(n, incident.reports["1"], Meta(**meta)))
        return self.derived("emergency.dispatch", n.incident_id, body)

    # --- projects and enforcement ----------------------------------------------------------------

    def plan(self) -> Prepared:
        body = workload.plan(self.rng, self.cities, self.today)
        self.plans[body["project_id"]] = body
        return self.prepare(body["lead_city"], "project.plan", body)

    def milestone(self) -> Prepared:
        """A status report on a milestone of a known plan: done (some late), in progress or blocked."""
        body = workload.milestone(self.rng, self.plans, self.today)
        return self.prepare(self.plans[body["project_id"]]["lead_city"], "project.milestone", body)

    def projects(self, count: int) -> tuple[list[Prepared], list[Prepared]]:
        """(plans, milestone reports): one plan for every four reports, as in ops/simulate.py."""
        plans = [self.plan() for _ in range(max(1, count // 5))]
        return plans, [self.milestone() for _ in range(count - len(plans))]

    def enforcement(self, count: int, subjects: int) -> list[Prepared]:
        """Joint enforcement actions: each PLANNED, then CLOSED with findings a little later in the stream."""
        pool = subject_ids(max(2, subjects), self.seed + 1)
        out: list[Prepared] = []
        planned: list[dict[str, Any]] = []
        now = self.ctx.clock.now().isoformat()
        while len(out) < count:
            self.n += 1
            if planned and (self.rng.random() < 0.5 or len(out) + len(planned) >= count):
                action = planned.pop(0)
                closed = workload.closed_action(self.rng, action, self.today, self.n, now)
                out.append(self.prepare(action["lead_city"], "enforcement.action", closed))
                continue
            lead = self.rng.choice(self.cities)
            action = workload.planned_action(self.rng, self.cities, lead, pool, now)
            planned.append(action)
            out.append(self.prepare(lead, "enforcement.action", action))
        return out
