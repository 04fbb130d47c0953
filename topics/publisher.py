"""The publisher SDK for city systems, on kafka-python.

It fills in `meta`, validates with the shared contract checks, keys each event from the topic
catalogue, and sends with acks=all and idempotence. Every send is checked: the sync API raises,
the callback API reports, and `close()` flushes within its timeout.

    with Publisher.for_city(settings, "320100") as pub:
        event_id = pub.publish("credit.record", {...})
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.transaction_manager import TransactionState

from schemas.catalogue import AvroRecord
from schemas.errors import PublishError, Reason, Rejected
from topics import cloudevents, kafka_auth
from topics.catalog import EVENT_TYPES
from topics.circle import Circle, load_circle
from topics.context import Context, build_context
from topics.provenance import Signer
from topics.settings import Settings

DeliveryCallback = Callable[[str, Exception | None], None]
log = logging.getLogger(__name__)


class ProducerConfig(kafka_auth.ClientAuth, total=False):
    """A kafka-python KafkaProducer's keyword arguments, as `producer_config` sets them."""

    bootstrap_servers: str
    client_id: str
    acks: str
    enable_idempotence: bool
    linger_ms: int
    batch_size: int
    compression_type: str
    max_request_size: int
    retries: int
    delivery_timeout_ms: int
    reconnect_backoff_max_ms: int


class PublisherConfig(ProducerConfig, total=False):
    """`publisher_config`: a producer's, with the timeouts of a caller that waits."""

    request_timeout_ms: int
    max_block_ms: int
    bootstrap_timeout_ms: int


def producer_config(settings: Settings, client_id: str) -> ProducerConfig:
    """Safe-by-default producer settings (DESIGN.md section 7), batched for throughput, authenticated
    as the principal of `settings` (topics/kafka_auth.py)."""
    return {
        **kafka_auth.client_config(settings),
        "bootstrap_servers": settings.bootstrap,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "compression_type": "gzip",
        "max_request_size": 2 * 1024 * 1024,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 60_000,
        # kafka-python's default lets the reconnect backoff grow to 30 s while a broker is away, so a
        # client could wait that long after the broker's return; 1 s is the Java client's default
        "reconnect_backoff_max_ms": 1_000,
    }


def publisher_config(settings: Settings, client_id: str) -> PublisherConfig:
    """The producer of the SDK and the HTTP API: a caller waiting for an acknowledgement (30 s by
    default) hears the library's own verdict, since a record is given up after 15 s; a send blocks
    at most 5 s for metadata (or the first connection) while the broker is away."""
    return {
        **producer_config(settings, client_id),
        "request_timeout_ms": 10_000,
        "delivery_timeout_ms": 15_000,
        "max_block_ms": 5_000,
        "bootstrap_timeout_ms": 5_000,
    }


# --- the workaround for a producer kafka-python leaves stuck ------------------------------------
#
# kafka-python 3.0.12, idempotent producer: when a batch that was already sent once (a retry, e.g.
# in flight when the broker went away) reaches delivery_timeout_ms, Sender._send_producer_data()
# (kafka/producer/sender.py) calls TransactionManager.reset_producer_id(). That drops the producer
# id but leaves the state READY, and TransactionManager.init_producer_id() only asks for a new id
# from UNINITIALIZED (kafka/producer/transaction_manager.py). Sender.run_once() then waits for an
# id nobody requests: it never drains or expires a batch again, every later send waits forever
# and flush() without a timeout never returns, even after the broker is back. A producer in the
# fatal-error state is as useless. Such a producer is replaced by a new one (`HealingProducer`).


def stuck_reason(producer: KafkaProducer) -> str | None:
    """Why `producer` can never deliver again, or None while it can."""
    tm = getattr(producer, "_transaction_manager", None)
    if tm is None:
        return None
    if tm.has_fatal_error():
        return f"fatal error: {tm.last_error!r}"
    if tm._current_state == TransactionState.READY and not tm.has_producer_id():
        return "producer id reset after an expired retry, and no new one will be requested"
    return None


