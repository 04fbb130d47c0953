"""The one codec of the contract: schema catalogue, Confluent wire format, JSON conversion.

Schemas are parsed once. Event schemas reference shared named types (`tongcheng.v1.Meta`,
`tongcheng.v1.Subject`, ...) kept in their own files; `SchemaCatalogue` inlines each reference
at its first use so that every registered schema is self-contained.

Wire format (Confluent): byte 0 = 0, bytes 1-4 = schema id (big-endian), then Avro binary.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Context as DecimalContext
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

import fastavro
import fastavro.schema

from schemas.errors import Reason, Rejected

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
NAMESPACE = "tongcheng.v1"
MAGIC = 0
_HEADER = struct.Struct(">bI")
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
#: the instants and dates an event may carry: wide enough for any real record, and far enough from
#: the ends of Python's calendar (years 1 to 9999) that no rule's arithmetic leaves it, and that a
#: timestamp-millis written here is always read back (year 1 at +08:00 is year 0 in UTC)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9001, 1, 1, tzinfo=UTC)  # exclusive
#: how deep an event's JSON may nest; the deepest schema needs 5 levels
MAX_DEPTH = 32


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


# --- wire format ---------------------------------------------------------------------------


def frame(schema_id: int, payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + payload


def unframe(data: bytes | None) -> tuple[int, bytes]:
    if not data or len(data) < _HEADER.size:
        raise Rejected(Reason.UNDECODABLE, "value is shorter than the 5-byte Confluent header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise Rejected(Reason.UNDECODABLE, f"magic byte is {magic}, expected 0 (Confluent wire format)")
    return schema_id, data[_HEADER.size :]


class SchemaSource(Protocol):
    """Where schema ids come from (the registry). Both methods raise `Unavailable` when the source
    cannot be asked; `schema_text` raises a `LookupError` when it answers that the id does not exist."""

    def register(self, subject: str, schema_text: str) -> int: ...

    def schema_text(self, schema_id: int) -> str: ...


class Codec:
    """Encodes and decodes records in the Confluent wire format against a registry."""

    def __init__(self, catalogue: SchemaCatalogue, registry: SchemaSource) -> None:
        self.catalogue = catalogue
        self.registry = registry
        self._writers: dict[int, Any] = {}
        self._readers: dict[tuple[int, str], Any] = {}

    def schema_id(self, subject: str, schema_name: str) -> int:
        """The id of our schema under `subject` (registered at first use); `Unavailable` when the
        registry cannot be asked."""
        return self.registry.register(subject, self.catalogue.text(schema_name))

    def encode(self, subject: str, schema_name: str, record: Mapping[str, Any]) -> bytes:
        schema_id = self.schema_id(subject, schema_name)
        return frame(schema_id, encode_payload(self.catalogue.parsed(schema_name), record))

    def encode_many(self, subject: str, schema_name: str, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        schema_id = self.schema_id(subject, schema_name)
        parsed = self.catalogue.parsed(schema_name)
        return [frame(schema_id, encode_payload(parsed, r)) for r in records]

    def _reader(self, schema_id: int, writer: Any, schema_name: str) -> Any:
        """The reader schema to resolve to, or None when the writer's schema is the same (no resolution)."""
        key = (schema_id, schema_name)
        if key not in self._readers:
            reader = self.catalogue.parsed(schema_name)
            same = fastavro.schema.to_parsing_canonical_form(writer) == fastavro.schema.to_parsing_canonical_form(
                reader
            )
            self._readers[key] = None if same else reader
        return self._readers[key]

    def _writer(self, schema_id: int) -> Any:
        """The writer's schema. Only an id the registry says does not exist rejects the record; a
        registry that cannot be asked raises `Unavailable` (the record is fine: retry it later)."""
        writer = self._writers.get(schema_id)
        if writer is None:
            try:
                text = self.registry.schema_text(schema_id)
            except LookupError as exc:
                raise Rejected(Reason.UNKNOWN_SCHEMA, f"schema id {schema_id} is not in the registry: {exc}") from exc
            try:
                writer = fastavro.parse_schema(json.loads(text))
            except Exception as exc:  # e.g. a Protobuf or JSON Schema id: the record is not ours to read
                raise Rejected(
                    Reason.UNKNOWN_SCHEMA, f"schema id {schema_id} is not an Avro schema: {str(exc)[:200]}"
                ) from exc
            self._writers[schema_id] = writer
        return writer

    def decode(self, data: bytes | None, schema_name: str | None = None) -> dict[str, Any]:
        """Decode one value; with `schema_name`, resolve the writer's schema to that reader schema."""
        schema_id, payload = unframe(data)
        writer = self._writer(schema_id)
        reader = self._reader(schema_id, writer, schema_name) if schema_name else None
        try:
            record = fastavro.schemaless_reader(io.BytesIO(payload), writer, reader)
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise Rejected(
                Reason.UNDECODABLE, f"Avro payload does not match schema id {schema_id}: {str(exc)[:200]}"
            ) from exc
        if not isinstance(record, dict):
            raise Rejected(Reason.UNDECODABLE, "Avro payload is not a record")
        meta = record.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("event_id"), uuid.UUID):
            meta["event_id"] = str(meta["event_id"])
        return record


