"""The measure catalogue of the joint reward-and-punishment lists (`topics/data/measures.json`).

A list entry on `sanction.list` names its measures by code; the catalogue says what each one is,
its legal basis and the subject kinds it applies to. The sanctions processor checks its list rules
against it (services/sanctions/rules.py), and a city's inbox (consumers/inbox.py) shows a measure's
description and legal basis from it: one file, read by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from schemas.errors import ConfigError
from topics.datafile import read_json, typed_field

MEASURES_FILE = Path(__file__).resolve().parent / "data" / "measures.json"
SUBJECT_KINDS = frozenset(
    ["ENTERPRISE", "INDIVIDUAL_BUSINESS", "SOCIAL_ORG", "PUBLIC_INSTITUTION", "GOVERNMENT_ORGAN", "NATURAL_PERSON"]
)


@dataclass(frozen=True)
class Measure:
    code: str
    description: str
    legal_basis: str
    subject_kinds: frozenset[str]


def load_measures(path: Path = MEASURES_FILE) -> dict[str, Measure]:
    raw = read_json(path, "measure catalogue")
    out: dict[str, Measure] = {}
    for i, item in enumerate(typed_field(raw, "measures", list, str(path))):
        where = f"{path}: measures[{i}]"
        code = typed_field(item, "code", str, where)
        if code in out:
            raise ConfigError(f"{where}.code: measure {code!r} is defined twice")
        kinds = typed_field(item, "subject_kinds", list, where)
        unknown = sorted(set(kinds) - SUBJECT_KINDS)
        if unknown or not kinds:
            raise ConfigError(f"{where}.subject_kinds: unknown subject kind {unknown} (known: {sorted(SUBJECT_KINDS)})")
        basis = typed_field(item, "legal_basis", str, where).strip()
        if not basis:
            raise ConfigError(f"{where}.legal_basis: a measure needs its legal basis")
        out[code] = Measure(code, typed_field(item, "description", str, where), basis, frozenset(kinds))
    if not out:
        raise ConfigError(f"{path}: the catalogue has no measures")
    return out


@cache
def catalogue() -> dict[str, Measure]:
    """The shipped catalogue, read once per process."""
    return load_measures()
