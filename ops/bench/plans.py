"""What each `tongcheng bench PROCESSOR` sends, to which worker, and what it times.

- credit: the credit worker on credit.record; latency publish -> the credit.profile naming the
  record (meta.causation_id).
- sanctions: the sanctions worker on credit.profile, then sanction.feedback on the listings those
  made; latency publish -> the sanction.list or sanction.tracking naming the profile or feedback.
- emergency: the emergency worker on emergency.notice, then emergency.ack; latency publish -> the
  emergency.dispatch naming the notice, with a credit worker taking 2,000 records/s beside it.
- projects: the supervision worker on project.plan, then project.milestone; no latency (the
  worker emits nothing per event).
- supervision: the supervision worker on enforcement.action's accepted stream (PLANNED, then
  CLOSED; the credit worker owns the type and forwards what it applied); no latency (it only
  counts them).
- readmodel: the readmodel worker on every topic it projects (derived topics, and the accepted
  streams of city input), in a circle's mix; latency
  publish of a credit.profile -> its row (event_id) readable in credit_profiles.

A later stage is published only once the worker has drained the one before, so feedback meets
its listing and an ack its notice, as they would in a running circle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from ops.bench.inputs import Inputs, Timed
from services.registry import PROCESSORS as DECLARED
from topics.catalog import OWNER
from topics.publisher import Prepared

#: the plans `build` knows, as the processors' declarations name them (services/registry.py)
PROCESSORS = tuple(plan for p in DECLARED for plan in p.bench)
#: worker name -> metrics port offset, from the declarations
METRICS_OFFSETS = {p.name: p.metrics_offset for p in DECLARED}
#: the credit load beside the emergency benchmark (the issue's target: notice->dispatch p99 <= 100 ms at
#: 100 notices/s while credit runs at 2,000/s)
CREDIT_BESIDE_EMERGENCY = 2000.0
DEFAULT_RATE = {"credit": 2000.0, "sanctions": 2000.0, "emergency": 100.0, "readmodel": 1000.0}


@dataclass
class Plan:
    processor: str
    worker: str
    stages: list[list[Prepared]]
    #: the latency phase; empty when the processor emits nothing that names its cause
    steady: list[Timed] = field(default_factory=list)
    #: stream -> the derived event types whose meta.causation_id names an input of that stream
    outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: what the latency is, or why there is none
    latency: str = ""
    rate: float | None = None
    #: a second worker run during the latency phase only (the credit load beside emergency)
    beside: str | None = None
    #: events sent to the `beside` worker before the latency phase, so it is running when it starts
    warm: list[Prepared] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(s) for s in self.stages)


def timed(events: list[Prepared], rate: float, stream: str = "main", start: float = 0.0) -> list[Timed]:
    return [Timed(start + i / rate, e, stream) for i, e in enumerate(events)]


def build(processor: str, inputs: Inputs, records: int, subjects: int, rate: float, seconds: float) -> Plan:
    steady_n = int(rate * seconds)
    if processor == "credit":
        events = list(inputs.credit_records(records + steady_n, subjects))
        return Plan(
            processor,
            "credit",
            [events[:records]],
            timed(events[records:], rate),
            {"main": ("credit.profile",)},
            "publish -> credit.profile naming the record (meta.causation_id)",
            rate,
        )

    if processor == "sanctions":
        # the profiles the credit processor emits for a stream of records; the sanctions rules run on
        # them here too, so the feedback names listings (and revisions) the worker will hold
        flow = (p for _, p in inputs.profiles(inputs.credit_records(10**9, subjects)) if p is not None)
        feedback_n = records // 10
        profiles = list(itertools.islice(flow, records - feedback_n))
        for p in profiles:
            inputs.sanction_outputs(p)
        feedback = inputs.feedback(feedback_n)
        for fb in feedback:
            inputs.tracking_for(fb)
        steady: list[Prepared] = []
        for _ in range(steady_n):
            if inputs.rng.random() < 0.1:
                steady += inputs.feedback(1)
            else:
                steady.append(next(flow))
        return Plan(
            processor,
            "sanctions",
            [profiles, feedback],
            timed(steady, rate),
            {"main": ("sanction.list", "sanction.tracking")},
            "publish -> sanction.list or sanction.tracking naming the profile or feedback (meta.causation_id); "
            "only the inputs that change an entry have one",
            rate,
        )

    if processor == "emergency":
        notices: list[Prepared] = []
        acks: list[Prepared] = []
        while len(notices) + len(acks) < records:
            notice = inputs.notice()
            notices.append(notice)
            acks += inputs.acks(notice)
        steady_items: list[Timed] = []
        for i in range(steady_n):
            at = i / rate
            notice = inputs.notice()
            steady_items.append(Timed(at, notice))
            steady_items += [Timed(at + inputs.rng.uniform(1, 3), a) for a in inputs.acks(notice)]
        load_n = int(CREDIT_BESIDE_EMERGENCY * seconds)
        credit = list(inputs.credit_records(200 + load_n, subjects))
        steady_items += timed(credit[200:], CREDIT_BESIDE_EMERGENCY, "credit")
        steady_items.sort(key=lambda t: t.at)
        return Plan(
            processor,
            "emergency",
            [notices, acks],
            steady_items,
            {"main": ("emergency.dispatch",), "credit": ("credit.profile",)},
            f"publish -> emergency.dispatch naming the notice (meta.causation_id), acks 1-3 s after each notice, "
            f"while a credit worker takes {CREDIT_BESIDE_EMERGENCY:,.0f} records/s",
            rate,
            beside="credit",
            warm=credit[:200],
        )

    if processor == "projects":
        plans, reports = inputs.projects(records)
        return Plan(
            processor,
            "supervision",
            [plans, reports],
            latency="not measured: the supervision worker emits nothing per plan or milestone report "
            "(MILESTONE_OVERDUE comes from its sweep timer)",
        )

    if processor == "supervision":
        return Plan(
            processor,
            "supervision",
            [accepted(inputs, "supervision", inputs.enforcement(records, subjects))],
            latency="not measured: the supervision worker emits nothing per enforcement action "
            "(it counts CLOSED ones in tongcheng_enforcement_actions_total)",
        )

    if processor == "readmodel":
        return _readmodel(inputs, records, subjects, rate, steady_n)

    raise ValueError(f"unknown processor {processor!r}; one of {', '.join(PROCESSORS)}")


def accepted(inputs: Inputs, worker: str, events: list[Prepared]) -> list[Prepared]:
    """`events` where `worker` reads them: a city input of a type another service owns is read from
    its accepted stream, to which the owner forwards it byte for byte once applied (topics/catalog.py)."""
    return [
        p if OWNER.get(p.event_type) in (None, worker) else replace(p, topic=inputs.ctx.topics.accepted(p.event_type))
        for p in events
    ]


def _readmodel(inputs: Inputs, records: int, subjects: int, rate: float, steady_n: int) -> Plan:
    """The derived topics in the mix a circle produces (cf. ops/simulate.py): mostly credit profiles,
    the listings and tracking they and the cities' feedback cause, dispatches and acks, plans and
    milestone reports."""
    flow = (p for _, p in inputs.profiles(inputs.credit_records(10**9, subjects)) if p is not None)
    backlog: list[Prepared] = []
    for p in itertools.islice(flow, int(records * 0.6)):
        backlog.append(p)
        backlog += inputs.sanction_outputs(p)
    for fb in inputs.feedback(int(records * 0.06)):
        tracking = inputs.tracking_for(fb)
        if tracking is not None:
            backlog.append(tracking)
    for _ in range(int(records * 0.04)):
        notice = inputs.notice()
        backlog.append(inputs.dispatch(notice))
        backlog += inputs.acks(notice)
    rest = records - len(backlog)
    if rest > 0:
        plans, reports = inputs.projects(rest)
        backlog += plans + reports
    backlog = accepted(inputs, "readmodel", backlog[:records])
    steady = list(itertools.islice(flow, steady_n))
    return Plan(
        "readmodel",
        "readmodel",
        [backlog],
        timed(steady, rate),
        {"main": ("credit.profile",)},
        "publish of a credit.profile -> its row (event_id) readable in credit_profiles",
        rate,
    )
