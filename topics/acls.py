"""Who may do what on the bus: the ACLs as data, beside the topic catalogue (topics/catalog.py).

Principals (SCRAM users):
- `admin`: the broker's only super user (provisioning, ACLs, credentials, ops commands); no ACLs.
- `city-<code>`: one per member city of the circle (topics/data/<circle>.circle.json).
- one per service (`SERVICES`, derived from the catalogue and `ALSO_READS`): the processors `credit`,
  `sanctions`, `emergency`, `supervision`, the read model `readmodel`, the HTTP ingestion `api` and
  the lag exporter `lag`.

Streams are named here by event type, never by topic: `credit.profile` is the type's topic
(`<prefix>.credit.profile.v1`), `credit.record.accepted` an input type's accepted stream
(`Catalog.accepted`), and `<stream>.dlq` a stream's dead-letter queue. `bindings(prefix, cities)`
expands them into Kafka ACL bindings for one circle prefix (`njmc`, or a test's random one).

The rules:
- A city writes the input topics (as itself: the processors refuse an event whose `source_city`
  is not the writer's) and reads only the derived topics (but the audit trail), which the contract lets downstream
  services of any city subscribe to. It reads neither raw input topics nor accepted streams nor
  DLQs: those hold other cities' submissions as they were sent. Its consumer groups are named
  `<prefix>.city-<code>.<anything>` (the inbox uses `<prefix>.city-<code>.inbox`).
- The owner of an input type (catalog.OWNER) reads its raw topic and alone writes its accepted
  stream and its DLQ. Every other reader of an input type reads the accepted stream.
- Each derived type (catalog.WRITERS) is written only by the services that produce it.
- A service that reads a raw or derived topic writes its DLQ (a record it refuses goes there); the
  readers of an accepted stream write none (one verdict per event).
- Each service keeps its consumer group, its faust table changelogs and faust's assignor topic
  under `tongcheng-<service>-<prefix>` (Settings.group_id), and may create topics there.
- `api` writes every input topic on behalf of the cities (HTTP ingestion, token per city), and the
  audit trail of personal-data reads (`audit.read`), which only the admin principal reads.
- `lag` describes every consumer group and topic of the cluster (offsets only, never records).
- Transactional ids: none; no client uses transactions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from topics.catalog import EVENT_TYPES, INPUT_TYPES, OWNER, PRIVATE, WRITERS
from topics.kafka_auth import ADMIN, LAG, city_principal

#: what a service reads beyond the raw input topics of the types it owns (catalog.OWNER): derived
#: topics, and other owners' accepted streams
ALSO_READS: dict[str, tuple[str, ...]] = {
    "sanctions": ("credit.profile",),
    "supervision": ("enforcement.action.accepted",),
    # the projections of services/readmodel/tables.py: derived topics and accepted streams
    "readmodel": (
        "credit.profile",
        "sanction.list",
        "sanction.tracking",
        "emergency.dispatch",
        "emergency.ack.accepted",
        "project.plan.accepted",
        "project.milestone.accepted",
    ),
}


def _reads() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for event_type, owner in OWNER.items():  # an owner reads its raw input topics
        out[owner] = (*out.get(owner, ()), event_type)
    for service, streams in ALSO_READS.items():
        out[service] = (*out.get(service, ()), *streams)
    return out


#: what each service reads: the owners their raw input topics, every other reader an accepted stream
READS: dict[str, tuple[str, ...]] = _reads()

#: writes beyond the accepted streams and DLQs of the owned types and the derived types of WRITERS
EXTRA_WRITES: dict[str, tuple[str, ...]] = {
    # enforcement into credit: the findings of a CLOSED action become credit records (DESIGN.md 5)
    "credit": ("credit.record",),
    "api": tuple(INPUT_TYPES),
}

#: what a city may subscribe to: the derived types, and the accepted credit records (the shared
#: credit platform's inputs, public records whose origin a city may check itself)
CITY_READS: tuple[str, ...] = (*(t for t in WRITERS if t not in PRIVATE), "credit.record.accepted")

#: the service principals: every service that reads or writes a stream (the processors, the read
#: model, the HTTP API), then the lag exporter; a processor is one as soon as the catalogue or
#: ALSO_READS names it
SERVICES: tuple[str, ...] = tuple(
    dict.fromkeys([*READS, *(w for ws in WRITERS.values() for w in ws), *EXTRA_WRITES, LAG])
)

#: transactional ids each principal may hold: none, no client uses transactions
TRANSACTIONAL_IDS: dict[str, tuple[str, ...]] = {}

#: operations on a service's own prefixed resources (consumer group, changelogs, assignor topic)
OWN_TOPIC_OPS = ("READ", "WRITE", "CREATE", "DESCRIBE_CONFIGS")
OWN_GROUP_OPS = ("READ",)


def _check() -> None:
    for stream in {s for reads in READS.values() for s in reads}:
        base = stream.removesuffix(".accepted")
        assert base in EVENT_TYPES, f"unknown stream {stream!r}"
    for service, reads in READS.items():
        for stream in reads:
            if stream in OWNER:
                assert OWNER[stream] == service, f"{service} reads raw {stream}, owned by {OWNER[stream]}"
    assert set(READS) | set(EXTRA_WRITES) <= set(SERVICES)


_check()


@dataclass(frozen=True, order=True)
class Binding:
    """One ALLOW rule: `principal` may `operation` on a resource (`pattern` LITERAL or PREFIXED), from any host."""

    principal: str  # User:<name>
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    name: str
    pattern: str
    operation: str

    def __str__(self) -> str:
        pattern = "" if self.pattern == "LITERAL" else f" ({self.pattern.lower()})"
        return f"{self.principal:22} {self.operation:16} {self.resource.lower()} {self.name}{pattern}"


def service_prefix(service: str, prefix: str) -> str:
    """The name prefix of a service's group and internal topics (Settings.group_id)."""
    return f"tongcheng-{service}-{prefix}"


