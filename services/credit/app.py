"""The credit processor: `njmc.credit.record.v1` -> per-subject state -> `njmc.credit.profile.v1`.

Batches of up to 2,000 events are decoded, applied to each subject's state once per batch, and
each changed subject's profile is written to the table and emitted once. Enforcement actions
that reach CLOSED are turned into credit records on the input topic.
"""

from __future__ import annotations

import logging
import uuid

import faust

from schemas.events import CreditRecord, EnforcementAction
from schemas.structs import plain
from services.common.actions import closes
from services.common.runtime import Record, StreamService, Verdict, run_worker
from services.credit import enforcement, rules
from services.credit.enforcement import KeptAction, records_from_action
from services.credit.state import SUBJECTS, CreditState
from services.registry import processor
from topics.context import Context
from topics.localtime import local_date
from topics.metrics import Metrics
from topics.settings import Settings

SERVICE = "credit"
PROFILE_NS = uuid.UUID("0c8f5d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5")
log = logging.getLogger("tongcheng.credit")


class CreditService(StreamService):
    SERVICE = SERVICE

    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        super().__init__(ctx, metrics, app)
        self.subjects = self.proc.table("subjects", self.partitions("credit.record"), SUBJECTS)
        #: subjects per grade, and by the day their profile next changes on the clock alone
        self.subjects.count_by(lambda state, now: (state.grade,) if state.grade else ())
        self.subjects.due_by(lambda state, now: rules.next_change(state))
        self.closed = self.proc.table("closed-actions", self.partitions("enforcement.action"), KeptAction)
        self.agent("credit.record", self.apply_batch)
        self.agent("enforcement.action", self.each_event("enforcement.action", self.convert_action))
        self.timer(ctx.settings.sweep_seconds, self.sweep)
        self.timer(ctx.settings.sweep_seconds, self.refresh_gauges)

    async def apply_batch(self, events: list[Record]) -> None:
        dirty: dict[bytes, tuple[CreditState, CreditRecord]] = {}
        subjects, tz = self.subjects, self.ctx.circle.tz

        async def handle(event: Record, record: CreditRecord) -> Verdict:
            key = record.subject.subject_id.encode()
            state = dirty[key][0] if key in dirty else subjects.get(key)
            new, applied = rules.apply(state, record, tz)
            if not applied:
                return "duplicate"
            dirty[key] = (new, record)
            return "applied"

        await self.proc.each(events, "credit.record", handle)
        today = local_date(self.ctx.clock.now(), tz)
        for key, (state, record) in dirty.items():
            state, _ = rules.evaluate(state, today, bump=False)
            subjects[key] = state
            await self.emit_profile(state, record.meta.source_city, record.meta.event_id)

    async def emit_profile(self, state: CreditState, city: str, cause: str | None) -> None:
        now = self.ctx.clock.now()
        event_id = str(uuid.uuid5(PROFILE_NS, f"{state.subject_id}#{state.revision}"))
        meta = self.proc.meta("credit.profile", event_id, city, now, cause)
        await self.proc.emit("credit.profile", state.subject_id, rules.profile(state, now, meta))

    async def sweep(self) -> None:
        """Expiry: records whose publicity ended on the clock leave the profile, which is emitted again.

        Only the subjects whose next change has come are read (the table's due index).
        """
        today = local_date(self.ctx.clock.now(), self.ctx.circle.tz)
        changed = 0
        for key in self.subjects.ready(today):
            state = self.subjects.get(key)
            if state is None:
                self.subjects.touch(key)
                continue
            new, did = rules.evaluate(state, today)
            if not did:  # nothing ended after all: filed again under its next change
                self.subjects.touch(key)
                continue
            self.subjects[key] = new
            city = min((r.source_city for r in new.records.values()), default=self.ctx.circle.codes[0])
            await self.emit_profile(new, city, None)
            changed += 1
        await self.proc.flush()
        if changed:
            log.info("expiry sweep: %d profiles changed as of %s", changed, today)

    async def convert_action(self, event: Record, action: EnforcementAction) -> Verdict:
        """Judge one enforcement action (its lead city reports it; each event once); a CLOSED one
        becomes credit records on the input topic, once per action."""
        key = action.action_id.encode()
        known = self.closed.get(key)
        seen = enforcement.seen(known, action)
        if seen is None:
            return "duplicate"
        if closes(known, action):  # its findings become records once
            records = records_from_action(action, self.ctx.clock.now(), self.ctx.circle.tz)
            for record in records:  # all checked before any is sent: a refused action emits nothing
                self.ctx.validator.check("credit.record", plain(record))
            for record in records:
                await self.proc.emit("credit.record", record.subject.subject_id, record)
        self.closed[key] = seen
        return "applied"

    async def refresh_gauges(self) -> None:
        grades = self.subjects.counts()  # kept with the state by every write; no subject is read
        for grade in ("A", "B", "C", "D"):
            self.metrics.credit_subjects.labels(grade=grade).set(grades.get(grade, 0))


def run(settings: Settings) -> int:
    return run_worker(settings, CreditService, processor(SERVICE).metrics_offset)
