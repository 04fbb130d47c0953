"""Scale-out of the sanctions, emergency, supervision and read-model workers, on the real broker.

Credit's is test_runtime_faults.py::test_a_killed_member_s_partitions_move_to_the_other; this one
runs the four other processors side by side, each on topics of its own: two workers of each in one
group, both processing, then one of each SIGKILLed. The survivor must process every partition again
within 15 s (its group's commits reach the input topics' ends for records sent after the kill), and
its final state must be a single worker's run over the same input:

- sanctions, emergency, supervision: the pure rules (services/*/rules.py, as ops/bench/inputs.py
  drives them) run in process over the decoded input in order. Compared are the newest list entry
  and tracking per subject (sanctions), the newest dispatch per incident and the incident gauges
  (emergency), and the milestone gauges per city (supervision); the gauges are read from the
  survivor, which computes them from its tables once it holds every partition;
- the read model: one more read-model worker, in a fresh group and on a database of its own, run
  over the same topics after the fact; every table equals the survivor's, row for row.

Each input that names earlier state (feedback on a listing, an acknowledgement of a notice, a
milestone report on a plan) is sent after the kill, about state the killed worker built, and the
new subjects, incidents and projects of the second half are disjoint from the first's, so the end
state does not depend on how the broker interleaves two topics. The survivor's counts, kept in its
state, cover every input record once.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from ops.bench.inputs import Inputs
from ops.bench.plans import METRICS_OFFSETS, build
from ops.chaos.probes import Offsets, gauge_samples, latest_by_key, state_counts, stop_worker, wait_until
from schemas.convert import to_json
from schemas.errors import Rejected
from schemas.events import EmergencyAck, EmergencyNotice, MilestoneReport, ProjectPlan
from schemas.structs import plain, typed
from services.emergency import rules as emergency_rules
from services.emergency.state import Incident
from services.readmodel.db import make_engine, migrate
from services.readmodel.tables import PROJECTIONS, metadata
from services.supervision import rules as supervision_rules
from services.supervision.state import Project
from tests.integration.conftest import PORT_SHIFT, clocked_settings, provisioned, spawn_worker
from topics.catalog import EVENT_TYPES, OWNER
from topics.context import Context
from topics.kafka_auth import client_config
from topics.localtime import local_date
from topics.publisher import Prepared, producer_config
from topics.settings import Settings

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
METRICS = 19600 + PORT_SHIFT  # + the service's offset; the second worker of each + 50, the reference + 100
SECOND, REFERENCE = 50, 100
PROJECT_GAUGE = "tongcheng_project_milestones"
TAKEOVER = 15.0  # seconds from the SIGKILL until the survivor has processed every partition again


@dataclass
class Run:
    """One processor's topics, its two workers, and the halves of its input (before and after the kill)."""

    service: str
    ctx: Context
    inputs: tuple[str, ...]  # the event types the processor reads
    before: list[Prepared] = field(default_factory=list)
    after: list[Prepared] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    took: float | None = None

    @property
    def group(self) -> str:
        return self.ctx.settings.group_id(self.service)

    @property
    def topics(self) -> list[str]:
        """The topics it reads: its own input types' raw topics, the accepted stream of any other."""
        return [
            self.ctx.topics.topic(t) if OWNER.get(t) == self.service else self.ctx.topics.stream(t) for t in self.inputs
        ]

    def routed(self, items: list[Prepared]) -> list[Prepared]:
        """`items` on the topics it reads: a record of an input type another service owns goes to
        that type's accepted stream, byte for byte, as its owner forwards it."""
        return [
            p
            if OWNER.get(p.event_type) in (None, self.service)
            else dataclasses.replace(p, topic=self.ctx.topics.accepted(p.event_type))
            for p in items
        ]

    def port(self, shift: int = 0) -> int:
        return self.ctx.settings.metrics_port + shift + METRICS_OFFSETS[self.service]

    def decoded(self, items: list[Prepared]) -> list[Prepared]:
        """`items` with the events as a worker reads them (decoded from the Avro it is sent)."""
        return [
            dataclasses.replace(p, event=self.ctx.codec.decode(p.value, EVENT_TYPES[p.event_type].schema))
            for p in items
        ]


def body(ctx: Context, p: Prepared) -> dict[str, Any]:
    """An output event as JSON, without meta (the moment it was made differs from run to run)."""
    event = to_json(ctx.codec.decode(p.value, EVENT_TYPES[p.event_type].schema))
    return {k: v for k, v in event.items() if k != "meta"}


