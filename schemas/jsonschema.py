"""JSON Schema (OpenAPI 3.1) of each input event's JSON form, derived from its Avro schema.

It describes exactly what `schemas/convert.py` `JsonConverter` accepts:
- records are closed objects (unknown fields are refused), fields with a default are optional;
- timestamps (timestamp-millis) are ISO-8601 strings with a UTC offset, or epoch milliseconds;
- dates are YYYY-MM-DD; decimals are strings (or numbers) with at most `scale` decimal places and
  `precision` digits; uuids are strings in UUID form;
- a natural person may be given by `id_number` (GB 11643) instead of `subject_id`: it is hashed at
  ingress and never sent on;
- `meta` may be left out, and each of its fields: the publisher fills them in.
Timestamps and dates must lie within years 1900-9000 (topics/validation.py); JSON Schema
cannot say that of a date-time string, so it is stated in the descriptions.
"""

from __future__ import annotations

from typing import Any

from schemas.catalogue import PRIMITIVES, SchemaCatalogue, fullname

INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
TIMESTAMP = {
    "description": "An instant: ISO-8601 with a UTC offset (2026-11-22T09:30:00+08:00), or epoch milliseconds; "
    "years 1900 to 9000.",
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer", "minimum": -2208988800000, "maximum": 221845392000000},
    ],
}
DATE = {"type": "string", "format": "date", "description": "A calendar date, YYYY-MM-DD; years 1900 to 9000."}
ID_NUMBER = {
    "type": "string",
    "pattern": "^[0-9]{17}[0-9Xx]$",
    "description": "A resident ID number (GB 11643), hashed at ingress into subject_id; never sent on.",
}


def _primitive(kind: str) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {
        "null": {"type": "null"},
        "boolean": {"type": "boolean"},
        "int": dict(INT32),
        "long": dict(INT64),
        "float": {"type": "number"},
        "double": {"type": "number"},
        "string": {"type": "string"},
        "bytes": {"type": "string"},
    }
    return table[kind]


def _decimal(schema: dict[str, Any]) -> dict[str, Any]:
    scale, precision = schema.get("scale", 0), schema["precision"]
    whole = precision - scale
    fraction = rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
    return {
        "type": "string",
        "pattern": rf"^-?[0-9]{{1,{whole}}}{fraction}$",
        "description": f'An amount with at most {scale} decimal places and {precision} digits, e.g. "12500.00".',
    }


#: a USCC's shape (GB 32100; its check character is verified too) and a person's subject id
USCC = {"type": "string", "pattern": "^[0-9A-HJ-NPQRTUWXY]{18}$", "description": "A USCC (GB 32100)."}
SUBJECT_ID = {
    "description": "A USCC (GB 32100), or for a natural person P + 64 hex digits (salted SHA-256).",
    "anyOf": [USCC, {"type": "string", "pattern": "^P[0-9a-f]{64}$"}],
}
#: fields holding a member city's code, and lists of them (topics/validation.py)
CITY_FIELDS = {"city", "lead_city", "source_city"}
CITY_LIST_FIELDS = {"participating_cities", "affected_cities", "cities"}


class JsonSchemas:
    """With `cities`, city fields are enumerated: the member cities' GB/T 2260 codes."""

    def __init__(self, catalogue: SchemaCatalogue, cities: tuple[str, ...] | list[str] = ()) -> None:
        self.catalogue = catalogue
        self.cities = list(cities)

    def _narrowed(self, name: str, prop: dict[str, Any]) -> dict[str, Any]:
        """What a field's name says beyond its Avro type: a member city, a USCC, a subject id."""
        city = {"type": "string", "enum": self.cities, "description": "A member city's GB/T 2260 code."}
        if self.cities and name in CITY_FIELDS and prop.get("type") == "string":
            return city
        if self.cities and name in CITY_LIST_FIELDS and prop.get("type") == "array":
            return {**prop, "items": city}
        if name == "uscc" and prop.get("type") == "string":
            return dict(USCC)
        if name == "subject_id" and prop.get("type") == "string":
            return dict(SUBJECT_ID)
        return prop

    def event(self, schema_name: str) -> dict[str, Any]:
        """The request body of one input event type."""
        expanded = self.catalogue.schema(schema_name)
        out = self._value(expanded, None, self.catalogue.definitions)
        meta = out["properties"]["meta"]
        meta["required"] = []
        meta["description"] = (
            "May be left out, as may each field: event_id, source_system and occurred_at are filled in; "
            "event_type, source_city and published_at are set by the publisher (source_city by the token)."
        )
        out["required"] = [r for r in out["required"] if r != "meta"]
        return out

    def _value(self, schema: Any, namespace: str | None, names: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if isinstance(schema, list):
            return {"anyOf": [self._value(b, namespace, names) for b in schema]}
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _primitive(schema)
            return self._value(names[fullname(schema, namespace)], namespace, names)
        logical = schema.get("logicalType")
        if logical == "timestamp-millis":
            return dict(TIMESTAMP)
        if logical == "date":
            return dict(DATE)
        if logical == "decimal":
            return _decimal(schema)
        if logical == "uuid":
            return {"type": "string", "format": "uuid"}
        kind = schema["type"]
        if kind == "record":
            return self._record(schema, schema.get("namespace", namespace), names)
        if kind == "enum":
            return {"type": "string", "enum": list(schema["symbols"])}
        if kind == "array":
            return {"type": "array", "items": self._value(schema["items"], namespace, names)}
        if kind == "map":
            return {"type": "object", "additionalProperties": self._value(schema["values"], namespace, names)}
        return self._value(kind, namespace, names)

    def _record(self, schema: dict[str, Any], namespace: str | None, names: dict[str, Any]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for f in schema["fields"]:
            prop = self._narrowed(f["name"], self._value(f["type"], namespace, names))
            if f.get("doc"):
                prop = {**prop, "description": f["doc"]}
            properties[f["name"]] = prop
            if "default" not in f:
                required.append(f["name"])
        out: dict[str, Any] = {
            "type": "object",
            "title": schema["name"],
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        if schema.get("doc"):
            out["description"] = schema["doc"]
        if "subject_id" in properties and "subject_kind" in properties:
            # a natural person by clear ID number, hashed at ingress (validation.hash_person_ids)
            properties["id_number"] = dict(ID_NUMBER)
            out["required"] = [r for r in required if r != "subject_id"]
            out["oneOf"] = [{"required": ["subject_id"]}, {"required": ["id_number"]}]
        return out
