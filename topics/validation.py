"""The contract checks shared by every entry point: SDK, CLI, HTTP ingestion and processors.

Each failure raises `Rejected` with a reason from the bounded set and a detail naming the field.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from schemas.catalogue import AvroRecord, SchemaCatalogue
from schemas.convert import MAX_DEPTH, JsonConverter
from schemas.errors import Reason, Rejected
from topics.catalog import EVENT_TYPES
from topics.circle import Circle
from topics.clock import Clock
from topics.identifiers import PERSON_ID_RE, is_uuid, is_valid_id_number, is_valid_uscc, person_subject_id

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_FUTURE = timedelta(minutes=5)
CITY_KEYS = {"city", "lead_city", "source_city"}
CITY_LIST_KEYS = {"participating_cities", "affected_cities", "cities"}


def _render(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def loads_event(data: bytes | str) -> Any:
    """One event's JSON text as Python values, or `Rejected`: too large, not JSON, integers of more
    than 4,300 digits (Python's limit), or nested beyond the parser's recursion limit. (How deep an
    event may nest is checked with its contents, in `Validator.from_json`.)"""
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_PAYLOAD_BYTES:
        raise Rejected(Reason.PAYLOAD_TOO_LARGE, f"event is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        obj = json.loads(data)
    except RecursionError:
        raise Rejected(Reason.SCHEMA_INVALID, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise Rejected(Reason.SCHEMA_INVALID, f"not JSON: {str(exc)[:200]}") from None
    return obj


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse values nested deeper than `limit` (no event schema needs more than a few levels)."""
    level: list[Any] = [obj]
    for _ in range(limit + 1):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise Rejected(Reason.SCHEMA_INVALID, f"nested deeper than {limit} levels")


class Validator:
    def __init__(self, circle: Circle, catalogue: SchemaCatalogue, clock: Clock, person_salt: str) -> None:
        self.circle = circle
        self.person_salt = person_salt
        self.catalogue = catalogue
        self.clock = clock
        self._converter = JsonConverter(catalogue)

    def parse_json(self, event_type: str, data: bytes | str) -> AvroRecord:
        """Size check, JSON parse, schema conversion and contract checks of one JSON event."""
        return self.from_json(event_type, loads_event(data))

    def from_json(self, event_type: str, obj: Any) -> AvroRecord:
        kind = EVENT_TYPES.get(event_type)
        if kind is None:
            raise Rejected(Reason.UNKNOWN_SCHEMA, f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
        check_depth(obj)
        hash_person_ids(obj, self.person_salt)
        event = self._converter.convert(kind.schema, obj)
        self.check(event_type, event)
        return event

    def check(self, event_type: str, event: AvroRecord) -> None:
        """Contract checks of a schema-valid event (also run on decoded events by processors)."""
        meta = event["meta"]
        if meta["event_type"] != event_type:
            raise Rejected(
                Reason.WRONG_TOPIC,
                f"meta.event_type is {meta['event_type']!r}, expected {event_type!r}",
                "meta.event_type",
            )
        if not is_uuid(str(meta["event_id"])):
            raise Rejected(Reason.SCHEMA_INVALID, "meta.event_id is not a UUID", "meta.event_id")
        self._node(event, (), self.clock.now() + MAX_FUTURE)

    def _node(self, record: AvroRecord, path: tuple[str | int, ...], latest: datetime) -> None:
        """Check one record's fields, then its nested records; paths are rendered only for errors."""
        for key, value in record.items():
            if isinstance(value, str):
                if key in CITY_KEYS:
                    self._city(value, path + (key,))
                elif key == "uscc" and not is_valid_uscc(value):
                    where = _render(path + (key,))
                    raise Rejected(
                        Reason.INVALID_USCC, f"{where}: {value!r} is not a valid USCC (check character)", where
                    )
            elif isinstance(value, dict):
                self._node(value, path + (key,), latest)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if key in CITY_LIST_KEYS and isinstance(item, str):
                        self._city(item, path + (key, i))
                    elif isinstance(item, dict):
                        self._node(item, path + (key, i), latest)
            elif isinstance(value, datetime) and value > latest:
                where = _render(path + (key,))
                raise Rejected(
                    Reason.FUTURE_TIMESTAMP, f"{where} is {value.isoformat()}, more than 5 minutes in the future", where
                )
        if "subject_kind" in record:
            self._subject(record, _render(path))

    def _city(self, code: str, path: tuple[str | int, ...]) -> None:
        if not self.circle.is_member(code):
            where = _render(path)
            raise Rejected(Reason.UNKNOWN_CITY, f"{where}: {code!r} is not a member city of {self.circle.code}", where)

    @staticmethod
    def _subject(subject: AvroRecord, path: str) -> None:
        sid = subject.get("subject_id", "")
        where = f"{path}.subject_id" if path else "subject_id"
        if subject["subject_kind"] == "NATURAL_PERSON":
            if not PERSON_ID_RE.match(sid):
                raise Rejected(
                    Reason.INVALID_SUBJECT_ID,
                    f"{where}: a natural person is 'P' + 64 lowercase hex (salted SHA-256), never a clear ID number",
                    where,
                )
        elif not is_valid_uscc(sid):
            raise Rejected(Reason.INVALID_USCC, f"{where}: {sid!r} is not a valid USCC (check character)", where)


def hash_person_ids(obj: Any, salt: str, path: str = "") -> None:
    """Replace each subject's clear `id_number` by its salted subject_id, in place, before anything leaves.

    City systems may send a natural person as {"id_number": ..., "subject_kind": "NATURAL_PERSON"};
    the number is validated (GB 11643) and hashed here, so it never reaches the bus.
    """
    if isinstance(obj, dict):
        if "id_number" in obj:
            number = obj.pop("id_number")
            where = f"{path}.id_number" if path else "id_number"
            if not isinstance(number, str) or not is_valid_id_number(number):
                raise Rejected(Reason.INVALID_ID_NUMBER, f"{where}: not a valid 18-character ID number", where)
            obj["subject_id"] = person_subject_id(number, salt)
        for key, child in obj.items():
            hash_person_ids(child, salt, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, child in enumerate(obj):
            hash_person_ids(child, salt, f"{path}[{i}]")