def sanctions_run(run: Run, producer: KafkaProducer) -> dict[tuple[str, bytes], dict[str, Any]]:
    """Profiles of 80 subjects, then (after the kill) feedback on the BLACK listings they made and
    profiles of 80 other subjects; the newest list entry and tracking per subject the rules emit."""
    first, second = Inputs(run.ctx, producer, seed=71), Inputs(run.ctx, producer, seed=72)
    out: list[Prepared] = []
    for inputs, half in ((first, run.before), (second, run.after)):
        profiles = [p for _, p in inputs.profiles(inputs.credit_records(240, 80)) if p is not None]
        half += profiles
        for p in run.decoded(profiles):
            out += inputs.sanction_outputs(p)
    feedback = first.feedback(60)
    run.after += feedback
    for fb in run.decoded(feedback):
        tracking = first.tracking_for(fb)
        out += [tracking] if tracking is not None else []
    assert not set(first.entries) & set(second.entries), "the halves share subjects"
    return {(p.event_type, p.key): body(run.ctx, p) for p in out}


def emergency_run(run: Run, producer: KafkaProducer) -> tuple[dict[bytes, dict[str, Any]], emergency_rules.Gauges]:
    """60 notices, then (after the kill) their acknowledgements and 60 more notices; the dispatch per
    incident and the gauges the rules give."""
    inputs = Inputs(run.ctx, producer, seed=73)
    run.before += [inputs.notice() for _ in range(60)]
    for notice in run.before:
        run.after += inputs.acks(notice)
    run.after += [inputs.notice() for _ in range(60)]
    incidents: dict[str, Incident] = {}
    dispatches: dict[bytes, dict[str, Any]] = {}
    rules, circle = emergency_rules.RULES, run.ctx.circle
    for p in run.decoded(run.before + run.after):  # an incident's acks follow its notice
        if p.event_type == "emergency.notice":
            e = typed(p.event, EmergencyNotice)
            known = incidents.get(e.incident_id)
            if emergency_rules.check_order(known, e):
                incident = incidents[e.incident_id] = emergency_rules.apply_notice(known, e, rules, circle)
                report = incident.reports[str(e.report_seq)]
                dispatch = plain(emergency_rules.dispatch(e, report, e.meta))  # its meta is left out
                dispatches[p.key] = to_json({k: v for k, v in dispatch.items() if k != "meta"})
        else:
            a = typed(p.event, EmergencyAck)
            if (done := emergency_rules.apply_ack(incidents.get(a.incident_id), a)) is not None:
                incidents[a.incident_id] = done[0]
    return dispatches, emergency_rules.gauges(incidents.values(), NOW, circle.codes)


def supervision_run(run: Run, producer: KafkaProducer) -> dict[str, dict[str, int]]:
    """40 plans and enforcement actions, then (after the kill) milestone reports on those plans, 20
    new plans and more actions; the milestone counts per lead city the rules give."""
    inputs = Inputs(run.ctx, producer, seed=74)
    actions = inputs.enforcement(160, 60)
    run.before += [inputs.plan() for _ in range(40)] + actions[:80]
    run.after += [inputs.milestone() for _ in range(120)]
    run.after += [inputs.plan() for _ in range(20)] + actions[80:]
    projects: dict[str, Project] = {}
    for p in run.decoded(run.before + run.after):
        try:
            if p.event_type == "project.plan":
                plan = typed(p.event, ProjectPlan)
                pid, project = plan.project_id, supervision_rules.apply_plan(projects.get(plan.project_id), plan)
            elif p.event_type == "project.milestone":
                report = typed(p.event, MilestoneReport)
                pid, project = (
                    report.project_id,
                    supervision_rules.apply_report(projects.get(report.project_id), report),
                )
            else:
                continue
        except Rejected:
            continue
        if project is not None:
            projects[pid] = project
    return supervision_rules.city_counts(list(projects.values()), local_date(NOW, run.ctx.circle.tz))


def readmodel_run(run: Run, producer: KafkaProducer) -> None:
    """The derived topics in the bench's mix (profiles, listings, tracking, dispatches, acks, plans,
    reports), half before the kill and half after."""
    backlog = build("readmodel", Inputs(run.ctx, producer, seed=75), 400, 150, 1.0, 0.0).stages[0]
    run.before += backlog[:200]
    run.after += backlog[200:]


def tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table's rows, sorted, without the wall-clock moment each was written."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for name, table in metadata.tables.items():
                columns = [c for c in table.columns if c.name != "updated_at"]
                out[name] = sorted(tuple(map(str, row)) for row in conn.execute(sa.select(*columns)))
            return out
    finally:
        engine.dispose()


