"""Reading a circle file: JSON whose every value knows its line, and the checks of each field.

A circle is data (DESIGN.md section 1): one file per circle names its cities, borders, rivers,
topic prefix, time zone, signing keys and the public plan it comes from. An operator who mistypes
one of them gets the file, the line and the field (`cities[2].code`), not a traceback.
"""

from __future__ import annotations

import bisect
import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]  # typeshed leaves it out; json's own parser uses it
from pathlib import Path
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
#: GB/T 2260 province-level prefixes (the first two digits of every division code)
PROVINCES = frozenset(str(p) for p in (11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44))
PROVINCES |= {str(p) for p in (45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82)}
DIVISION_CODE = re.compile(r"\d{6}")
#: a topic prefix: a topic name is `<prefix>.<domain>.<event>.v1`, so no dot
PREFIX = re.compile(r"[a-z][a-z0-9-]{1,31}")
HAN = re.compile(r"[\u3400-\u9fff]")
TOP_LEVEL = frozenset({"circle", "topic_prefix", "name", "name_zh", "timezone", "source", "comment"})
TOP_LEVEL |= {"cities", "borders", "rivers", "keys"}
CITY_FIELDS = frozenset({"code", "name", "name_zh", "province", "province_zh", "parent"})
RIVER_FIELDS = frozenset({"name", "name_zh", "flows"})
SOURCE_FIELDS = frozenset({"title", "issuer", "document_no", "date", "section", "url", "note"})

Path_ = tuple[str | int, ...]


class FieldError(ValueError):
    """A bad field: its path in the file and what is wrong with it."""

    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(the file)"


class Located:
    """A parsed JSON document and the line on which each of its values begins."""

    def __init__(self, text: str) -> None:
        self.value = json.loads(text)  # raises JSONDecodeError with the line and column
        self._text = text
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self.lines: dict[Path_, int] = {}
        self._walk(0, ())

    def line(self, path: Path_) -> int:
        """The line of `path`, or of its nearest parent that exists (a missing field: its object)."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def _at(self, i: int) -> int:
        return bisect.bisect_left(self._newlines, i) + 1

    def _skip(self, i: int) -> int:
        blank = _WS.match(self._text, i)
        assert blank is not None  # a run of blanks, maybe empty: it matches anywhere
        return blank.end()

    def _walk(self, i: int, path: Path_) -> int:
        """Record where the value at `i` begins, and return where it ends (the text is valid JSON)."""
        text = self._text
        i = self._skip(i)
        self.lines[path] = self._at(i)
        if text[i] == "{":
            i = self._skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                key, i = scanstring(text, self._skip(i) + 1)
                i = self._skip(i) + 1  # the colon
                i = self._skip(self._walk(i, (*path, key)))
                if text[i] == "}":
                    return i + 1
                i += 1  # the comma
        if text[i] == "[":
            i = self._skip(i + 1)
            if text[i] == "]":
                return i + 1
            n = 0
            while True:
                i = self._skip(self._walk(i, (*path, n)))
                n += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        if text[i] == '"':
            end: int = scanstring(text, i + 1)[1]
            return end
        return json.JSONDecoder().raw_decode(text, i)[1]


def read(file: Path) -> Located:
    """The located document; FieldError-free: a syntax error is a ValueError naming line and column."""
    text = file.read_text(encoding="utf-8")
    try:
        return Located(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}") from exc


# --- field checks ------------------------------------------------------------------------------


def text_field(obj: dict[str, Any], key: str, path: Path_, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        what = "missing" if key not in obj else f"expected non-empty text, got {value!r}"
        raise FieldError((*path, key), what)
    return value


def check_keys(obj: Any, allowed: frozenset[str], path: Path_, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FieldError(path, f"expected {what} (a JSON object), got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise FieldError((*path, unknown[0]), f"unknown field (known: {', '.join(sorted(allowed))})")
    return obj


def check_code(value: Any, path: Path_) -> str:
    if not isinstance(value, str) or not DIVISION_CODE.fullmatch(value):
        raise FieldError(path, f"{value!r} is not a GB/T 2260 division code (six digits, as text)")
    if value[:2] not in PROVINCES:
        raise FieldError(path, f"{value!r} begins with {value[:2]}, which is no GB/T 2260 province")
    return value


def check_city(obj: Any, path: Path_) -> dict[str, Any]:
    city = check_keys(obj, CITY_FIELDS, path, "a city {code, name, name_zh, province}")
    code = check_code(city.get("code"), (*path, "code"))
    text_field(city, "name", path)
    name_zh = text_field(city, "name_zh", path)
    if not HAN.search(str(name_zh)):
        raise FieldError((*path, "name_zh"), f"{name_zh!r} has no Chinese characters; give the city's Chinese name")
    text_field(city, "province", path)
    parent = city.get("parent")
    if code[4:] != "00":  # a county-level division: its prefecture is named
        want = code[:4] + "00"
        if parent != want:
            raise FieldError((*path, "parent"), f"{code} is a county-level division of {want}; parent must be {want!r}")
    elif parent is not None:
        raise FieldError((*path, "parent"), f"{code} is a prefecture-level city; it has no parent")
    return city


def check_pair(pair: Any, members: dict[str, Any], path: Path_) -> tuple[str, str]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise FieldError(path, f"expected a pair of city codes [a, b], got {pair!r}")
    for j, code in enumerate(pair):
        if code not in members:
            raise FieldError((*path, j), f"{code!r} is not a member city of this file")
    if pair[0] == pair[1]:
        raise FieldError(path, f"a city cannot border or flow into itself: {pair!r}")
    return pair[0], pair[1]