def abandon(producer: KafkaProducer, timeout: float = 5.0) -> None:
    """Close without delivering: pending sends fail ("Producer is closed forcefully") at once.
    KafkaProducer.close(timeout) raises from its flush before it gets to force the sender closed."""
    sender = producer._sender
    sender.force_close()
    sender.join(timeout)
    try:
        producer.close(timeout=0)
    except KafkaError as exc:  # a send that raced the force close
        log.warning("closing an abandoned producer: %s", exc)


def close_within(producer: KafkaProducer, timeout: float) -> bool:
    """Flush and close in at most about `timeout` seconds; what is not acknowledged by then fails.
    Returns whether everything pending was delivered. (kafka-python's flush(timeout) waits up to
    `timeout` per pending batch, so the flush runs in a thread joined with the deadline.)"""
    deadline = time.monotonic() + timeout
    flusher = threading.Thread(target=producer.flush, name="publisher-flush", daemon=True)
    flusher.start()
    flusher.join(timeout)
    if flusher.is_alive():
        log.warning("%s: not everything was acknowledged within %.1f s; the rest fails", producer, timeout)
        abandon(producer)
        return False
    try:
        producer.close(timeout=max(deadline - time.monotonic(), 0.1))
    except KafkaError:  # a send arrived after the flush
        abandon(producer)
        return False
    return True


