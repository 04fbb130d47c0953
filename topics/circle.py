"""The circle's roster, borders and rivers, loaded from one data file (DESIGN.md section 1)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from topics import circlefile
from topics.localtime import DEFAULT_TIMEZONE, zone

DATA_DIR = Path(__file__).resolve().parent / "data"


class CircleFileError(ValueError):
    """The circle data file is malformed or inconsistent."""


@dataclass(frozen=True)
class City:
    code: str
    name: str
    name_zh: str
    province: str
    parent: str | None = None
    province_zh: str = ""


#: keys a city may have in the roster at once: the current one and, during a rotation, the next
MAX_KEYS_PER_CITY = 2
#: The bus services that publish input records they derive, and the input types they may sign
#: (credit: the records of a CLOSED enforcement action). Each signs them with its own roster key,
#: listed under `service:<name>`; its signature counts on no other type.
SIGNING_SERVICES: dict[str, tuple[str, ...]] = {"credit": ("credit.record",)}


def service_signer(service: str) -> str:
    """The roster name of a bus service's key (in place of a city code)."""
    return f"service:{service}"


def key_id(city: str, public_key: bytes) -> str:
    """`<city>:<first 16 hex digits of SHA-256 of the raw 32-byte Ed25519 public key>`."""
    return f"{city}:{hashlib.sha256(public_key).hexdigest()[:16]}"


@dataclass(frozen=True)
class RosterKey:
    """A city's Ed25519 public key as the roster lists it."""

    city: str
    kid: str
    public_key: bytes  # raw, 32 bytes
    added_at: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "city": self.city,
            "kid": self.kid,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "added_at": self.added_at,
        }


