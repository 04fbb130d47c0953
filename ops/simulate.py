"""`tongcheng simulate`: realistic traffic from every member city, at a chosen rate for a chosen time.

The mix, per event published:

- credit records (55%), AMEND, REVOKE and REPAIR of earlier ones among them (ops/bench/workload.py);
- joint enforcement actions (5%), PLANNED and later CLOSED with findings;
- emergency notices (3%), routed by the circle's rules, with acknowledgements from the recipients:
  most within seconds, some only at the end of the run (late), some never (left to the deadline);
- cooperation-project plans (4%) and milestone reports (15%), some done late, some blocked;
- sanction feedback (10% when the list has BLACK entries) from the member cities;
- a small share of bad input (`--bad`, 3%): USCCs with a wrong check character and notices naming
  a city outside the circle, which the SDK refuses before sending; feedback on a stale revision,
  acks for unknown incidents and reports on unknown projects, which the processors dead-letter.

It prints progress every 5 seconds and ends with a summary: events sent by type, events refused
by reason, and the bad events sent for the processors to refuse.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer

from ops.bench import workload
from ops.bench.workload import credit_records, subject_ids
from schemas.errors import Rejected
from schemas.events import EmergencyNotice, Meta
from schemas.structs import typed
from services.emergency.rules import RULES as EMERGENCY_RULES
from topics.context import Context
from topics.localtime import local_date
from topics.publisher import Publisher, producer_config
from topics.subscriber import Subscriber


class Simulation:
    def __init__(
        self, ctx: Context, rate: float, seconds: float, bad: float = 0.03, seed: int = 1, sign: bool = True
    ) -> None:
        self.ctx = ctx
        self.rate = rate
        self.seconds = seconds
        self.bad = bad
        self.rng = random.Random(seed)
        self.cities = list(ctx.circle.codes)
        self.producer = KafkaProducer(**producer_config(ctx.settings, "tongcheng-simulate"))
        self.publishers = {c: Publisher(ctx, c, "tongcheng-simulate", self.producer, sign) for c in self.cities}
        today = local_date(ctx.clock.now(), ctx.circle.tz)
        self.today = today
        self.credit = credit_records(10**9, 2000, self.cities, today, seed)
        self.subjects = subject_ids(200, seed + 1)
        self.sent: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.bad_sent: Counter[str] = Counter()
        self.planned_actions: list[dict[str, Any]] = []
        self.projects: dict[str, dict[str, Any]] = {}
        self.incidents: list[str] = []
        self.acks_due: list[tuple[float, str, dict[str, Any]]] = []
        self.acks_late: list[tuple[str, dict[str, Any]]] = []
        self.black: dict[str, dict[str, Any]] = {}
        self.lists = Subscriber(ctx, ["sanction.list"], from_beginning=True)
        self.n = 0

    # --- sending -------------------------------------------------------------------------------

    def send(self, city: str, event_type: str, body: dict[str, Any], bad: str | None = None) -> bool:
        """Publish without waiting; False when the SDK refused the event (counted by reason)."""

        def done(_event_id: str, error: Exception | None) -> None:
            if error is not None:
                self.failed[event_type] += 1

        try:
            self.publishers[city].publish_async(event_type, body, done)
        except Rejected as exc:
            self.refused[exc.reason.value] += 1
            return False
        self.sent[event_type] += 1
        if bad:
            self.bad_sent[bad] += 1
        return True

    # --- the kinds of traffic ------------------------------------------------------------------

    def credit_record(self) -> None:
        city, body = next(self.credit)
        if self.rng.random() < self.bad:  # a wrong check character: refused by the SDK
            good = body["subject"]["subject_id"]
            wrong = next(c for c in "0123456789" if c != good[-1])
            body = {**body, "subject": {**body["subject"], "subject_id": good[:-1] + wrong}}
        self.send(city, "credit.record", body)

    def enforcement(self) -> None:
        if self.planned_actions and self.rng.random() < 0.5:
            action = self.planned_actions.pop(0)
            closed = workload.closed_action(self.rng, action, self.today, self.n, self.now_iso())
            closed.pop("meta", None)
            self.send(action["lead_city"], "enforcement.action", closed)
            return
        lead = self.rng.choice(self.cities)
        targets = workload.enterprise_targets(self.rng, self.subjects)
        action = workload.planned_action(self.rng, self.cities, lead, self.subjects, self.now_iso(), targets)
        self.planned_actions.append(action)
        self.send(lead, "enforcement.action", action)

    def emergency(self) -> None:
        body = workload.notice(self.rng, self.cities, "模拟事件", bad=self.bad)
        city, iid = body["location"]["city"], body["incident_id"]
        if not self.send(city, "emergency.notice", body):
            return
        self.incidents.append(iid)
        now = datetime.now(UTC)
        meta = Meta(
            event_id=iid,  # only the city is read: the rules route by it
            event_type="emergency.notice",
            source_city=city,
            source_system="tongcheng-simulate",
            occurred_at=now,
            published_at=now,
        )
        notice = typed({**body, "meta": meta}, EmergencyNotice)
        effective = EMERGENCY_RULES.effective_level(notice, self.ctx.circle)
        for recipient in EMERGENCY_RULES.recipients(notice, effective, self.ctx.circle):
            ack = {"incident_id": iid, "report_seq": 1, "city": recipient, "actions_taken": ["已接收"]}
            roll = self.rng.random()
            if roll < 0.7:
                self.acks_due.append((time.monotonic() + self.rng.uniform(1, 10), recipient, ack))
            elif roll < 0.85:
                self.acks_late.append((recipient, ack))
            # else: never acknowledged; the deadline raises EMERGENCY_ACK_OVERDUE

    def project(self) -> None:
        if self.projects and self.rng.random() < 0.8:
            report = workload.milestone(self.rng, self.projects, self.today)
            self.send(self.projects[report["project_id"]]["lead_city"], "project.milestone", report)
            return
        plan = workload.plan(self.rng, self.cities, self.today)
        self.projects[plan["project_id"]] = plan
        self.send(plan["lead_city"], "project.plan", plan)

    def feedback(self) -> None:
        if not self.black:
            return
        body = workload.feedback(self.rng, list(self.black.values()), self.cities, f"SIM-{self.n}", self.now_iso())
        self.send(body["city"], "sanction.feedback", body)

    def bad_for_the_processors(self) -> None:
        """Input that passes the SDK's checks but that a processor must refuse to its DLQ."""
        city = self.rng.choice(self.cities)
        kinds = ["unknown_incident", "unknown_project"] + (["stale_revision"] if self.black else [])
        kind = self.rng.choice(kinds)
        if kind == "stale_revision":
            entry = self.rng.choice(list(self.black.values()))
            body = {
                "subject_id": entry["subject_id"],
                "list_revision": entry["revision"] + 50,
                "city": city,
                "measure_code": entry["measures"][0]["code"],
                "outcome": "APPLIED",
                "reported_at": self.now_iso(),
            }
            self.send(city, "sanction.feedback", body, bad=kind)
        elif kind == "unknown_project":
            report = {"project_id": f"NJMC-NOPE-{self.n}", "milestone_id": "M1", "status": "DONE", "actual_date": None}
            self.send(city, "project.milestone", report, bad=kind)
        else:
            ack = {
                "incident_id": f"INC-NOPE-{self.n}",
                "report_seq": 1,
                "city": city,
                "acknowledged_at": self.now_iso(),
            }
            self.send(city, "emergency.ack", ack, bad=kind)

    # --- the loop ------------------------------------------------------------------------------

    def now_iso(self) -> str:
        return self.ctx.clock.now().isoformat()

    def watch_lists(self) -> None:
        for d in self.lists.poll(timeout_ms=0, max_records=500):
            e = d.event
            if e is None:
                continue
            if e["list"] == "BLACK" and e["status"] == "LISTED":
                self.black[e["subject_id"]] = e
            else:
                self.black.pop(e["subject_id"], None)

    def one(self) -> None:
        self.n += 1
        if self.rng.random() < self.bad / 2:
            self.bad_for_the_processors()
            return
        roll = self.rng.random()
        for share, make in (
            (0.55, self.credit_record),
            (0.60, self.enforcement),
            (0.63, self.emergency),
            (0.82, self.project),
        ):
            if roll < share:
                make()
                return
        if self.black and roll < 0.92:
            self.feedback()
        else:
            self.credit_record()

    def send_due_acks(self, everything: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for when, city, ack in self.acks_due:
            if everything or when <= now:
                self.send(city, "emergency.ack", {**ack, "acknowledged_at": self.now_iso()})
            else:
                keep.append((when, city, ack))
        self.acks_due = keep

    def run(self, say: Callable[[str], None], stop: Callable[[], bool]) -> dict[str, Any]:
        started = time.monotonic()
        next_report = started + 5
        tick = 0.1
        budget = 0.0
        try:
            while not stop() and time.monotonic() - started < self.seconds:
                budget += self.rate * tick
                while budget >= 1:
                    self.one()
                    budget -= 1
                self.send_due_acks()
                self.watch_lists()
                now = time.monotonic()
                if now >= next_report:
                    say(
                        f"{now - started:5.0f}s  sent {sum(self.sent.values()):6d}  refused "
                        f"{sum(self.refused.values()):4d}  listed BLACK {len(self.black):4d}  open acks "
                        f"{len(self.acks_due) + len(self.acks_late):4d}"
                    )
                    next_report = now + 5
                time.sleep(max(0.0, tick - (time.monotonic() - now)))
            self.send_due_acks(everything=True)
            for city, ack in self.acks_late:  # late: after everything else
                self.send(city, "emergency.ack", {**ack, "acknowledged_at": self.now_iso()})
            self.producer.flush(timeout=60)
        finally:
            self.lists.close()
            self.producer.close(timeout=30)
        return {
            "seconds": round(time.monotonic() - started, 1),
            "sent": dict(sorted(self.sent.items())),
            "refused": dict(sorted(self.refused.items())),
            "sent_for_the_dlq": dict(sorted(self.bad_sent.items())),
            "failed": dict(sorted(self.failed.items())),
        }
