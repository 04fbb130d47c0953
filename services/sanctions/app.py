"""The sanctions processor: `njmc.credit.profile.v1` -> list entries -> `njmc.sanction.list.v1`.

Each batch of profiles is decided by the list rules (services/sanctions/rules.py); an entry that
is new, changed or removed is written to the `entries` table and emitted once, with revision + 1.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

import faust
from faust.types import EventT

from services.common.context import Context
from services.common.metrics import Metrics
from services.common.settings import Settings
from services.common.stream import JsonTable, Processor, make_app, run_worker
from services.sanctions import rules

SERVICE = "sanctions"
METRICS_OFFSET = 3
BATCH = 2000
ENTRY_NS = uuid.UUID("5d0f8a52-7c1e-4b8e-9a57-3f4a1c2b9e61")
log = logging.getLogger("tongcheng.sanctions")


class SanctionService:
    def __init__(self, ctx: Context, metrics: Metrics, app: faust.App | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.rules = rules.RULES
        self.app = app or make_app(ctx, SERVICE)
        self.proc = Processor(ctx, self.app, SERVICE, metrics)
        profiles = ctx.topics.topic("credit.profile")
        partitions = ctx.topics.spec(profiles).partitions
        self.entries = JsonTable(
            self.app.Table(
                "entries", default=None, partitions=partitions, key_type=bytes, value_type=bytes, use_partitioner=True
            ),
            self.proc.outputs,
        )
        self.app.agent(self.proc.topic(profiles), name="sanction-profiles")(self._profiles)
        self.app.timer(5.0)(self.refresh_gauges)

    async def _profiles(self, stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=0.1):
            await self.apply_batch(events)

    async def apply_batch(self, events: list[EventT]) -> None:
        now = self.ctx.clock.now()
        cities = list(self.ctx.circle.codes)

        async def handle(event: EventT, profile: dict[str, Any]) -> str:
            key = profile["subject_id"].encode()
            prev = self.entries.get(key)
            if prev is not None and prev.get("profile_revision", 0) >= profile["revision"]:
                return "duplicate"
            decision = self.rules.decide(profile, now.date())
            entry = rules.next_entry(prev, decision, profile, now, cities)
            if entry is None:
                if prev is not None:
                    self.entries[key] = {**prev, "profile_revision": profile["revision"]}
                return "applied"
            entry["profile_revision"] = profile["revision"]
            self.entries[key] = entry
            await self.emit(entry, profile["meta"]["event_id"], now)
            return "applied"

        await self.proc.each(events, "credit.profile", handle)
        await self.proc.flush()

    async def emit(self, entry: dict[str, Any], cause: str | None, now: datetime) -> None:
        expires = entry["expires_at"]
        body = {
            "meta": {
                "event_id": str(uuid.uuid5(ENTRY_NS, f"{entry['subject_id']}#{entry['revision']}")),
                "event_type": "sanction.list",
                "source_city": entry["initiated_by"],
                "source_system": "tongcheng-sanctions",
                "occurred_at": now,
                "published_at": now,
                "correlation_id": None,
                "causation_id": cause,
            },
            **{k: entry[k] for k in ("subject_id", "name", "list", "status", "measures", "reasons", "initiated_by")},
            "effective_from": datetime.fromisoformat(entry["effective_from"]),
            # the day after the last day of publicity, at midnight UTC
            "expires_at": (
                datetime.combine(datetime.fromisoformat(expires).date() + timedelta(days=1), time(), tzinfo=UTC)
                if expires
                else None
            ),
            "revision": entry["revision"],
            "removal_reason": entry["removal_reason"],
        }
        await self.proc.emit("sanction.list", entry["subject_id"], body)

    async def refresh_gauges(self) -> None:
        listed = Counter(e["list"] for e in self.entries.values() if e and e.get("status") == "LISTED")
        for name in rules.LISTS:
            self.metrics.sanction_entries.labels(list=name).set(listed.get(name, 0))


def run(settings: Settings) -> int:
    return run_worker(settings, SanctionService, METRICS_OFFSET)