def parse_keys(entries: object, where: str) -> list[RosterKey]:
    """Roster key entries {"city", "public_key" (base64 of the raw 32 bytes), "kid"?, "added_at"?};
    a kid, when given, must be the one derived from the key."""
    if not isinstance(entries, list):
        raise CircleFileError(f"{where}: keys must be a list of {{city, public_key}} objects")
    out = []
    for i, e in enumerate(entries):
        try:
            city = str(e["city"])
            raw = base64.b64decode(e["public_key"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise CircleFileError(f"{where}: keys[{i}] is malformed: {exc!r}") from exc
        if len(raw) != 32:
            raise CircleFileError(f"{where}: keys[{i}] public_key is {len(raw)} bytes, an Ed25519 key has 32")
        kid = key_id(city, raw)
        if e.get("kid", kid) != kid:
            raise CircleFileError(f"{where}: keys[{i}] kid {e['kid']!r} does not match its key (expected {kid})")
        out.append(RosterKey(city, kid, raw, str(e.get("added_at", ""))))
    return out


def read_keys_file(path: Path) -> list[RosterKey]:
    """An installation's roster keys file ({"keys": [...]}); no file means no keys."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CircleFileError(f"{path}: cannot read roster keys file: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CircleFileError(f"{path}: roster keys file is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise CircleFileError(f'{path}: expected {{"keys": [...]}}')
    return parse_keys(raw.get("keys", []), str(path))


@dataclass(frozen=True)
class Circle:
    code: str
    name: str
    cities: dict[str, City]
    borders: dict[str, frozenset[str]]
    downstream_edges: dict[str, frozenset[str]]
    #: each city's valid public keys, oldest first (at most MAX_KEYS_PER_CITY)
    keys: dict[str, tuple[RosterKey, ...]] = field(default_factory=dict)
    #: the zone of the circle's calendar: every date rule takes its local dates here (DESIGN.md section 5, Time)
    tz: ZoneInfo = field(default_factory=lambda: zone(DEFAULT_TIMEZONE))
    name_zh: str = ""
    #: topic names are `<topic_prefix>.<domain>.<event>.v1` (the circle code unless the file says otherwise)
    topic_prefix: str = ""
    #: the public plan the roster, borders and rivers come from: title, issuer, document_no, date, section
    source: dict[str, str] = field(default_factory=dict)

    def keys_of(self, city: str) -> tuple[RosterKey, ...]:
        return self.keys.get(city, ())

    def all_keys(self) -> list[RosterKey]:
        return [k for ks in self.keys.values() for k in ks]

    def with_keys(self, keys: Iterable[RosterKey], where: str = "roster") -> Circle:
        """This circle with `keys` added to its roster (a kid listed twice counts once)."""
        merged: dict[str, dict[str, RosterKey]] = {c: {k.kid: k for k in ks} for c, ks in self.keys.items()}
        for k in keys:
            if k.city not in self.signers:
                raise CircleFileError(f"{where}: key {k.kid} is for {k.city}, not a member city or a signing service")
            merged.setdefault(k.city, {}).setdefault(k.kid, k)
        for city, ks in merged.items():
            if len(ks) > MAX_KEYS_PER_CITY:
                raise CircleFileError(
                    f"{where}: city {city} has {len(ks)} keys ({', '.join(ks)}); at most {MAX_KEYS_PER_CITY} "
                    "are valid at once (retire one: `tongcheng keys retire CITY KID`)"
                )
        return replace(self, keys={c: tuple(ks.values()) for c, ks in merged.items() if ks})

    @property
    def signers(self) -> list[str]:
        """Who holds roster keys: the member cities, then the bus services that sign what they derive."""
        return [*self.cities, *(service_signer(s) for s in SIGNING_SERVICES)]

    def is_member(self, code: str) -> bool:
        return code in self.cities

    def province_of(self, code: str) -> str:
        return self.cities[code].province

    def neighbours(self, code: str) -> frozenset[str]:
        return self.borders.get(code, frozenset())

    def downstream(self, code: str) -> list[str]:
        """Every city reached by following the water downstream from `code`, transitively."""
        seen: list[str] = []
        queue = deque(sorted(self.downstream_edges.get(code, ())))
        while queue:
            city = queue.popleft()
            if city in seen or city == code:
                continue
            seen.append(city)
            queue.extend(sorted(self.downstream_edges.get(city, ())))
        return seen

    @property
    def codes(self) -> list[str]:
        return list(self.cities)


def load_circle(path: Path | str | None = None, circle: str = "njmc", keys_file: Path | None = None) -> Circle:
    """Read and check a circle file, with the public keys it lists inline (`keys`) and those of the
    installation's roster keys file `keys_file`; raise CircleFileError naming the file, the line and
    the field of the first bad entry."""
    file = Path(path) if path else circle_path(circle)
    try:
        doc = circlefile.read(file)
    except (OSError, ValueError) as exc:
        raise CircleFileError(f"{file}: cannot read circle file: {exc}") from exc
    try:
        loaded = _from_document(doc.value, str(file))
    except circlefile.FieldError as exc:
        where = circlefile.dotted(exc.path)
        raise CircleFileError(f"{file}: line {doc.line(exc.path)}: {where}: {exc.message}") from exc
    if keys_file is None:
        return loaded
    return loaded.with_keys(read_keys_file(keys_file), str(keys_file))


def circle_path(circle: str) -> Path:
    """The shipped file of a circle code (topics/data/<code>.circle.json)."""
    return DATA_DIR / f"{circle}.circle.json"


def identity(path: Path) -> tuple[str, str]:
    """A circle file's code and topic prefix, for the settings; CircleFileError when it has none."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        code = raw["circle"]
        prefix = raw.get("topic_prefix", code)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CircleFileError(f"{path}: cannot read the circle code and topic prefix: {exc!r}") from exc
    return str(code), str(prefix)


def _from_document(raw: Any, file: str) -> Circle:
    F = circlefile.FieldError
    circlefile.check_keys(raw, circlefile.TOP_LEVEL, (), "a circle")
    code = circlefile.text_field(raw, "circle", ())
    prefix = raw.get("topic_prefix", code)
    for key, value in (("circle", code), ("topic_prefix", prefix)):
        if not isinstance(value, str) or not circlefile.PREFIX.fullmatch(value):
            raise F((key,), f"{value!r}: lowercase letters, digits and '-', 2 to 32, starting with a letter")
    name = circlefile.text_field(raw, "name", ())
    name_zh = circlefile.text_field(raw, "name_zh", ())
    source = circlefile.check_keys(raw.get("source"), circlefile.SOURCE_FIELDS, ("source",), "the source document")
    for key in ("title", "issuer", "date"):
        circlefile.text_field(source, key, ("source",))
    entries = raw.get("cities")
    if not isinstance(entries, list) or not entries:
        raise F(("cities",), "expected a non-empty list of cities")
    cities: dict[str, City] = {}
    for i, entry in enumerate(entries):
        c = circlefile.check_city(entry, ("cities", i))
        if c["code"] in cities:
            raise F(("cities", i, "code"), f"{c['code']} is listed twice")
        cities[c["code"]] = City(
            c["code"], c["name"], c["name_zh"], c["province"], c.get("parent"), c.get("province_zh", c["province"])
        )
    borders: dict[str, set[str]] = {c: set() for c in cities}
    pairs = raw.get("borders", [])
    if not isinstance(pairs, list):
        raise F(("borders",), "expected a list of [city, city] pairs")
    for i, pair in enumerate(pairs):
        a, b = circlefile.check_pair(pair, cities, ("borders", i))
        borders[a].add(b)
        borders[b].add(a)
    flows: dict[str, set[str]] = {c: set() for c in cities}
    rivers = raw.get("rivers", [])
    if not isinstance(rivers, list):
        raise F(("rivers",), "expected a list of rivers {name, name_zh, flows}")
    for i, river in enumerate(rivers):
        circlefile.check_keys(river, circlefile.RIVER_FIELDS, ("rivers", i), "a river {name, name_zh, flows}")
        circlefile.text_field(river, "name", ("rivers", i))
        if not isinstance(river.get("flows"), list):
            raise F(("rivers", i, "flows"), "expected a list of [upstream, downstream] pairs")
        for j, pair in enumerate(river["flows"]):
            up, down = circlefile.check_pair(pair, cities, ("rivers", i, "flows", j))
            flows[up].add(down)
    tz_name = raw.get("timezone", DEFAULT_TIMEZONE)
    try:
        if not isinstance(tz_name, str):
            raise ValueError(f"expected an IANA zone name such as {DEFAULT_TIMEZONE!r}, got {tz_name!r}")
        tz = zone(tz_name)
    except ValueError as exc:
        raise F(("timezone",), str(exc)) from exc
    try:
        keys = parse_keys(raw.get("keys", []), f"{file}: keys")
    except CircleFileError as exc:
        raise F(("keys",), str(exc).split(": keys: ", 1)[-1]) from exc
    return Circle(
        code=str(code),
        name=str(name),
        cities=cities,
        borders={k: frozenset(v) for k, v in borders.items()},
        downstream_edges={k: frozenset(v) for k, v in flows.items()},
        tz=tz,
        name_zh=str(name_zh),
        topic_prefix=str(prefix),
        source=dict(source),
    ).with_keys(keys, file)
