"""The base of the contract's typed events (schemas/events.py) and the way between them and the codec.

The codec decodes Avro into plain mappings (fastavro's form, `AvroRecord`); `typed` turns one into
its Struct, and `plain` turns a Struct back into the mapping the codec encodes.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from schemas.catalogue import AvroRecord

#: the Struct of each Avro record, by the record's name (`EventType.schema`); a Struct registers
#: itself by subclassing `Event`, so a family's module may declare its own
BY_SCHEMA: dict[str, type[Event]] = {}


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A record of the contract; immutable (use `msgspec.structs.replace` for a changed copy).
    A subclass is named as its Avro record."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BY_SCHEMA[cls.__name__] = cls


E = TypeVar("E", bound=Event)
_PASSED = (datetime, date, Decimal)


def typed(record: Any, kind: type[E]) -> E:
    """The decoded record (the codec's mapping) as its Struct; `msgspec.ValidationError` if it is
    not one (the codec's reader schema makes that a bug, not bad input)."""
    return msgspec.convert(record, kind)


def plain(event: Event) -> AvroRecord:
    """The Struct as the mapping the codec encodes: instants, dates and decimals kept as they are."""
    body: AvroRecord = msgspec.to_builtins(event, builtin_types=_PASSED)
    return body
