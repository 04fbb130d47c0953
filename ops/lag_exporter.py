"""A consumer-lag exporter with kafka_exporter's metric names and labels (`tongcheng lag-exporter`).

On every scrape it asks the broker, through kafka-python's admin client, for every consumer
group's committed offsets, and, through a group-less consumer, for every partition's end offset:

- `kafka_topic_partition_current_offset{topic, partition}`: the end offset (next offset to write);
- `kafka_consumergroup_current_offset{consumergroup, topic, partition}`: the committed offset;
- `kafka_consumergroup_lag{consumergroup, topic, partition}`: end minus committed, never below 0;
- `kafka_consumergroup_lag_sum{consumergroup, topic}`: the lag summed over partitions.

The names and labels are kafka_exporter's, so community dashboards and alerts work unchanged.
Internal topics (`__consumer_offsets`, ...) are left out. A scrape that cannot reach the broker
answers `kafka_up 0` rather than failing, so Prometheus can alert on it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from topics import kafka_auth
from topics.settings import Settings

log = logging.getLogger("tongcheng.lag")
DEFAULT_PORT = 9308  # kafka_exporter's port
#: every metric family the exporter serves
FAMILIES = (
    "kafka_up",
    "kafka_topic_partition_current_offset",
    "kafka_consumergroup_current_offset",
    "kafka_consumergroup_lag",
    "kafka_consumergroup_lag_sum",
)


class LagCollector(Collector):
    def __init__(self, settings: Settings, client_id: str = "tongcheng-lag-exporter") -> None:
        self.bootstrap = settings.bootstrap
        self.auth = kafka_auth.client_config(settings)  # the `lag` principal: describes groups and topics
        self.client_id = client_id
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id, **self.auth)
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, client_id=self.client_id, enable_auto_commit=False, **self.auth
            )
        return self._admin, self._consumer

    def snapshot(self) -> tuple[dict[TopicPartition, int], dict[str, dict[TopicPartition, int]]]:
        """(end offset per partition, committed offset per partition per group)."""
        admin, consumer = self._clients()
        partitions = []
        for topic in sorted(consumer.topics()):
            if topic.startswith("__"):
                continue
            partitions += [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions) if partitions else {}
        groups = sorted(g["group_id"] for g in admin.list_groups())
        committed: dict[str, dict[TopicPartition, int]] = {}
        if groups:
            for group, offsets in admin.list_group_offsets(groups).items():
                committed[group] = {
                    tp: om.offset for tp, om in offsets.items() if om.offset >= 0 and not tp.topic.startswith("__")
                }
        return ends, committed

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("kafka_up", "Whether the last scrape reached the broker.")
        try:
            ends, committed = self.snapshot()
        except Exception as exc:  # the broker is down or restarting: say so, and reconnect next time
            log.warning("lag scrape failed: %s", exc)
            self.close()
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        end = GaugeMetricFamily(
            "kafka_topic_partition_current_offset", "Current offset of a partition.", labels=["topic", "partition"]
        )
        for tp, offset in sorted(ends.items()):
            end.add_metric([tp.topic, str(tp.partition)], offset)
        yield end
        labels = ["consumergroup", "topic", "partition"]
        current = GaugeMetricFamily(
            "kafka_consumergroup_current_offset", "Current offset of a consumer group at a partition.", labels=labels
        )
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag", "Current approximate lag of a consumer group at a partition.", labels=labels
        )
        lag_sum = GaugeMetricFamily(
            "kafka_consumergroup_lag_sum",
            "Current approximate lag of a consumer group at a topic.",
            labels=["consumergroup", "topic"],
        )
        for group, offsets in sorted(committed.items()):
            per_topic: dict[str, int] = {}
            for tp, offset in sorted(offsets.items()):
                behind = max(ends.get(tp, offset) - offset, 0)
                current.add_metric([group, tp.topic, str(tp.partition)], offset)
                lag.add_metric([group, tp.topic, str(tp.partition)], behind)
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + behind
            for topic, behind in sorted(per_topic.items()):
                lag_sum.add_metric([group, topic], behind)
        yield current
        yield lag
        yield lag_sum

    def close(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):  # closing a broken client must not fail the scrape
                    client.close()
        self._admin = self._consumer = None


def serve(settings: Settings, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> CollectorRegistry:
    """Register the collector on a fresh registry and serve it on `host:port`/metrics."""
    registry = CollectorRegistry()
    registry.register(LagCollector(settings))
    start_http_server(port, addr=host, registry=registry)
    return registry


def run(settings: Any, port: int = DEFAULT_PORT) -> int:
    from services.common.shutdown import StopFlag

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    serve(settings, port, settings.metrics_host)
    log.info("consumer lag of %s on http://%s:%d/metrics", settings.bootstrap, settings.metrics_host, port)
    stop = StopFlag()
    while not stop():
        time.sleep(0.5)
    return 0
