"""The one codec of the contract: Avro records in the Confluent wire format, with the schemas of the
catalogue (`schemas/catalogue.py`) and their ids from the registry.

Wire format (Confluent): byte 0 = 0, bytes 1-4 = schema id (big-endian), then Avro binary.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import fastavro

from schemas.catalogue import AvroRecord, SchemaCatalogue
from schemas.errors import Reason, Rejected

MAGIC = 0
_HEADER = struct.Struct(">bI")


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

    def decode(self, data: bytes | None, schema_name: str | None = None) -> AvroRecord:
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
