"""The sanctions processor: profiles -> list entries, and the cities' feedback on them.

- `njmc.credit.profile.v1` -> `njmc.sanction.list.v1`: each batch of profiles is decided by the
  list rules (services/sanctions/rules.py); an entry that is new, changed or removed is written to
  the `entries` table and emitted once, with revision + 1.
- `njmc.sanction.feedback.v1` -> the entry's feedback tracking (services/sanctions/feedback.py);
  feedback on an unknown subject, a stale revision or a measure the listing does not have goes to
  the DLQ with its reason.
- A timer on the injected clock raises SANCTION_FEEDBACK_OVERDUE on `njmc.supervision.alert.v1`
  once per city per listing when the window closes.
- Every change of an entry's tracking is emitted on `njmc.sanction.tracking.v1` (compacted), which
  the read model and the API show as each city's feedback status.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import faust
from msgspec.structs import replace

from schemas.events import CreditProfile, SanctionFeedback
from services.common.alerts import emit_alert
from services.common.runtime import Record, StreamService, Verdict, run_worker
from services.registry import processor
from services.sanctions import feedback, rules
from services.sanctions.state import ListEntry
from topics.context import Context
from topics.localtime import day_start, local_date
from topics.metrics import Metrics
from topics.settings import Settings

SERVICE = "sanctions"
ENTRY_NS = uuid.UUID("5d0f8a52-7c1e-4b8e-9a57-3f4a1c2b9e61")
TRACKING_NS = uuid.UUID("9b3e61c4-0d2a-4f7b-8c15-6e2d7a9f4b03")
ALERT_NS = uuid.UUID("e4a7c2d9-58b1-4f3e-a6d0-1c9b8f2e7a45")
log = logging.getLogger("tongcheng.sanctions")


class SanctionService(StreamService):
    SERVICE = SERVICE

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        super().__init__(ctx, metrics, app)
        self.rules = rules.RULES
        self.entries = self.proc.table("entries", self.partitions("credit.profile"), ListEntry)
        self.window_days = ctx.settings.feedback_window_days or self.rules.feedback_window_days
        self.cities = list(ctx.circle.codes)
        self.agent("credit.profile", self.apply_batch)
        self.agent("sanction.feedback", self.apply_feedback)
        self.timer(ctx.settings.sweep_seconds, self.sweep)
        self.timer(ctx.settings.sweep_seconds, self.refresh_gauges)
        #: entries counted by list and feedback status, and listings filed by the end of their
        #: feedback window while an alert may still be owed
        self.entries.count_by(lambda entry, now: rules.labels(entry, self.cities, now))
        self.entries.due_by(lambda entry, now: self.watch_until(entry))

    async def apply_batch(self, events: list[Record]) -> None:
        now = self.ctx.clock.now()

        async def handle(event: Record, profile: CreditProfile) -> Verdict:
            key = profile.subject_id.encode()
            prev = self.entries.get(key)
            if prev is not None and prev.profile_revision >= profile.revision:
                return "duplicate"
            decision = self.rules.decide(profile, local_date(now, self.ctx.circle.tz))
            entry = rules.next_entry(prev, decision, profile, now, self.cities, self.ctx.circle.tz)
            if entry is None:
                if prev is not None:
                    self.entries[key] = replace(prev, profile_revision=profile.revision)
                return "applied"
            entry = feedback.track(prev, entry, now, self.window_days, self.rules.feedback_lists)
            self.entries[key] = entry
            await self.emit(entry, profile.meta.event_id, now)
            await self.emit_tracking(entry, profile.meta.event_id, now)
            return "applied"

        await self.proc.each(events, "credit.profile", handle)

    def watch_until(self, entry: ListEntry) -> datetime | None:
        """When the sweep must look at a listing: the end of its feedback window, while some city
        may still be alerted for it, and the local midnight its reasons leave the rule's window (a
        FOCUS listing with no new profile); None otherwise."""
        if entry.status != "LISTED":
            return None
        moments = []
        due = entry.due_at
        if due is not None and feedback.overdue(entry, datetime.max.replace(tzinfo=UTC), self.cities):
            moments.append(due)
        if entry.leaves_on is not None:
            moments.append(day_start(entry.leaves_on, self.ctx.circle.tz))
        return min(moments) if moments else None

    async def apply_feedback(self, events: list[Record]) -> None:
        now = self.ctx.clock.now()
        changed: dict[bytes, ListEntry] = {}  # key -> the entry after its last applied feedback
        causes: dict[bytes, str] = {}  # key -> the event_id of its last applied feedback

        async def handle(event: Record, fb: SanctionFeedback) -> Verdict:
            key = fb.subject_id.encode()
            entry = feedback.record(self.entries.get(key), fb, self.rules.counted_outcomes)
            if entry is None:
                return "duplicate"
            self.entries[key] = changed[key] = entry
            causes[key] = fb.meta.event_id
            return "applied"

        await self.proc.each(events, "sanction.feedback", handle)
        for key, entry in changed.items():  # one tracking event per subject per batch
            await self.emit_tracking(entry, causes[key], now)

    async def sweep(self) -> None:
        """Raise SANCTION_FEEDBACK_OVERDUE for each city whose window closed on the clock, once; and
        remove a listing whose reasons have left its rule's window (no new profile would say so)."""
        now = self.ctx.clock.now()
        today = local_date(now, self.ctx.circle.tz)
        raised = removed = 0
        for key in self.entries.ready(now):
            entry = self.entries.get(key)
            if entry is None:
                continue
            ended = self.rules.left_window(entry, today)
            if ended is not None:
                entry = feedback.track(entry, ended, now, self.window_days, self.rules.feedback_lists)
                self.entries[key] = entry
                await self.emit(entry, None, now)
                await self.emit_tracking(entry, None, now)
                removed += 1
                continue
            late = feedback.overdue(entry, now, self.cities)
            due = entry.due_at  # not None when a city is late
            if late and due is not None:
                entry = feedback.mark_alerted(entry, late, now)
                self.entries[key] = entry
                ref = f"{entry.subject_id}#{entry.listed_revision}"
                for city in late:
                    await emit_alert(
                        self.proc,
                        ALERT_NS,
                        "SANCTION_FEEDBACK_OVERDUE",
                        f"{ref}/{city}",
                        city=city,
                        ref=ref,
                        due_at=due,
                        source_city=entry.initiated_by,
                        now=now,
                    )
                await self.emit_tracking(entry, None, now)
                raised += len(late)
            else:
                self.entries.touch(key)
        await self.proc.flush()
        if raised or removed:
            log.info(
                "sweep as of %s: %d SANCTION_FEEDBACK_OVERDUE alerts, %d listings left their window",
                now.isoformat(),
                raised,
                removed,
            )

    async def emit_tracking(self, entry: ListEntry, cause: str | None, now: datetime) -> None:
        event_id = str(uuid.uuid5(TRACKING_NS, f"{entry.subject_id}#{entry.tracking_version}"))
        meta = self.proc.meta("sanction.tracking", event_id, entry.initiated_by, now, cause)
        await self.proc.emit(
            "sanction.tracking", entry.subject_id, feedback.tracking_body(entry, self.cities, now, meta)
        )

    async def emit(self, entry: ListEntry, cause: str | None, now: datetime) -> None:
        event_id = str(uuid.uuid5(ENTRY_NS, f"{entry.subject_id}#{entry.revision}"))
        meta = self.proc.meta("sanction.list", event_id, entry.initiated_by, now, cause)
        await self.proc.emit("sanction.list", entry.subject_id, rules.list_body(entry, self.ctx.circle.tz, meta))

    async def refresh_gauges(self) -> None:
        listed, ratios = rules.gauges_of(self.entries.counts(), self.cities)  # no entry is read
        for name, n in listed.items():
            self.metrics.sanction_entries.labels(list=name).set(n)
        for city, value in ratios.items():
            self.metrics.sanction_feedback_ratio.labels(city=city).set(value)


def run(settings: Settings) -> int:
    return run_worker(settings, SanctionService, processor(SERVICE).metrics_offset)
