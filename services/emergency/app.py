"""The emergency processor: notices -> dispatches, acknowledgements, and overdue alerts.

- `njmc.emergency.notice.v1` -> `njmc.emergency.dispatch.v1`: each accepted report is routed by
  services/emergency/rules.py (effective level, recipients with reasons, deadlines); a report out
  of order, or after the FINAL, goes to the DLQ with its reason.
- `njmc.emergency.ack.v1`: each acknowledgement is recorded against its report; one for an unknown
  incident or report, or from a city that is not a recipient, goes to the DLQ.
- A timer on the injected clock raises EMERGENCY_ACK_OVERDUE on `njmc.supervision.alert.v1` once
  per recipient per report when its deadline passes unacknowledged.

Deadlines run from the report's `meta.published_at` (event time), so a replay routes the same way.
"""

from __future__ import annotations

import logging
import uuid

import faust

from schemas.events import EmergencyAck, EmergencyNotice
from services.common.alerts import emit_alert
from services.common.runtime import Record, StreamService, Verdict, run_worker
from services.emergency import rules
from services.emergency.rules import LEVELS
from services.emergency.state import Incident
from services.registry import processor
from topics.context import Context
from topics.metrics import Metrics
from topics.settings import Settings

SERVICE = "emergency"
DISPATCH_NS = uuid.UUID("2f6c9e1a-4b7d-4e2f-9a3c-8d1e5b7f0c24")
ALERT_NS = uuid.UUID("7a1d3c5e-9f2b-4c6d-8e0a-b4c6d8e0f2a1")
log = logging.getLogger("tongcheng.emergency")


class EmergencyService(StreamService):
    SERVICE = SERVICE

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        super().__init__(ctx, metrics, app)
        self.rules = rules.RULES
        self.incidents = self.proc.table("incidents", self.partitions("emergency.notice"), Incident)
        self.agent("emergency.notice", self.each_event("emergency.notice", self.apply_notice))
        self.agent("emergency.ack", self.each_event("emergency.ack", self.apply_ack))
        self.timer(ctx.settings.sweep_seconds, self.sweep)
        self.timer(ctx.settings.sweep_seconds, self.refresh_gauges)
        #: incidents counted by level and unacknowledged reports, and filed by their earliest
        #: deadline still watched
        self.incidents.count_by(rules.labels)
        self.incidents.due_by(lambda incident, now: rules.next_deadline(incident))

    async def apply_notice(self, event: Record, notice: EmergencyNotice) -> Verdict:
        key = notice.incident_id.encode()
        incident = self.incidents.get(key)
        if not rules.check_order(incident, notice):
            return "duplicate"
        incident = rules.apply_notice(incident, notice, self.rules, self.ctx.circle)
        self.incidents[key] = incident
        seq = notice.report_seq
        report = incident.reports[str(seq)]
        meta = self.proc.meta(
            "emergency.dispatch",
            str(uuid.uuid5(DISPATCH_NS, f"{notice.incident_id}#{seq}")),
            notice.meta.source_city,
            self.ctx.clock.now(),
            notice.meta.event_id,
        )
        await self.proc.emit("emergency.dispatch", notice.incident_id, rules.dispatch(notice, report, meta))
        return "applied"

    async def apply_ack(self, event: Record, ack: EmergencyAck) -> Verdict:
        key = ack.incident_id.encode()
        known = self.incidents.get(key)
        done = rules.apply_ack(known, ack)
        if done is None:
            return "duplicate"
        incident, report = done
        self.incidents[key] = incident
        before = known.reports[str(ack.report_seq)].recipients[ack.city] if known is not None else None
        if before is not None and before.acked_at is None:
            # observed once per recipient and report: an earlier ack arriving later corrects the state only
            waited = (ack.acknowledged_at - report.sent_at).total_seconds()
            self.metrics.emergency_ack_seconds.labels(level=report.effective_level).observe(max(waited, 0.0))
        return "applied"

    async def sweep(self) -> None:
        """EMERGENCY_ACK_OVERDUE for every recipient whose deadline passed on the clock, once."""
        now = self.ctx.clock.now()
        raised = 0
        for key in self.incidents.ready(now):
            incident = self.incidents.get(key)
            if incident is None:
                continue
            late = rules.overdue(incident, now)
            if late:
                incident = rules.mark_alerted(incident, late, now)
                for seq, city, deadline in late:
                    ref = f"{incident.incident_id}#{seq}"
                    await emit_alert(
                        self.proc,
                        ALERT_NS,
                        "EMERGENCY_ACK_OVERDUE",
                        f"{ref}/{city}",
                        city=city,
                        ref=ref,
                        due_at=deadline,
                        source_city=incident.sender,
                        now=now,
                    )
                raised += len(late)
                self.incidents[key] = incident
            else:
                self.incidents.touch(key)
        await self.proc.flush()
        if raised:
            log.info("ack sweep: %d EMERGENCY_ACK_OVERDUE alerts as of %s", raised, now.isoformat())

    async def refresh_gauges(self) -> None:
        g = rules.gauges_of(self.incidents.counts(), self.ctx.circle.codes)  # no incident is read
        for level in LEVELS:
            self.metrics.emergency_open_incidents.labels(level=level).set(g.open_incidents[level])
        for city in self.ctx.circle.codes:
            self.metrics.emergency_unacknowledged.labels(city=city).set(g.unacknowledged[city])
            self.metrics.emergency_ack_overdue.labels(city=city).set(g.ack_overdue[city])


def run(settings: Settings) -> int:
    return run_worker(settings, EmergencyService, processor(SERVICE).metrics_offset)