def encode_payload(parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema, record)
    return buf.getvalue()


# --- JSON <-> Avro values --------------------------------------------------------------------


def _bad(path: str, detail: str) -> Rejected:
    return Rejected(Reason.SCHEMA_INVALID, f"{path or 'event'}: {detail}", field=path or None)


def parse_timestamp(value: Any, path: str = "") -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _bad(path, "timestamp needs a UTC offset")
        return _in_range(value, path)
    if isinstance(value, bool):
        raise _bad(path, "expected a timestamp")
    if isinstance(value, int):
        if not _EARLIEST_MS <= value < _LATEST_MS:
            raise _bad(path, f"{value} ms is outside years {EARLIEST.year}-{LATEST.year - 1}")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _bad(path, f"{value[:40]!r} is not an ISO-8601 timestamp") from None
        if parsed.tzinfo is None:
            raise _bad(path, f"{value!r} needs a UTC offset, e.g. 2026-11-22T09:30:00+08:00")
        return _in_range(parsed, path)
    raise _bad(path, f"expected a timestamp, got {type(value).__name__}")


_EARLIEST_MS = int(EARLIEST.timestamp() * 1000)
_LATEST_MS = int(LATEST.timestamp() * 1000)


def _in_range(value: datetime, path: str) -> datetime:
    try:
        ok = EARLIEST <= value < LATEST
    except OverflowError:  # the offset takes it past the ends of the calendar
        ok = False
    if not ok:
        raise _bad(path, f"{value.isoformat()} is outside years {EARLIEST.year}-{LATEST.year - 1}")
    return value


def _to_date(value: Any, path: str) -> date:
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise _bad(path, f"{value[:40]!r} is not a date (YYYY-MM-DD)") from None
    else:
        raise _bad(path, f"expected a date (YYYY-MM-DD), got {type(value).__name__}")
    if not EARLIEST.date() <= day < LATEST.date():
        raise _bad(path, f"{day.isoformat()} is outside years {EARLIEST.year}-{LATEST.year - 1}")
    return day


def _to_decimal(value: Any, schema: Mapping[str, Any], path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _bad(path, 'expected a decimal amount, e.g. "12500.00"')
    shown = repr(value) if len(str(value)) <= 40 else f"{str(value)[:20]}...({len(str(value))} characters)"
    try:
        amount = Decimal(value) if isinstance(value, str | int) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _bad(path, f"{shown} is not a decimal amount") from None
    scale, precision = schema.get("scale", 0), schema["precision"]
    if not amount.is_finite():
        raise _bad(path, "amount must be finite")
    # checked before quantize(), which fails on numbers beyond its context
    if amount and amount.adjusted() >= precision - scale:
        raise _bad(path, f"{shown} has more than {precision - scale} digits before the decimal point")
    exponent = amount.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -scale
        and amount != amount.quantize(Decimal(1).scaleb(-scale), context=DecimalContext(prec=precision + 2))
    ):
        raise _bad(path, f"{shown} has more than {scale} decimal places")
    return amount.quantize(Decimal(1).scaleb(-scale), context=DecimalContext(prec=precision + 2))


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
    return "union"


