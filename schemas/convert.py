"""JSON <-> Avro values: a JSON event checked and converted to the record its schema describes (with
the path of the first bad field), and a decoded record back to JSON."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Context as DecimalContext
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

from schemas.catalogue import PRIMITIVES, AvroRecord, SchemaCatalogue, fullname
from schemas.errors import Reason, Rejected

#: the instants and dates an event may carry: wide enough for any real record, and far enough from
#: the ends of Python's calendar (years 1 to 9999) that no rule's arithmetic leaves it, and that a
#: timestamp-millis written here is always read back (year 1 at +08:00 is year 0 in UTC)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9001, 1, 1, tzinfo=UTC)  # exclusive
#: how deep an event's JSON may nest; the deepest schema needs 5 levels
MAX_DEPTH = 32

#: a JSON value, as `json.dumps` writes it (arrays and objects within it are only read)
Json: TypeAlias = "None | bool | int | float | str | Sequence[Json] | Mapping[str, Json]"
#: a JSON object being built: a document (AsyncAPI, JSON Schema) or a response body
JsonObject: TypeAlias = "dict[str, Json]"


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

    def convert(self, schema_name: str, value: Any) -> AvroRecord:
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

    def _record(self, schema: Mapping[str, Any], value: Any, path: str, names: dict[str, Any]) -> AvroRecord:
        if not isinstance(value, dict):
            raise _bad(path, f"expected an object ({schema['name']})")
        known = {f["name"] for f in schema["fields"]}
        extra = sorted(set(value) - known)
        if extra:
            where = f"{path}.{extra[0][:40]}" if path else extra[0][:40]
            raise _bad(where, f"unknown field (known: {', '.join(sorted(known))})")
        out: AvroRecord = {}
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
