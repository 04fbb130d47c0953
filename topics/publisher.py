"""The publisher SDK for city systems, on kafka-python.

It fills in `meta`, validates with the shared contract checks, keys each event from the topic
catalogue, and sends with acks=all and idempotence. Every send is checked: the sync API raises,
the callback API reports, and `close()` flushes.

    with Publisher.for_city(settings, "320100") as pub:
        event_id = pub.publish("credit.record", {...})
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from services.common.context import Context, build_context
from services.common.errors import PublishError, Reason, Rejected
from services.common.settings import Settings
from topics.catalog import EVENT_TYPES

DeliveryCallback = Callable[[str, Exception | None], None]


def producer_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    """Safe-by-default producer settings (DESIGN.md section 7), batched for throughput."""
    return {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "compression_type": "gzip",
        "max_request_size": 2 * 1024 * 1024,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 60_000,
    }


@dataclass(frozen=True)
class Prepared:
    event_type: str
    topic: str
    key: bytes
    value: bytes
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["meta"]["event_id"])


@dataclass(frozen=True)
class Outcome:
    index: int
    event_id: str | None
    error: Rejected | PublishError | None


class Publisher:
    def __init__(self, context: Context, city: str, source_system: str, producer: KafkaProducer | None = None) -> None:
        if not context.circle.is_member(city):
            raise Rejected(Reason.UNKNOWN_CITY, f"{city!r} is not a member city of {context.circle.code}", "city")
        self.ctx = context
        self.city = city
        self.source_system = source_system
        self._producer = producer or KafkaProducer(
            **producer_config(context.settings.bootstrap, f"tongcheng-{city}-{source_system}")
        )

    @classmethod
    def for_city(cls, settings: Settings, city: str, source_system: str | None = None) -> Publisher:
        return cls(build_context(settings), city, source_system or settings.source_system)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- preparing -------------------------------------------------------------------------

    def fill_meta(self, event_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `body` with `meta` completed; a `source_city` other than ours is refused."""
        obj = dict(body)
        meta = dict(obj.get("meta") or {})
        claimed = meta.get("source_city")
        if claimed is not None and claimed != self.city:
            raise Rejected(
                Reason.SOURCE_CITY_MISMATCH,
                f"meta.source_city is {claimed!r} but this publisher is city {self.city}",
                "meta.source_city",
            )
        now_ms = int(self.ctx.clock.now().timestamp() * 1000)
        meta.setdefault("event_id", str(uuid.uuid4()))
        meta["event_type"] = event_type
        meta["source_city"] = self.city
        meta.setdefault("source_system", self.source_system)
        meta.setdefault("occurred_at", now_ms)
        meta["published_at"] = now_ms
        obj["meta"] = meta
        return obj

    def prepare(self, event_type: str, body: Mapping[str, Any]) -> Prepared:
        """Validate and encode one JSON-shaped event; raises Rejected with reason and field."""
        kind = EVENT_TYPES.get(event_type)
        if kind is None or kind.derived:
            inputs = ", ".join(n for n, e in EVENT_TYPES.items() if not e.derived)
            raise Rejected(Reason.UNKNOWN_SCHEMA, f"{event_type!r} is not an input event type; use one of {inputs}")
        if not isinstance(body, Mapping):
            raise Rejected(Reason.SCHEMA_INVALID, "an event must be a JSON object")
        event = self.ctx.validator.from_json(event_type, self.fill_meta(event_type, body))
        topic = self.ctx.topics.topic(event_type)
        value = self.ctx.codec.encode(f"{topic}-value", kind.schema, event)
        return Prepared(event_type, topic, kind.key_of(event).encode(), value, event)

    # --- sending ---------------------------------------------------------------------------

    def send_prepared(self, p: Prepared, on_delivery: DeliveryCallback | None = None) -> Any:
        future = self._producer.send(p.topic, key=p.key, value=p.value)
        if on_delivery is not None:
            future.add_callback(lambda _md: on_delivery(p.event_id, None))
            future.add_errback(lambda exc: on_delivery(p.event_id, PublishError(f"{p.topic}: {exc}")))
        return future

    def publish(self, event_type: str, body: Mapping[str, Any], timeout: float = 30.0) -> str:
        """Send one event and wait for the broker's acknowledgement; returns the event_id."""
        p = self.prepare(event_type, body)
        try:
            self.send_prepared(p).get(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(f"{p.topic}: broker did not acknowledge event {p.event_id}: {exc}") from exc
        return p.event_id

    def publish_async(self, event_type: str, body: Mapping[str, Any], on_delivery: DeliveryCallback) -> str:
        """Send without waiting; `on_delivery(event_id, error)` reports the outcome."""
        p = self.prepare(event_type, body)
        self.send_prepared(p, on_delivery)
        return p.event_id

    def publish_many(
        self, event_type: str, bodies: Iterable[Mapping[str, Any]], timeout: float = 60.0
    ) -> list[Outcome]:
        """Send a batch: invalid events are refused one by one, the valid ones still go."""
        outcomes: list[Outcome] = []
        pending: list[tuple[int, Prepared, Any]] = []
        for i, body in enumerate(bodies):
            try:
                p = self.prepare(event_type, body)
            except Rejected as exc:
                outcomes.append(Outcome(i, None, exc))
                continue
            pending.append((i, p, self.send_prepared(p)))
        self._producer.flush(timeout=timeout)
        for i, p, future in pending:
            try:
                future.get(timeout=timeout)
                outcomes.append(Outcome(i, p.event_id, None))
            except KafkaError as exc:
                outcomes.append(Outcome(i, p.event_id, PublishError(f"{p.topic}: {exc}")))
        return sorted(outcomes, key=lambda o: o.index)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()