@pytest.fixture
def runs(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    inputs = {
        "sanctions": ("credit.profile", "sanction.feedback"),
        "emergency": ("emergency.notice", "emergency.ack"),
        "supervision": ("project.plan", "project.milestone", "enforcement.action"),
        "readmodel": tuple(PROJECTIONS),
    }
    made = {
        service: Run(service, provisioned(clocked_settings(stack, tmp_path_factory, service, NOW, METRICS)), topics)
        for service, topics in inputs.items()
    }
    yield made
    for run in made.values():
        for worker in run.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def consumed(port: int) -> float:
    """Input records a worker has taken so far (every outcome)."""
    return sum(gauge_samples(port, "tongcheng_events_consumed_total").values())


def members(admin: KafkaAdminClient, group: str) -> int:
    """The members of a group once it is stable (0 while it rebalances or is not known yet)."""
    logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)  # faust's member metadata is its own
    try:
        described = admin.describe_groups([group]).get(group, {})
    except KafkaError:
        return 0
    return len(described.get("members", [])) if described.get("group_state") == "Stable" else 0


def send(producer: KafkaProducer, items: list[Prepared]) -> None:
    futures = [producer.send(p.topic, key=p.key, value=p.value, headers=list(p.headers)) for p in items]
    producer.flush()
    for f in futures:
        f.get(timeout=30)


def all_of(what: str, runs: dict[str, Run], check: Callable[[Run], bool], timeout: float) -> None:
    try:
        wait_until(what, lambda: all(check(r) for r in runs.values()), timeout=timeout)
    except TimeoutError as exc:
        late = [r for r in runs.values() if not check(r)]
        raise TimeoutError(f"{exc}; not yet: {'; '.join(progress(r) for r in late)}") from None


def progress(run: Run) -> str:
    """A run's commits against the ends of its topics, and what each live worker says it holds."""
    offsets = Offsets(run.ctx.settings)
    try:
        parts = [f"{t}: committed {offsets.committed(run.group, t)} of {offsets.ends(t)}" for t in run.topics]
    finally:
        offsets.close()
    for i, worker in enumerate(run.workers):
        if worker.poll() is None:
            held = gauge_samples(run.port(SECOND * i), "tongcheng_input_offset")
            parts.append(f"worker {i} offsets {sorted(held.items())}")
    return f"{run.service} ({', '.join(parts)})"


def caught_up(offsets: Offsets, group: str, topics: list[str]) -> bool:
    """The group has committed every record of `topics` (a partition still empty needs no commit)."""
    for topic in topics:
        committed = offsets.committed(group, topic)
        if any(committed.get(p, 0) < end for p, end in offsets.ends(topic).items()):
            return False
    return True


