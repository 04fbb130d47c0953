"""Dead-letter plumbing shared by every entry point and processor.

A rejected input goes to `<topic>.dlq` byte for byte, with the headers of DESIGN.md section 4,
and is counted in `tongcheng_events_rejected_total{topic,reason}`.

It carries CloudEvents attributes of its own (topics/cloudevents.py: type `tongcheng.dead_letter.v1`,
id its source coordinates, source the rejecting service); the bad record's own headers are not kept.

A dead letter's key is its source coordinates, `<topic>/<partition>/<offset>` (the record's own key
moves to the `source.key` header), so a record rejected again after a crash is the same entry: every
DLQ view (`tongcheng tail`, the subscriber) shows each bad record once. `error.service` names the
service that rejected it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from schemas.errors import Reason
from topics import cloudevents
from topics.metrics import Metrics

Headers = list[tuple[str, bytes]]
#: send(topic, key, value, headers) -> anything; must raise or report failures itself.
SendFn = Callable[[str, bytes | None, bytes | None, Headers], Any]
MAX_DETAIL = 2000
log = logging.getLogger("tongcheng")


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def dlq_headers(reason: Reason, detail: str, topic: str, partition: int, offset: int) -> Headers:
    return [
        ("error.reason", reason.value.encode()),
        ("error.detail", detail[:MAX_DETAIL].encode("utf-8", "replace")),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]


def dlq_key(topic: str, partition: int, offset: int) -> bytes:
    """The key of a dead letter: where the bad record is, the same however often it is rejected."""
    return f"{topic}/{partition}/{offset}".encode()


def header_map(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (headers or [])}


class Consumed(Protocol):
    """A consumed record, as faust's Message and the subscriber's Delivery both carry it."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class DeadLetters:
    def __init__(self, send: SendFn, metrics: Metrics, service: str) -> None:
        self._send = send
        self._metrics = metrics
        self._service = service

    def reject(self, msg: Consumed, reason: Reason, detail: str, count: bool = True) -> Any:
        """Send `msg` byte for byte to its topic's DLQ with the reason headers, log it, and count it
        (unless the caller counts once the rejection is acknowledged: `count=False`)."""
        log.warning("rejected %s[%d]@%d: %s: %s", msg.topic, msg.partition, msg.offset, reason.value, detail)
        headers = dlq_headers(reason, detail, msg.topic, msg.partition, msg.offset)
        headers += [("error.service", self._service.encode()), ("source.key", msg.key or b"")]
        headers += cloudevents.dead_letter_headers(self._service, msg.topic, msg.partition, msg.offset)
        key = dlq_key(msg.topic, msg.partition, msg.offset)
        result = self._send(dlq_topic(msg.topic), key, msg.value, headers)
        if count:
            self.count(msg, reason)
        return result

    def count(self, msg: Consumed, reason: Reason) -> None:
        """Count one rejection; for callers that count once a batch's rejections are acknowledged."""
        self._metrics.events_rejected.labels(topic=msg.topic, reason=reason.value).inc()
        self._metrics.events_consumed.labels(service=self._service, topic=msg.topic, outcome="rejected").inc()