class JsonConverter:
    """Turns JSON-shaped input into values fastavro writes, with a field path on every error."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self.catalogue = catalogue

    def convert(self, schema_name: str, value: Any) -> dict[str, Any]:
        schema = self.catalogue.schema(schema_name)
        # named types are looked up in the catalogue's definitions, not where the expanded schema
        # defines them: that is their first use, which an input may skip (an empty list of targets)
        result = self._value(schema, value, "", self.catalogue.definitions)
        assert isinstance(result, dict)
        return result

    def _value(self, schema: Any, value: Any, path: str, names: dict[str, Any]) -> Any:
        if isinstance(schema, list):
            return self._union(schema, value, path, names)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _primitive(schema, value, path)
            return self._value(names[fullname(schema, None)], value, path, names)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical == "timestamp-millis":
            return parse_timestamp(value, path)
        if logical == "date":
            return _to_date(value, path)
        if logical == "decimal":
            return _to_decimal(value, schema, path)
        if logical == "uuid":
            if not isinstance(value, str) or not _is_uuid(value):
                raise _bad(path, f"{value!r} is not a UUID")
            return value
        if kind == "record":
            return self._record(schema, value, path, names)
        if kind == "enum":
            if not isinstance(value, str) or value not in schema["symbols"]:
                raise _bad(path, f"{str(value)[:40]!r} is not one of {', '.join(schema['symbols'])}")
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise _bad(path, "expected a list")
            return [self._value(schema["items"], v, f"{path}[{i}]", names) for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise _bad(path, "expected an object")
            for k in value:
                _check_text(k, path)
            return {k: self._value(schema["values"], v, f"{path}.{k}", names) for k, v in value.items()}
        if kind in PRIMITIVES:
            return _primitive(kind, value, path)
        return self._value(kind, value, path, names)

    def _record(self, schema: Mapping[str, Any], value: Any, path: str, names: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _bad(path, f"expected an object ({schema['name']})")
        known = {f["name"] for f in schema["fields"]}
        extra = sorted(set(value) - known)
        if extra:
            where = f"{path}.{extra[0][:40]}" if path else extra[0][:40]
            raise _bad(where, f"unknown field (known: {', '.join(sorted(known))})")
        out: dict[str, Any] = {}
        for f in schema["fields"]:
            where = f"{path}.{f['name']}" if path else f["name"]
            if f["name"] in value:
                out[f["name"]] = self._value(f["type"], value[f["name"]], where, names)
            elif "default" in f:
                out[f["name"]] = copy.deepcopy(f["default"])
            else:
                raise _bad(where, "required field is missing")
        return out

    def _union(self, branches: list[Any], value: Any, path: str, names: dict[str, Any]) -> Any:
        if value is None:
            if "null" in branches:
                return None
            raise _bad(path, "must not be null")
        errors = []
        for branch in branches:
            if branch == "null":
                continue
            try:
                return self._value(branch, value, path, names)
            except Rejected as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _bad(path, f"matches none of {', '.join(_type_name(b) for b in branches)}")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_PRIMITIVE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, bytes | str),
}


def _check_text(value: str, path: str) -> None:
    """Avro strings are UTF-8: a lone surrogate (JSON "\\ud800") cannot be written."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _bad(path, f"not valid Unicode text (a lone surrogate at position {exc.start})") from None


def _primitive(kind: str, value: Any, path: str) -> Any:
    if not _PRIMITIVE_CHECKS[kind](value):
        raise _bad(path, f"expected {kind}, got {type(value).__name__}")
    if isinstance(value, str):
        _check_text(value, path)
    if kind == "bytes" and isinstance(value, str):
        return value.encode("utf-8")
    if kind in ("float", "double"):
        return float(value)
    return value


def to_json(value: Any) -> Any:
    """Decoded Avro values as plain JSON (timestamps ISO-8601 UTC, dates ISO, money as strings)."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value
