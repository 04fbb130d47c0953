"""A typed subscriber for downstream services, on kafka-python.

Each delivery carries the decoded event, or the reason it could not be decoded, plus its
position, so a consumer can dead-letter what it cannot use and carry on.

With `verify=True` the subscriber checks each record's signature against the roster's public keys
(topics/provenance.py), on an input topic or its accepted stream: a delivery's `origin` is then the
city that signed it, and a record that is unsigned, badly signed, or signed by another city than its
`meta.source_city` is delivered with that error and no event. No trust in the bus is needed.

On a DLQ topic each bad record is delivered once: a dead letter is keyed by its source coordinates,
and a record rejected again after a processor's crash (at-least-once) repeats a key already seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Required, TypedDict

from kafka import KafkaConsumer, TopicPartition

from schemas.catalogue import AvroRecord
from schemas.convert import Json, to_json
from schemas.errors import Reason, Rejected, TongchengError
from topics import kafka_auth
from topics.context import Context
from topics.dlq import header_map
from topics.provenance import Verifier


class DeliveryJson(TypedDict, total=False):
    """A delivery as `tongcheng tail` prints it: the decoded event, or the error and the raw value."""

    topic: Required[str]
    partition: Required[int]
    offset: Required[int]
    key: Required[str | None]
    headers: dict[str, str]
    origin: str
    event: Json
    error: dict[str, str | None] | None
    value_hex: str | None


@dataclass
class Delivery:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    event: AvroRecord | None
    error: Rejected | None
    #: the city whose signature was verified (subscribers with verify=True)
    origin: str | None = None

    def as_json(self) -> DeliveryJson:
        out: DeliveryJson = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
        }
        if self.headers:
            out["headers"] = self.headers
        if self.origin is not None:
            out["origin"] = self.origin
        if self.event is not None:
            out["event"] = to_json(self.event)
        else:
            out["error"] = self.error.as_dict() if self.error else None
            out["value_hex"] = self.value.hex() if self.value is not None else None
        return out


#: dead-letter keys remembered to hide repeats; a record rejected again after a crash is re-sent
#: within the uncommitted batch that follows its first rejection, so the window need not be long
DEAD_SEEN = 100_000


def verify_origin(verifier: Verifier, delivery: Delivery) -> str:
    """The city that signed a delivered input record (on its input topic or accepted stream), which
    must be its meta.source_city; raises Rejected (unsigned, bad_signature, source_mismatch)."""
    if delivery.event is None:
        raise delivery.error or Rejected(Reason.UNDECODABLE, "no event to verify")
    headers = [(k, v.encode("utf-8")) for k, v in delivery.headers.items()]
    meta = delivery.event["meta"]
    return verifier.check(delivery.topic, delivery.value, headers, str(meta["source_city"]), str(meta["source_system"]))


class Subscriber:
    """Reads one or more topics of the catalogue (full names or event types) and decodes them."""

    def __init__(
        self,
        ctx: Context,
        topics: list[str],
        group_id: str | None = None,
        from_beginning: bool = False,
        verify: bool = False,
        **consumer_config: Any,
    ) -> None:
        self.ctx = ctx
        self.verifier = ctx.verifier if verify else None
        self.topics = [t if "." in t and t.count(".") >= 3 else ctx.topics.topic(t) for t in topics]
        self._dead_seen: dict[tuple[str, bytes], None] = {}  # oldest first, at most DEAD_SEEN
        self._consumer = KafkaConsumer(
            bootstrap_servers=ctx.settings.bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            client_id="tongcheng-subscriber",
            **{**kafka_auth.client_config(ctx.settings), **consumer_config},
        )
        if group_id is None:
            parts = []
            for topic in self.topics:
                found = self._consumer.partitions_for_topic(topic)
                if not found:
                    self._consumer.close()
                    raise TongchengError(f"topic {topic} does not exist; run `tongcheng topics apply`")
                parts += [TopicPartition(topic, p) for p in sorted(found)]
            self._consumer.assign(parts)
            if from_beginning:
                self._consumer.seek_to_beginning(*parts)
            else:
                self._consumer.seek_to_end(*parts)
        else:
            self._consumer.subscribe(self.topics)

    def decode(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> Delivery:
        kind = self.ctx.topics.event_type_of(topic)
        hmap = header_map(headers)
        try:
            event = self.ctx.codec.decode(value, kind.schema if kind else None)
            origin = None
            if self.verifier is not None:
                meta = event.get("meta") or {}
                origin = self.verifier.check(
                    topic, value, headers, str(meta.get("source_city")), str(meta.get("source_system") or "")
                )
            return Delivery(topic, partition, offset, key, value, hmap, event, None, origin)
        except Rejected as exc:
            return Delivery(topic, partition, offset, key, value, hmap, None, exc)

    def poll(self, timeout_ms: int = 500, max_records: int = 500) -> list[Delivery]:
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        out = []
        for records in batches.values():
            for r in records:
                if r.topic.endswith(".dlq") and r.key is not None:
                    if (r.topic, r.key) in self._dead_seen:
                        continue  # the same bad record, rejected again after a crash
                    self._dead_seen[(r.topic, r.key)] = None
                    if len(self._dead_seen) > DEAD_SEEN:  # a repeat follows its first within a batch
                        del self._dead_seen[next(iter(self._dead_seen))]
                out.append(self.decode(r.topic, r.partition, r.offset, r.key, r.value, r.headers))
        return out

    def __iter__(self) -> Iterator[Delivery]:
        while True:
            yield from self.poll()

    def caught_up(self) -> bool:
        """True when every assigned partition has been read to its end (False before assignment)."""
        parts = list(self._consumer.assignment())
        if not parts:
            return False
        ends = self._consumer.end_offsets(parts)
        return all(self._consumer.position(tp) >= ends[tp] for tp in parts)

    def commit(self) -> None:
        self._consumer.commit()

    def close(self) -> None:
        self._consumer.close()


def dumps(delivery: Delivery) -> str:
    return json.dumps(delivery.as_json(), ensure_ascii=False)
