"""The typed events mirror the Avro schemas field for field, and carry an example event through
decode -> Struct -> encode unchanged. The Structs are those of schemas/events.py and any a
processor's module declares (a new family's, CONTRIBUTING.md), which its import registers."""

from __future__ import annotations

import copy
import importlib
import json
import typing
from datetime import date, datetime
from decimal import Decimal
from types import NoneType, UnionType
from typing import Any, Literal

import msgspec
import pytest

from schemas import structs
from schemas.catalogue import SCHEMA_DIR, SchemaCatalogue
from schemas.codec import encode_payload
from services.registry import PROCESSORS
from tests.conftest import example
from topics.catalog import EVENT_TYPES
from topics.circle import load_circle
from topics.clock import ManualClock
from topics.validation import Validator

_LOGICAL = {"uuid": str, "timestamp-millis": datetime, "date": date, "decimal": Decimal}
_PRIMITIVE = {"string": str, "boolean": bool, "int": int, "long": int, "double": float, "bytes": bytes}


def _named() -> dict[str, dict[str, Any]]:
    """Every named record and enum of avro/*.avsc, by its short name."""
    out: dict[str, dict[str, Any]] = {}

    def walk(schema: Any) -> None:
        if isinstance(schema, list):
            for branch in schema:
                walk(branch)
        elif isinstance(schema, dict):
            if schema.get("type") in ("record", "enum"):
                out[schema["name"]] = schema
                for f in schema.get("fields", []):
                    walk(f["type"])
            else:
                walk(schema.get("items"))
                walk(schema.get("values"))

    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return out


NAMED = _named()
for spec in PROCESSORS:  # a family may declare its event's Struct in its own module
    importlib.import_module(spec.module)


def _agrees(avro: Any, hint: Any) -> bool:
    """Whether the Python type `hint` is what the Struct must hold for the Avro type `avro`."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if "null" not in avro or len(branches) != 1:
            return False
        args = typing.get_args(hint)
        return (
            typing.get_origin(hint) in (UnionType, typing.Union)
            and NoneType in args
            and _agrees(branches[0], _without_none(args))
        )
    if isinstance(avro, str):
        if avro in _PRIMITIVE:
            return hint is _PRIMITIVE[avro]
        return _agrees(NAMED[avro.rsplit(".", 1)[-1]], hint)
    if "logicalType" in avro:
        return hint is _LOGICAL[avro["logicalType"]]
    kind = avro["type"]
    if kind == "enum":
        return typing.get_origin(hint) is Literal and list(typing.get_args(hint)) == avro["symbols"]
    if kind == "array":
        return typing.get_origin(hint) is list and _agrees(avro["items"], typing.get_args(hint)[0])
    if kind == "record":
        return hint is structs.BY_SCHEMA[avro["name"]]
    return _agrees(kind, hint)


def _without_none(args: tuple[Any, ...]) -> Any:
    (rest,) = [a for a in args if a is not NoneType]
    return rest


@pytest.mark.parametrize("name", sorted(n for n, s in NAMED.items() if s["type"] == "record"))
def test_each_struct_has_its_record_s_fields_types_and_defaults(name: str) -> None:
    schema, struct = NAMED[name], structs.BY_SCHEMA[name]
    hints = typing.get_type_hints(struct)
    fields = {f.name: f for f in msgspec.structs.fields(struct)}
    assert list(fields) == [f["name"] for f in schema["fields"]]
    for f in schema["fields"]:
        assert _agrees(f["type"], hints[f["name"]]), f"{name}.{f['name']}: {hints[f['name']]} for {f['type']}"
        field = fields[f["name"]]
        if "default" not in f:
            assert field.required, f"{name}.{f['name']} has a default the schema has not"
        elif f["default"] == []:
            assert field.default_factory is list
        else:
            assert field.default == f["default"], f"{name}.{f['name']}"


def test_every_event_type_has_its_struct() -> None:
    assert {e.schema for e in EVENT_TYPES.values()} <= set(structs.BY_SCHEMA)


@pytest.mark.parametrize(
    "event_type", sorted(p.stem for p in (SCHEMA_DIR.parent.parent / "topics" / "examples").glob("*.json"))
)
def test_an_example_event_survives_the_struct_unchanged(clock: ManualClock, event_type: str) -> None:
    catalogue = SchemaCatalogue()
    validator = Validator(load_circle(), catalogue, clock, "salt")
    body = copy.deepcopy(example(event_type))
    body["meta"] = {
        "event_id": "6f1c2a7e-8d3b-4f0a-9c5e-1b2d3e4f5a6b",
        "event_type": event_type,
        "source_city": "320100",
        "source_system": "test",
        "occurred_at": int(clock.now().timestamp() * 1000),
        "published_at": int(clock.now().timestamp() * 1000),
    }
    decoded = validator.from_json(event_type, body)
    kind = structs.BY_SCHEMA[EVENT_TYPES[event_type].schema]
    event = structs.typed(decoded, kind)
    assert isinstance(event, kind)
    schema = catalogue.parsed(EVENT_TYPES[event_type].schema)
    assert encode_payload(schema, structs.plain(event)) == encode_payload(schema, decoded)
