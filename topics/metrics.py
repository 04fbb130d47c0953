"""Every Tongcheng metric (DESIGN.md section 6), created once per process on an injected registry.

Base units, `_total` counters, and labels from bounded sets only: never an ID as a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# no `_created` series beside every counter and histogram: they double the series for no use here
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ACK_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "tongcheng_events_consumed",
            "Input events consumed, by outcome.",
            ["service", "topic", "outcome"],
            registry=r,
        )
        self.events_rejected = Counter(
            "tongcheng_events_rejected", "Input events rejected to a DLQ, by reason.", ["topic", "reason"], registry=r
        )
        self.processing_seconds = Histogram(
            "tongcheng_event_processing_seconds",
            "Time to process one batch of events, per event.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.credit_subjects = Gauge("tongcheng_credit_subjects", "Credit profiles by grade.", ["grade"], registry=r)
        self.sanction_entries = Gauge("tongcheng_sanction_entries", "Listed subjects by list.", ["list"], registry=r)
        self.sanction_feedback_ratio = Gauge(
            "tongcheng_sanction_feedback_ratio",
            "Share of BLACK listings past or inside their window that the city has fed back on.",
            ["city"],
            registry=r,
        )
        self.emergency_open_incidents = Gauge(
            "tongcheng_emergency_open_incidents", "Open incidents by effective level.", ["level"], registry=r
        )
        self.emergency_unacknowledged = Gauge(
            "tongcheng_emergency_unacknowledged", "Reports a city has yet to acknowledge.", ["city"], registry=r
        )
        self.emergency_ack_overdue = Gauge(
            "tongcheng_emergency_ack_overdue",
            "Reports a city has not acknowledged by their deadline.",
            ["city"],
            registry=r,
        )
        self.emergency_ack_seconds = Histogram(
            "tongcheng_emergency_ack_seconds",
            "Time from dispatch to acknowledgement.",
            ["level"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.project_milestones = Gauge(
            "tongcheng_project_milestones", "Milestones by lead city and state.", ["city", "state"], registry=r
        )
        self.project_ontime_ratio = Gauge(
            "tongcheng_project_ontime_ratio", "Due milestones done on time, by lead city.", ["city"], registry=r
        )
        self.changelog_recovered = Counter(
            "tongcheng_changelog_recovered_records",
            "Table changelog records read into the local store: recovering an owned partition (active) "
            "or keeping another worker's partition warm (standby).",
            ["service", "replica"],
            registry=r,
        )
        self.enforcement_actions = Counter(
            "tongcheng_enforcement_actions", "Joint enforcement actions closed, by domain.", ["domain"], registry=r
        )
