"""The AsyncAPI 3.0 document of one circle, generated from the topic catalogue and the Avro schemas.

Downstream teams learn the topics from it, not from Python: every topic is a channel with its Kafka
bindings (partitions, replicas, cleanup policy, retention), every event type a message whose payload
is its Avro schema (self-contained, as registered), keyed as the catalogue says, with its headers
(CloudEvents, provenance) and the security of the servers (SASL/SCRAM-SHA-512, over TLS in the
production profile). Dead letters are a message of their own, with the bounded set of reasons.
`tongcheng docs asyncapi` prints it; the API serves it at `/asyncapi.json`.
"""

from __future__ import annotations

from schemas.convert import JsonObject
from schemas.errors import Reason
from topics import cloudevents
from topics.acls import CITY_READS, READS
from topics.catalog import EVENT_TYPES, OWNER, WRITERS, TopicSpec
from topics.context import Context
from topics.provenance import KEY_ID_HEADER, SIGNATURE_HEADER

VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
KAFKA_BINDING = "0.5.0"
DEAD_LETTER = "DeadLetter"


def _camel(topic_suffix: str) -> str:
    head, *rest = topic_suffix.replace("-", ".").split(".")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _text(description: str) -> JsonObject:
    return {"type": "string", "description": description}


def _ce_headers(dead_letter: bool = False) -> JsonObject:
    if dead_letter:
        return {
            "ce_specversion": {"type": "string", "const": cloudevents.SPECVERSION},
            "ce_id": _text("the dead letter's source coordinates, <topic>/<partition>/<offset>"),
            "ce_source": _text("urn:tongcheng:<prefix>:service:<the service that rejected the record>"),
            "ce_type": {"type": "string", "const": cloudevents.DEAD_LETTER_TYPE},
            "ce_time": {"type": "string", "format": "date-time", "description": "when it was rejected"},
            "ce_subject": _text("the topic the bad record was read from"),
            "content-type": {"type": "string", "const": cloudevents.OCTETS},
        }
    return {
        "ce_specversion": {"type": "string", "const": cloudevents.SPECVERSION},
        "ce_id": {"type": "string", "description": "meta.event_id, the idempotency key"},
        "ce_source": _text(
            "urn:tongcheng:<prefix>:city:<meta.source_city> for an input event, "
            "urn:tongcheng:<prefix>:service:<writer> for a derived one"
        ),
        "ce_type": _text("tongcheng.<event type>.v1"),
        "ce_time": {"type": "string", "format": "date-time", "description": "meta.occurred_at, RFC 3339 in UTC"},
        "ce_subject": _text("the record's key"),
        "content-type": {"type": "string", "const": cloudevents.AVRO},
    }


