"""The schema catalogue of the contract: every `avro/*.avsc` parsed once.

Event schemas reference shared named types (`tongcheng.v1.Meta`, `tongcheng.v1.Subject`, ...) kept
in their own files; `SchemaCatalogue` inlines each reference at its first use so that every
registered schema is self-contained.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import fastavro
import fastavro.schema

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
#: a record in fastavro's form, as the codec reads and writes it: field name -> value, nested records
#: as dicts, dates, instants and decimals as Python objects. Its shape is its schema's, known at run
#: time only; it lives at the codec's edge (decoding, the JSON conversion, the contract checks), and
#: a processor never handles one: the runtime gives it the record's Struct (schemas/events.py).
AvroRecord: TypeAlias = dict[str, Any]
NAMESPACE = "tongcheng.v1"
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def enum_symbols(record: str, field: str) -> tuple[str, ...]:
    """The symbols of the enum field `field` of the record schema `avro/<record>.avsc`: its one
    declaration, for the code that checks such a value before anything is encoded."""
    schema = json.loads((SCHEMA_DIR / f"{record}.avsc").read_text(encoding="utf-8"))
    (kind,) = [f["type"] for f in schema["fields"] if f["name"] == field]
    return tuple(kind["symbols"])


#: what a city reports back on a measure (`sanction.feedback` `outcome`)
FEEDBACK_OUTCOMES = enum_symbols("SanctionFeedback", "outcome")


def fullname(name: str, namespace: str | None) -> str:
    return name if "." in name else f"{namespace or NAMESPACE}.{name}"


def _collect_named(schema: Any, namespace: str | None, out: dict[str, dict[str, Any]]) -> None:
    """Record every named type defined (not merely referenced) inside `schema`."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_named(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            full = fullname(schema["name"], ns)
            out[full] = schema
            for f in schema.get("fields", []):
                _collect_named(f["type"], ns, out)
        elif kind == "array":
            _collect_named(schema["items"], namespace, out)
        elif kind == "map":
            _collect_named(schema["values"], namespace, out)
        elif isinstance(kind, dict | list):
            _collect_named(kind, namespace, out)


def _inline(schema: Any, namespace: str | None, defs: Mapping[str, dict[str, Any]], seen: set[str]) -> Any:
    """Copy of `schema` with each named reference replaced by its definition at first use."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        full = fullname(schema, namespace)
        if full in seen:
            return full
        if full not in defs:
            raise KeyError(f"unknown named type {schema!r}")
        return _inline(defs[full], namespace, defs, seen)
    if isinstance(schema, list):
        return [_inline(b, namespace, defs, seen) for b in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    out = dict(schema)
    if kind in ("record", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        full = fullname(schema["name"], ns)
        seen.add(full)
        out["name"] = full.rsplit(".", 1)[1]
        out["namespace"] = full.rsplit(".", 1)[0]
        if kind == "record":
            out["fields"] = [{**f, "type": _inline(f["type"], ns, defs, seen)} for f in schema["fields"]]
    elif kind == "array":
        out["items"] = _inline(schema["items"], namespace, defs, seen)
    elif kind == "map":
        out["values"] = _inline(schema["values"], namespace, defs, seen)
    elif isinstance(kind, str | list | dict) and kind not in PRIMITIVES:
        return _inline(kind, namespace, defs, seen) if not schema.get("logicalType") else out
    return out


class SchemaCatalogue:
    """Every schema of one directory (or of a mapping file name -> text), expanded and parsed once."""

    def __init__(self, sources: Path | Mapping[str, str] = SCHEMA_DIR) -> None:
        if isinstance(sources, Path):
            texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(sources.glob("*.avsc"))}
        else:
            texts = dict(sources)
        self._defs: dict[str, dict[str, Any]] = {}
        self._top: dict[str, dict[str, Any]] = {}
        for file_name, text in texts.items():
            try:
                schema = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{file_name}: not JSON: {exc}") from exc
            _collect_named(schema, None, self._defs)
            self._top[file_name.removesuffix(".avsc")] = schema
        self._expanded: dict[str, dict[str, Any]] = {}
        self._texts: dict[str, str] = {}
        self._parsed: dict[str, Any] = {}
        for name, schema in self._top.items():
            if schema.get("type") == "record" and any(f["name"] == "meta" for f in schema["fields"]):
                expanded = _inline(schema, None, self._defs, set())
                self._expanded[name] = expanded
                self._texts[name] = json.dumps(expanded, ensure_ascii=False, separators=(",", ":"))
                self._parsed[name] = fastavro.parse_schema(copy.deepcopy(expanded))

    @property
    def event_schemas(self) -> list[str]:
        return sorted(self._expanded)

    def schema(self, name: str) -> dict[str, Any]:
        return self._expanded[name]

    @property
    def definitions(self) -> dict[str, dict[str, Any]]:
        """Every named type of the catalogue by its full name (`tongcheng.v1.Subject`)."""
        return self._defs

    def text(self, name: str) -> str:
        return self._texts[name]

    def parsed(self, name: str) -> Any:
        return self._parsed[name]
