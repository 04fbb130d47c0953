"""CloudEvents 1.0 on every record the bus writes, in the Kafka protocol binding's binary mode.

The value stays what it is (the Confluent-framed Avro event, or a dead letter's bytes as received);
the event's attributes travel as headers, so any CloudEvents SDK reads a Tongcheng record:

- `ce_specversion`: `1.0`;
- `ce_id`: the event's `meta.event_id`; a dead letter's source coordinates `<topic>/<partition>/<offset>`;
- `ce_source`: `urn:tongcheng:<prefix>:city:<code>` for an input event (its `meta.source_city`),
  `urn:tongcheng:<prefix>:service:<name>` for a derived event or a dead letter;
- `ce_type`: `tongcheng.<event type>.v1` (e.g. `tongcheng.credit.record.v1`); `tongcheng.dead_letter.v1`;
- `ce_time`: `meta.occurred_at` (RFC 3339, UTC); a dead letter: when it was rejected;
- `ce_subject`: the record's key (subject_id, incident_id, ...); a dead letter: its source topic;
- `content-type`: `application/avro` (the Confluent wire format: byte 0, a 4-byte schema id, the
  Avro binary); a dead letter: `application/octet-stream`.

Provenance signatures (topics/provenance.py) cover the topic and the value, never a header, so these
headers change no signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from topics.catalog import EVENT_TYPES

SPECVERSION = "1.0"
AVRO = "application/avro"
OCTETS = "application/octet-stream"
DEAD_LETTER_TYPE = "tongcheng.dead_letter.v1"
#: the headers this module writes; an input's other `ce_` headers (extensions such as traceparent) stay
CORE = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type")
Headers = list[tuple[str, bytes]]


def ce_type(event_type: str) -> str:
    return f"tongcheng.{event_type}.v1"


def city_source(prefix: str, city: str) -> str:
    return f"urn:tongcheng:{prefix}:city:{city}"


def service_source(prefix: str, service: str) -> str:
    return f"urn:tongcheng:{prefix}:service:{service}"


def rfc3339(value: Any) -> str:
    """An instant (datetime, or epoch milliseconds) as RFC 3339 in UTC, to the millisecond."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"an instant with a UTC offset is needed, not {value!r}")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_headers(prefix: str, event_type: str, event: Mapping[str, Any], service: str | None = None) -> Headers:
    """The attributes of one event: an input type's source is the city in its meta, a derived
    type's the service that wrote it (`service`)."""
    meta = event["meta"]
    kind = EVENT_TYPES[event_type]
    if kind.derived:
        if not service:
            raise ValueError(f"{event_type} is derived: name the service that writes it")
        source = service_source(prefix, service)
    else:
        source = city_source(prefix, meta["source_city"])
    return _encode(
        {
            "ce_specversion": SPECVERSION,
            "ce_id": str(meta["event_id"]),
            "ce_source": source,
            "ce_type": ce_type(event_type),
            "ce_time": rfc3339(meta["occurred_at"]),
            "ce_subject": kind.key_of(event),
            "content-type": AVRO,
        }
    )


def dead_letter_headers(service: str, topic: str, partition: int, offset: int, now: datetime | None = None) -> Headers:
    """The attributes of a dead letter: its id is where the bad record is, so a record rejected again
    after a crash is the same event."""
    return _encode(
        {
            "ce_specversion": SPECVERSION,
            "ce_id": f"{topic}/{partition}/{offset}",
            "ce_source": service_source(topic.split(".", 1)[0], service),
            "ce_type": DEAD_LETTER_TYPE,
            "ce_time": rfc3339(now or datetime.now(UTC)),
            "ce_subject": topic,
            "content-type": OCTETS,
        }
    )


def replace_core(headers: Iterable[tuple[str, bytes | None]], ce: Headers) -> Headers:
    """`headers` with this module's attributes replaced by `ce` (others, signatures included, kept in order)."""
    return [(k, v or b"") for k, v in headers if k.lower() not in CORE] + ce


def _encode(attributes: dict[str, str]) -> Headers:
    return [(k, v.encode("utf-8")) for k, v in attributes.items()]