def _message(ctx: Context, event_type: str) -> JsonObject:
    kind = EVENT_TYPES[event_type]
    headers: JsonObject = _ce_headers()
    required = list(headers)
    if not kind.derived:
        headers[SIGNATURE_HEADER] = _text(
            "base64 Ed25519 signature of b'tongcheng.provenance.v1' 0x00 <input topic> 0x00 <value> "
            "by the sending city's roster key (README, Provenance); absent only when published unsigned"
        )
        headers[KEY_ID_HEADER] = _text("the signing key: <city>:<first 16 hex of SHA-256 of the raw public key>")
        headers["accepted.by"] = _text("on the accepted stream only: the owner service that applied it")
        headers["source.partition"] = _text("on the accepted stream only: the input partition")
        headers["source.offset"] = _text("on the accepted stream only: the input offset")
    written = "cities (input)" if not kind.derived else ", ".join(WRITERS[event_type])
    return {
        "name": kind.schema,
        "title": event_type,
        "summary": f"{kind.schema} ({'derived' if kind.derived else 'input'}; written by {written})",
        "contentType": cloudevents.AVRO,
        "headers": {"type": "object", "properties": headers, "required": required},
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": ctx.schemas.schema(kind.schema)},
        "bindings": {
            "kafka": {
                "key": _text("the record key: " + ".".join(kind.key_path)),
                "schemaIdLocation": "payload",
                "schemaIdPayloadEncoding": "confluent",
                "schemaLookupStrategy": "TopicNameStrategy",
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _dead_letter() -> JsonObject:
    headers = {
        "error.reason": {"type": "string", "enum": [r.value for r in Reason], "description": "why it was refused"},
        "error.detail": _text("what was wrong, naming the field (at most 2,000 characters)"),
        "error.service": _text("the service that rejected it: the owner of its type"),
        "source.topic": _text("the topic it was read from"),
        "source.partition": _text("its partition there"),
        "source.offset": _text("its offset there"),
        "source.key": _text("its own record key"),
        **_ce_headers(dead_letter=True),
    }
    return {
        "name": DEAD_LETTER,
        "title": "dead letter",
        "summary": "A rejected record, byte for byte as it was read, with why it was refused",
        "contentType": cloudevents.OCTETS,
        "headers": {"type": "object", "properties": headers, "required": list(headers)},
        "payload": {"type": "string", "format": "binary", "description": "the rejected value, unchanged"},
        "bindings": {"kafka": {"key": _text("<topic>/<partition>/<offset>"), "bindingVersion": KAFKA_BINDING}},
    }


def _kafka_channel(ctx: Context, spec: TopicSpec) -> JsonObject:
    config: JsonObject = {"cleanup.policy": [spec.config["cleanup.policy"]]}
    for name in ("retention.ms", "retention.bytes"):
        if name in spec.config:
            config[name] = int(spec.config[name])
    return {
        "kafka": {
            "topic": spec.name,
            "partitions": spec.partitions,
            "replicas": ctx.topics.replication_factor,
            "topicConfiguration": config,
            "bindingVersion": KAFKA_BINDING,
        }
    }


def _readers(stream: str) -> str:
    names = [service for service, streams in READS.items() if stream in streams]
    if stream in CITY_READS:
        names.append("the member cities (city-<code>)")
    return ", ".join(names) or "admin"


def _about(ctx: Context, spec: TopicSpec) -> str:
    kind = spec.event_type
    if kind is None:
        return f"Dead letters of {spec.name.removesuffix('.dlq')}: written by the service that refused the record."
    if ctx.topics.is_accepted(spec.name):
        return (
            f"What {OWNER[kind.name]} applied of {kind.name}, byte for byte with its headers, on the same "
            f"partition; read by {_readers(kind.name + '.accepted')}."
        )
    if kind.name in OWNER:
        return f"Input: {kind.name} as the member cities publish it; judged by its owner, {OWNER[kind.name]}."
    return f"Derived: written by {', '.join(WRITERS[kind.name])}; read by {_readers(kind.name)}."


def _channels(ctx: Context) -> tuple[JsonObject, JsonObject]:
    prefix = ctx.topics.prefix
    channels: JsonObject = {}
    operations: JsonObject = {}
    for spec in ctx.topics.specs():
        suffix = spec.name[len(prefix) + 1 :]
        cid = _camel(suffix.removesuffix(".v1"))
        kind = spec.event_type
        message = DEAD_LETTER if kind is None else kind.schema
        about = _about(ctx, spec)
        channels[cid] = {
            "address": spec.name,
            "title": spec.name,
            "description": about,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": _kafka_channel(ctx, spec),
        }
        ref = {"$ref": f"#/channels/{cid}"}
        msg = [{"$ref": f"#/channels/{cid}/messages/{message}"}]
        operations[f"receive{cid[:1].upper()}{cid[1:]}"] = {
            "action": "receive",
            "channel": ref,
            "summary": f"Subscribe to {spec.name}",
            "messages": msg,
        }
        if kind is not None and not kind.derived and not ctx.topics.is_accepted(spec.name):
            operations[f"send{cid[:1].upper()}{cid[1:]}"] = {
                "action": "send",
                "channel": ref,
                "summary": f"Publish a {kind.name} event as a member city (signed, see Provenance)",
                "messages": msg,
            }
    return channels, operations


def document(ctx: Context) -> JsonObject:
    """The AsyncAPI 3.0 document of `ctx`'s circle, prefix and profile."""
    s, circle = ctx.settings, ctx.circle
    channels, operations = _channels(ctx)
    scram = {"$ref": "#/components/securitySchemes/scramSha512"}
    secure = s.profile == "production"
    cities = ", ".join(f"{c.code} {c.name_zh} {c.name}" for c in circle.cities.values())
    return {
        "asyncapi": VERSION,
        "id": f"urn:tongcheng:{ctx.topics.prefix}",
        "info": {
            "title": f"Tongcheng 同城: {circle.name} ({circle.name_zh})",
            "version": "1",
            "description": (
                f"The event bus of the {circle.name}. Member cities: {cities}. Topics are "
                f"`{ctx.topics.prefix}.<domain>.<event>.v1`; values are Avro in the Confluent wire format "
                f"(byte 0, a 4-byte schema id, the Avro binary), registered as `<topic>-value` at "
                f"{s.registry_url}. Every record carries CloudEvents 1.0 attributes as Kafka headers "
                "(binary mode). Every input is judged once by its owner: applied events are forwarded "
                "to `<type>.accepted.v1`, refused ones to `<topic>.dlq`."
            ),
        },
        "defaultContentType": cloudevents.AVRO,
        "servers": {
            "bus": {
                "host": s.bootstrap,
                "protocol": "kafka-secure" if secure else "kafka",
                "protocolVersion": "4.1",
                "description": (
                    "SASL_SSL: SCRAM-SHA-512 over TLS; clients trust the installation's CA"
                    if secure
                    else "SASL_PLAINTEXT on 127.0.0.1 (the local profile); production uses SASL_SSL"
                ),
                "security": [scram],
                "bindings": {
                    "kafka": {
                        "schemaRegistryUrl": s.registry_url,
                        "schemaRegistryVendor": "apicurio",
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {
                **{EVENT_TYPES[t].schema: _message(ctx, t) for t in EVENT_TYPES},
                DEAD_LETTER: _dead_letter(),
            },
            "securitySchemes": {
                "scramSha512": {
                    "type": "scramSha512",
                    "description": (
                        "SASL/SCRAM-SHA-512, over SASL_PLAINTEXT locally and SASL_SSL in production. "
                        "Principals: city-<code> for each member city, one per service, admin; "
                        "ACLs as code in topics/acls.py (README, Authentication and ACLs)."
                    ),
                }
            },
        },
    }