def city_group_prefix(code: str, prefix: str) -> str:
    return f"{prefix}.city-{code}."


def topic_name(stream: str, prefix: str) -> str:
    if stream.endswith(".dlq"):
        return topic_name(stream.removesuffix(".dlq"), prefix) + ".dlq"
    if stream.endswith(".accepted"):
        return f"{prefix}.{stream.removesuffix('.accepted')}.accepted.v1"
    return f"{prefix}.{stream}.v1"


def writes(service: str) -> list[str]:
    """The streams `service` writes."""
    out = [s for t, owner in OWNER.items() if owner == service for s in (f"{t}.accepted", f"{t}.dlq")]
    out += [t for t, writers in WRITERS.items() if service in writers]
    out += list(EXTRA_WRITES.get(service, ()))
    # one verdict per event: an accepted stream's records were judged by its owner, so its readers
    # write no dead letters of their own
    out += [f"{s}.dlq" for s in READS.get(service, ()) if not s.endswith(".accepted")]
    return sorted(set(out))


def city_codes(settings: Any) -> list[str]:
    from topics.circle import load_circle

    return list(load_circle(settings.circle_file, settings.circle).codes)


def principals(settings: Any) -> list[str]:
    """Every SCRAM user of the circle of `settings`: admin, the services, the cities."""
    return [ADMIN, *SERVICES, *(city_principal(c) for c in city_codes(settings))]


def bindings(prefix: str, cities: Iterable[str]) -> set[Binding]:
    """Every ACL binding of the declaration for one circle prefix and its member cities."""
    out: set[Binding] = set()

    def topic(user: str, stream: str, op: str) -> None:
        out.add(Binding(f"User:{user}", "TOPIC", topic_name(stream, prefix), "LITERAL", op))

    for service in SERVICES:
        for stream in READS.get(service, ()):
            topic(service, stream, "READ")
        for stream in writes(service):
            topic(service, stream, "WRITE")
        if service in READS:  # a consumer: its group, changelogs and faust's assignor topic
            # `<own>` and `<own>-…` (a tagged group, faust's `<group>-<table>-changelog`), never
            # `<own>…`, which would also match a circle whose prefix starts with this one's
            own = service_prefix(service, prefix)
            out.update(Binding(f"User:{service}", "TOPIC", f"{own}-", "PREFIXED", op) for op in OWN_TOPIC_OPS)
            for op in OWN_GROUP_OPS:
                out.add(Binding(f"User:{service}", "GROUP", own, "LITERAL", op))
                out.add(Binding(f"User:{service}", "GROUP", f"{own}-", "PREFIXED", op))
    for resource in ("TOPIC", "GROUP"):
        out.add(Binding(f"User:{LAG}", resource, "*", "LITERAL", "DESCRIBE"))
    for code in cities:
        user = city_principal(code)
        for t in INPUT_TYPES:
            topic(user, t, "WRITE")
        for t in CITY_READS:
            topic(user, t, "READ")
        out.add(Binding(f"User:{user}", "GROUP", city_group_prefix(code, prefix), "PREFIXED", "READ"))
    for user, ids in TRANSACTIONAL_IDS.items():
        out.update(Binding(f"User:{user}", "TRANSACTIONAL_ID", i, "PREFIXED", "WRITE") for i in ids)
    return out


def managed(binding: Binding, prefix: str, cities: Iterable[str]) -> bool:
    """Is `binding` the declaration's business for this prefix? Any binding on the circle's own
    resources (named `<prefix>.…`, `tongcheng-<service>-<prefix>` or
    `tongcheng-<service>-<prefix>-…`), and the bindings of the circle's principals on the wildcard
    `*` and on the cluster. Other circles' resources and other tools' global grants are left alone."""
    name = binding.name
    own = [service_prefix(s, prefix) for s in SERVICES]
    if name.startswith(f"{prefix}.") or any(name == o or name.startswith(f"{o}-") for o in own):
        return True
    users = {f"User:{u}" for u in (*SERVICES, *(city_principal(c) for c in cities))}
    return binding.principal in users and (name == "*" or binding.resource == "CLUSTER")