def test_a_killed_member_of_each_processor_hands_its_partitions_over(runs: dict[str, Run]) -> None:
    began = time.monotonic()
    readmodel = runs["readmodel"]
    migrate(make_engine(readmodel.ctx.settings.database_url))  # once, before two workers share the file
    producer = KafkaProducer(**producer_config(readmodel.ctx.settings, "scale-out-test"))
    offsets = Offsets(readmodel.ctx.settings)
    try:
        listed = sanctions_run(runs["sanctions"], producer)
        dispatches, incident_gauges = emergency_run(runs["emergency"], producer)
        milestones = supervision_run(runs["supervision"], producer)
        readmodel_run(readmodel, producer)
        admin = KafkaAdminClient(
            bootstrap_servers=readmodel.ctx.settings.bootstrap, **client_config(readmodel.ctx.settings)
        )
        try:
            # the second worker joins a running group, as a scaled-out deployment adds one
            for run in runs.values():
                run.workers.append(spawn_worker(run.ctx.settings, run.service))
            all_of("each first worker is in its group", runs, lambda r: members(admin, r.group) == 1, 90)
            for run in runs.values():
                extra = {"TONGCHENG_METRICS_PORT": str(METRICS + SECOND)}
                run.workers.append(spawn_worker(run.ctx.settings, run.service, **extra))
            all_of("each group has its two members", runs, lambda r: members(admin, r.group) == 2, 90)
        finally:
            admin.close()
        for run in runs.values():
            send(producer, run.routed(run.before))
        all_of("the first half processed", runs, lambda r: caught_up(offsets, r.group, r.topics), 90)
        split = {s: (consumed(r.port()), consumed(r.port(SECOND))) for s, r in runs.items()}
        for run in runs.values():
            run.workers[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        for run in runs.values():
            run.workers[0].wait()
            send(producer, run.routed(run.after))

        def took_over(run: Run) -> bool:
            if run.took is None and caught_up(offsets, run.group, run.topics):
                run.took = time.monotonic() - killed
            return run.took is not None

        all_of("every survivor took over", runs, took_over, 90)
        reference = readmodel.ctx.settings.with_(group_tag="single")
        url = f"sqlite:///{reference.data_dir / 'reference.db'}"
        readmodel.workers.append(
            spawn_worker(
                reference,
                "readmodel",
                TONGCHENG_GROUP_TAG="single",
                TONGCHENG_DATABASE_URL=url,
                TONGCHENG_METRICS_PORT=str(METRICS + REFERENCE),
            )
        )
        print(
            f"scale-out: the takeover {time.monotonic() - began:.1f} s into the test; records taken by each "
            f"pair before the kill {split}; every partition processed again after "
            + ", ".join(f"{s} {r.took:.1f} s" for s, r in runs.items())
        )
        for service, (first, second) in split.items():
            assert first > 0 and second > 0, f"the {service} workers did not split the partitions: {first}, {second}"
        assert all(r.took is not None and r.took <= TAKEOVER for r in runs.values())

        # the survivors' counts, kept in their state, cover every record once
        for run in (runs["sanctions"], runs["emergency"], runs["supervision"]):
            for topic in run.topics:
                end = offsets.end(topic)
                port = run.port(SECOND)
                wait_until(f"{topic}'s counts", lambda: state_counts(port, topic)["offset"] == end, 30)  # noqa: B023
                counts = state_counts(port, topic)
                assert counts.get("applied", 0) + counts.get("duplicate", 0) + counts.get("rejected", 0) == end

        # sanctions: the newest entry and tracking per subject are the rules' in order
        ctx = runs["sanctions"].ctx
        got = {("sanction.list", k): v for k, v in latest_by_key(ctx, "sanction.list").items()}
        got |= {("sanction.tracking", k): v for k, v in latest_by_key(ctx, "sanction.tracking").items()}
        wrong = [k for k in got.keys() | listed.keys() if got.get(k) != listed.get(k)]
        assert not wrong, f"{len(wrong)} of {len(listed)} sanction outputs differ from one worker's run: {wrong[:3]}"

        # emergency: a dispatch per incident, and the survivor's gauges over every incident
        assert latest_by_key(runs["emergency"].ctx, "emergency.dispatch") == dispatches
        want: dict[tuple[tuple[str, str], ...], float]
        want = {(("level", lv),): float(n) for lv, n in incident_gauges.open_incidents.items()}
        wait_until("the survivor's incident gauges", lambda: gauges(runs["emergency"], "open_incidents") == want, 20)
        for name in ("unacknowledged", "ack_overdue"):
            want = {(("city", c),): float(n) for c, n in getattr(incident_gauges, name).items()}
            assert gauges(runs["emergency"], name) == want, name

        # supervision: the survivor's milestone counts per city are the rules' over every project
        cities = runs["supervision"].ctx.circle.codes
        zero = dict.fromkeys(supervision_rules.STATES, 0)
        want = {
            (("city", c), ("state", st)): float(milestones.get(c, zero)[st])
            for c in cities
            for st in supervision_rules.STATES
        }
        port = runs["supervision"].port(SECOND)
        wait_until("the survivor's milestone gauges", lambda: gauge_samples(port, PROJECT_GAUGE) == want, 20)
        ratios = gauge_samples(port, "tongcheng_project_ontime_ratio")
        assert ratios == {
            (("city", c),): supervision_rules.ontime_ratio(milestones[c]) if c in milestones else 1.0 for c in cities
        }

        # the read model: every table as one worker in a group of its own writes it from the same topics
        single = reference.group_id("readmodel")
        wait_until(
            "the reference read model caught up",
            lambda: caught_up(offsets, single, readmodel.topics),
            90,
        )
        survivor, alone = tables(readmodel.ctx.settings.database_url), tables(url)
        assert sum(map(len, alone.values())) > 0
        for name in metadata.tables:
            assert survivor[name] == alone[name], f"{name}: the survivor's rows differ from one worker's"
        for run in runs.values():
            for worker in run.workers:
                if worker.poll() is None:
                    stop_worker(worker)
    finally:
        producer.close()
        offsets.close()
    print(f"scale-out: {time.monotonic() - began:.1f} s in all")


def gauges(run: Run, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return gauge_samples(run.port(SECOND), f"tongcheng_emergency_{name}")
