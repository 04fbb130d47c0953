"""The exact counts a processor keeps in its state, served as metrics for the partitions it owns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from faust.types import TP
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.runtime.outcomes import OUTCOMES, Outcome

if TYPE_CHECKING:
    from services.common.runtime.service import Processor


class ProgressCollector(Collector):
    """The exact counts kept in the state (`Progress`), for the input partitions this worker owns.

    Unlike the process's counters, they survive restarts and are never counted twice, so summed
    over a processor's workers they reconcile with the input topics' offsets:
    sum by (topic) of tongcheng_input_records == sum of tongcheng_input_offset.
    """

    def __init__(self, proc: Processor) -> None:
        self.proc = proc

    def collect(self) -> Iterator[GaugeMetricFamily]:
        records = GaugeMetricFamily(
            "tongcheng_input_records",
            "Input records processed by outcome, as kept in the processor's state (exact across restarts).",
            labels=["service", "topic", "outcome"],
        )
        offsets = GaugeMetricFamily(
            "tongcheng_input_offset",
            "The next input offset to process, per owned partition, as kept in the processor's state.",
            labels=["service", "topic", "partition"],
        )
        # `app.consumer` would make the consumer on first use, here in the metrics server's thread, bound
        # to no loop or the wrong one: a scrape before the worker made it crashed the worker's start
        # ("got Future attached to a different loop"). Until the worker has made it, nothing is owned.
        consumer = self.proc.app._consumer
        try:
            owned = consumer.assignment() if consumer is not None else set()
        except Exception:  # not started yet
            owned = set()
        for topic, docs in list(self.proc.progress_seen.items()):
            totals = Counter[Outcome]()
            for partition, doc in list(docs.items()):
                if TP(topic, partition) not in owned:
                    continue
                for outcome in OUTCOMES:
                    totals[outcome] += doc.get(outcome, 0)
                offsets.add_metric([self.proc.service, topic, str(partition)], doc["offset"])
            for outcome in OUTCOMES:
                records.add_metric([self.proc.service, topic, outcome], totals[outcome])
        yield records
        yield offsets
