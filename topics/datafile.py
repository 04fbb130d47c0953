"""Reading the rules and data files: JSON, refused with the line and column when it cannot be parsed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError


def read_json(path: Path, what: str) -> Any:
    """The parsed file; a ConfigError naming the file and the line and column, or why it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from exc


def typed_field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`obj[key]` when `obj` is an object that has it and the value is a `kind`; a ConfigError at `where`
    naming the field otherwise (a bool is not an int)."""
    if not isinstance(obj, dict) or key not in obj:
        raise ConfigError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}.{key}: expected {names}, got {json.dumps(value, ensure_ascii=False)}")
    return value


def check_sources(raw: Any, required: Iterable[str], path: Path) -> dict[str, str]:
    """The `sources` of a rules file: every rule entry (by its dotted path) names the document and
    article it comes from. A ConfigError names the first entry without one, or a source for an
    entry the file does not have (a misspelt path)."""
    sources = raw.get("sources") if isinstance(raw, dict) else None
    if not isinstance(sources, dict):
        raise ConfigError(f"{path}: sources: missing; every rule entry names its source (document and article)")
    required = list(required)
    for key in required:
        value = sources.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: sources.{key}: the rule entry {key} names no source (document and article)")
    unknown = sorted(set(sources) - set(required))
    if unknown:
        raise ConfigError(f"{path}: sources.{unknown[0]}: names a source for no rule entry of this file")
    return {k: sources[k] for k in required}
