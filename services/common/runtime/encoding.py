"""How a state document is stored: a format byte, then msgpack (msgspec) of what the table filed it as.

A stored value is `0x01` followed by the msgpack array [labels, due, document]:

- `labels`: the classes the document is counted under (its table's per-partition counts), or nil;
- `due`: the moment key under which the table's due index files it, or nil;
- `document`: the document, either as plain msgpack (maps keyed by field name) or, for a table with
  a `Layout`, as the layout's typed, positional form (no field names, enumerations as small ints).

Storing what a document was counted and filed as lets a later write take exactly that back out,
whatever the code that computes it has become meanwhile.

A value that begins with `{` is a document of the JSON format that came before; it is read as it
is (a document counted under nothing and filed nowhere).
"""

from __future__ import annotations

import json
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import msgspec

D = TypeVar("D")
S = TypeVar("S", bound=msgspec.Struct)

MSGPACK = 0x01
_LEGACY_JSON = ord("{")


class Layout(Protocol[D]):
    """A table's typed document form: `to_stored` maps a document to a msgspec-encodable value,
    `from_stored` maps the decoded value back; `stored_type` is what msgspec decodes into."""

    @property
    def stored_type(self) -> Any: ...

    def to_stored(self, doc: D) -> Any: ...

    def from_stored(self, stored: Any) -> D: ...

    def from_plain(self, doc: Any) -> D:
        """A document of the JSON format that came before (plain maps, dates as ISO strings)."""
        ...


class Typed(Generic[S]):
    """The layout of a table whose documents are one msgspec Struct type, stored as it is: a map of
    its fields (a document of the plain form with the same field names reads as the Struct), or an
    array where the Struct is `array_like`."""

    def __init__(self, kind: type[S]) -> None:
        self.kind = kind

    @property
    def stored_type(self) -> type[S]:
        return self.kind

    def to_stored(self, doc: S) -> S:
        return doc

    def from_stored(self, stored: S) -> S:
        return stored

    def from_plain(self, doc: Any) -> S:
        return msgspec.convert(doc, self.kind)


class Entry(NamedTuple):
    """A document as stored: the document, its labels and its due moment key."""

    doc: Any
    labels: tuple[str, ...] | None
    due: str | None


class Codec:
    """Encodes and decodes a table's entries, with its `Layout` if it has one."""

    def __init__(self, layout: Layout[Any] | None = None) -> None:
        self.layout = layout
        self._encoder = msgspec.msgpack.Encoder(uuid_format="bytes")
        doc_type = layout.stored_type if layout is not None else Any
        # a type chosen at run time (the layout's), which msgspec takes and mypy cannot check statically
        self._decoder = msgspec.msgpack.Decoder(tuple[tuple[str, ...] | None, str | None, doc_type])  # type: ignore[valid-type]
        self._due_decoder = msgspec.msgpack.Decoder(tuple[msgspec.Raw, str | None, msgspec.Raw])

    def encode(self, entry: Entry) -> bytes:
        doc = self.layout.to_stored(entry.doc) if self.layout is not None else entry.doc
        return bytes((MSGPACK,)) + self._encoder.encode((entry.labels, entry.due, doc))

    def decode(self, raw: bytes) -> Entry:
        kind = raw[0]
        if kind == MSGPACK:
            labels, due, doc = self._decoder.decode(memoryview(raw)[1:])
            return Entry(self.layout.from_stored(doc) if self.layout is not None else doc, labels, due)
        if kind == _LEGACY_JSON:
            doc = json.loads(raw)
            return Entry(self.layout.from_plain(doc) if self.layout is not None else doc, None, None)
        raise ValueError(f"a stored value of unknown format {kind:#04x}")

    def due_of(self, raw: bytes) -> str | None:
        """The due moment key a stored value was filed under, without decoding its document."""
        if raw[0] != MSGPACK:
            return None
        return self._due_decoder.decode(memoryview(raw)[1:])[1]
