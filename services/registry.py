"""The processors, each declared once: the one place that says which workers exist.

A `ProcessorSpec` is read by everything that lists or wires the workers: `tongcheng worker NAME`
and its help, `tongcheng up` (which workers it starts), `tongcheng bench` (its choices), the
metrics ports (`settings.metrics_port` + the offset), the Kubernetes Deployments (ops/kubernetes.py),
the Prometheus scrape files and the README's processor tables (ops/declared.py), and the checks of
docker-compose.yml (tests/unit/test_compose.py).

What a processor may read and write on the bus is the topics layer's (a lower layer cannot read
this one): the types it owns are in `topics.catalog.OWNER`, the derived types it writes in
`topics.catalog.WRITERS`, further streams it reads in `topics.acls.ALSO_READS`. A spec derives its
topics in and out from those, never repeats them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from topics.acls import READS
from topics.catalog import OWNER, WRITERS
from topics.settings import Settings


@dataclass(frozen=True)
class ProcessorSpec:
    #: `tongcheng worker NAME`; also its Kafka principal, its consumer group `tongcheng-NAME-<prefix>`
    #: and its compose service and Deployment `worker-NAME`
    name: str
    #: the module whose `run(settings)` runs the worker
    module: str
    #: it serves its metrics (and so its health) on `settings.metrics_port + metrics_offset`
    metrics_offset: int
    #: what the worker does, one line (the README's processor table)
    summary: str
    #: its state tables (changelogs `tongcheng-NAME-<prefix>-<table>-changelog`), progress tables aside
    tables: tuple[str, ...] = ()
    #: the metrics it serves beyond every worker's (consumed, rejected, processing time)
    metrics: tuple[str, ...] = ()
    #: the module of its pure rules (None: it has none, e.g. the read model's projections)
    rules: str | None = None
    #: the `tongcheng bench` plans that measure it (ops/bench/plans.py)
    bench: tuple[str, ...] = ()
    #: it writes the SQL read model (TONGCHENG_DATABASE_URL)
    database: bool = False

    @property
    def owns(self) -> tuple[str, ...]:
        """The input event types it judges (their DLQ and accepted stream are its own)."""
        return tuple(t for t, owner in OWNER.items() if owner == self.name)

    @property
    def reads(self) -> tuple[str, ...]:
        """The streams it consumes: its owned raw inputs, then derived topics and accepted streams."""
        return READS.get(self.name, ())

    @property
    def writes(self) -> tuple[str, ...]:
        """The derived event types it produces (its accepted streams and DLQs aside)."""
        return tuple(t for t, writers in WRITERS.items() if self.name in writers)

    def metrics_port(self, settings: Settings) -> int:
        return settings.metrics_port + self.metrics_offset

    def run(self, settings: Settings) -> int:
        return int(importlib.import_module(self.module).run(settings) or 0)


#: the processors, in the order the CLI, `up` and the manifests list them
PROCESSORS: tuple[ProcessorSpec, ...] = (
    ProcessorSpec(
        "credit",
        "services.credit.app",
        1,
        "credit records -> each subject's credit profile; a CLOSED enforcement action's findings -> credit records",
        tables=("subjects", "closed-actions"),
        metrics=("tongcheng_credit_subjects",),
        rules="services.credit.rules",
        bench=("credit",),
    ),
    ProcessorSpec(
        "sanctions",
        "services.sanctions.app",
        3,
        "credit profiles -> BLACK, FOCUS and RED entries with their measures; each city's feedback -> its "
        "tracking status; SANCTION_FEEDBACK_OVERDUE alerts",
        tables=("entries",),
        metrics=("tongcheng_sanction_entries", "tongcheng_sanction_feedback_ratio"),
        rules="services.sanctions.rules",
        bench=("sanctions",),
    ),
    ProcessorSpec(
        "emergency",
        "services.emergency.app",
        4,
        "incident notices and acknowledgements -> dispatches (effective level, recipients with reasons and "
        "deadlines); EMERGENCY_ACK_OVERDUE alerts",
        tables=("incidents",),
        metrics=(
            "tongcheng_emergency_open_incidents",
            "tongcheng_emergency_unacknowledged",
            "tongcheng_emergency_ack_overdue",
            "tongcheng_emergency_ack_seconds",
        ),
        rules="services.emergency.rules",
        bench=("emergency",),
    ),
    ProcessorSpec(
        "supervision",
        "services.supervision.app",
        5,
        "project plans, milestone reports and closed enforcement actions -> the project and enforcement "
        "gauges; MILESTONE_OVERDUE alerts",
        tables=("projects", "closed-actions"),
        metrics=("tongcheng_project_milestones", "tongcheng_project_ontime_ratio", "tongcheng_enforcement_actions"),
        rules="services.supervision.rules",
        bench=("projects", "supervision"),
    ),
    ProcessorSpec(
        "readmodel",
        "services.readmodel.app",
        2,
        "derived topics and accepted streams -> the SQL read model (`credit_profiles`, `sanction_entries`, "
        "`sanction_tracking`, `emergency_reports`, `emergency_acks`, `project_plans`, `milestone_reports`)",
        bench=("readmodel",),
        database=True,
    ),
)

#: name -> its declaration
BY_NAME: dict[str, ProcessorSpec] = {p.name: p for p in PROCESSORS}
#: the workers' names (`tongcheng worker NAME`)
WORKERS: tuple[str, ...] = tuple(BY_NAME)


def _check() -> None:
    offsets = [p.metrics_offset for p in PROCESSORS]
    assert len(BY_NAME) == len(PROCESSORS), "two processors of one name"
    assert len(set(offsets)) == len(offsets) and min(offsets) > 0, "each processor needs a port offset of its own"
    for p in PROCESSORS:
        assert p.reads, f"processor {p.name!r} reads nothing: declare its types in topics/catalog.py"


_check()


def processor(name: str) -> ProcessorSpec:
    """The declaration of the processor `name`."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown processor {name!r}; one of: {', '.join(WORKERS)}") from None