class HealingProducer:
    """A KafkaProducer for one or many publishers, replaced when kafka-python has left it stuck.

    Checked on every send, flush and close: a stuck producer is abandoned, so its pending sends
    fail and their callers hear of it, and the next send goes through a new producer with a new
    producer id. The first producer is made at the first use; a replacement skips the bootstrap
    (the broker version is known), so the swap never blocks. A producer passed in by the caller
    is used as it is, never replaced.
    """

    def __init__(self, config: Mapping[str, Any], producer: KafkaProducer | None = None) -> None:
        self._config = dict(config)
        self._owned = producer is None
        self._producer = producer
        self._lock = threading.Lock()
        self.replaced = 0

    @property
    def producer(self) -> KafkaProducer:
        current = self._producer
        if current is not None and (not self._owned or stuck_reason(current) is None):
            return current
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(**self._config)
            elif self._producer is current and current is not None:
                log.warning("%s is stuck (%s); replacing it with a new producer", current, stuck_reason(current))
                self._producer = KafkaProducer(**{**self._config, "api_version": current.config["api_version"]})
                self.replaced += 1
                abandon(current)
            return self._producer

    def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
        return self.producer.send(topic, key=key, value=value, headers=headers or None)

    def flush(self, timeout: float | None = None) -> None:
        if self._producer is not None:
            self.producer.flush(timeout=timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what is pending within `timeout` seconds, then close; False if something failed."""
        current = self._producer
        if current is None:
            return True
        if self._owned and stuck_reason(current) is not None:
            abandon(current)
            return False
        return close_within(current, timeout)


def current_roster(settings: Settings) -> Circle:
    """The roster as its files say now: a publisher made after a rotation signs with the new key,
    and one made after `tongcheng keys init` finds the keys its process did not see at start."""
    return load_circle(settings.circle_file, settings.circle, settings.roster_keys_path)


@dataclass(frozen=True)
class Prepared:
    event_type: str
    topic: str
    key: bytes
    value: bytes
    event: AvroRecord
    #: the CloudEvents attributes (topics/cloudevents.py), then the city's signature and key id
    #: (topics/provenance.py), which are left out when published unsigned
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def event_id(self) -> str:
        return str(self.event["meta"]["event_id"])


@dataclass(frozen=True)
class Outcome:
    index: int
    event_id: str | None
    error: Rejected | PublishError | None


class Publisher:
    def __init__(
        self,
        context: Context,
        city: str,
        source_system: str,
        producer: KafkaProducer | HealingProducer | None = None,
        sign: bool = True,
    ) -> None:
        """`sign=False` publishes unsigned records, which the processors refuse (`unsigned`) unless
        TONGCHENG_PROVENANCE=off: for tests and benchmarks."""
        if not context.circle.is_member(city):
            raise Rejected(Reason.UNKNOWN_CITY, f"{city!r} is not a member city of {context.circle.code}", "city")
        self.ctx = context
        self.city = city
        self.source_system = source_system
        self.signer = Signer.for_city(context.settings, current_roster(context.settings), city) if sign else None
        if isinstance(producer, HealingProducer):
            self._producer = producer
        elif producer is not None:
            self._producer = HealingProducer({}, producer)
        else:
            config = publisher_config(context.settings, f"tongcheng-{city}-{source_system}")
            self._producer = HealingProducer(config)

    @classmethod
    def for_city(cls, settings: Settings, city: str, source_system: str | None = None, sign: bool = True) -> Publisher:
        return cls(build_context(settings), city, source_system or settings.source_system, sign=sign)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- preparing -------------------------------------------------------------------------

    def fill_meta(self, event_type: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `body` with `meta` completed; a `source_city` other than ours is refused."""
        obj = dict(body)
        given = obj.get("meta")
        if given is not None and not isinstance(given, Mapping):
            raise Rejected(Reason.SCHEMA_INVALID, f"meta: expected an object, got {type(given).__name__}", "meta")
        meta = dict(given or {})
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
        headers = cloudevents.event_headers(self.ctx.topics.prefix, event_type, event)
        if self.signer:
            headers += self.signer.headers(topic, value)
        return Prepared(event_type, topic, kind.key_of(event).encode(), value, event, tuple(headers))

    # --- sending ---------------------------------------------------------------------------

    def send_prepared(self, p: Prepared, on_delivery: DeliveryCallback | None = None) -> Any:
        """Hand one event to the producer; raises PublishError if it cannot even be queued (no
        metadata for the topic within 5 s while the broker is away)."""
        try:
            future = self._producer.send(p.topic, key=p.key, value=p.value, headers=list(p.headers))
        except KafkaError as exc:
            raise PublishError(f"{p.topic}: event {p.event_id} not sent: {exc}") from exc
        if on_delivery is not None:
            future.add_callback(lambda _md: on_delivery(p.event_id, None))
            future.add_errback(lambda exc: on_delivery(p.event_id, PublishError(f"{p.topic}: {exc}")))
        return future

    def publish(self, event_type: str, body: Mapping[str, Any], timeout: float = 30.0) -> str:
        """Send one event and wait for the broker's acknowledgement; returns the event_id."""
        p = self.prepare(event_type, body)
        future = self.send_prepared(p)
        try:
            future.get(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(f"{p.topic}: broker did not acknowledge event {p.event_id}: {exc}") from exc
        return p.event_id

    def publish_async(self, event_type: str, body: Mapping[str, Any], on_delivery: DeliveryCallback) -> str:
        """Send without waiting; `on_delivery(event_id, error)` reports the outcome. Raises
        PublishError if the event cannot even be queued."""
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
            try:
                pending.append((i, p, self.send_prepared(p)))
            except PublishError as exc:
                outcomes.append(Outcome(i, p.event_id, exc))
        deadline = time.monotonic() + timeout
        for i, p, future in pending:
            try:
                future.get(timeout=max(deadline - time.monotonic(), 0.0))
                outcomes.append(Outcome(i, p.event_id, None))
            except KafkaError as exc:
                outcomes.append(Outcome(i, p.event_id, PublishError(f"{p.topic}: {exc}")))
        return sorted(outcomes, key=lambda o: o.index)

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is pending and close, within `timeout` seconds even while the broker is
        away; sends not acknowledged by then fail (their callbacks and futures say so)."""
        self._producer.close(timeout)
