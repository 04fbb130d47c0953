"""FULL_TRANSITIVE compatibility of the schemas against every earlier version in git history.

Each schema in the work tree must be able to read every earlier version's data and be read by
every earlier version (Apache Avro's reader/writer checker, both directions).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas.catalogue import SCHEMA_DIR, SchemaCatalogue


@dataclass(frozen=True)
class Break:
    schema: str
    commit: str
    direction: str  # "new reads old" or "old reads new"
    locations: tuple[str, ...]
    messages: tuple[str, ...]

    def __str__(self) -> str:
        where = ", ".join(self.locations)
        why = "; ".join(self.messages)
        return f"{self.schema}: incompatible with version at {self.commit[:10]} ({self.direction}) at {where}: {why}"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def _repo_root(directory: Path) -> Path | None:
    try:
        return Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def historical_catalogues(directory: Path = SCHEMA_DIR) -> list[tuple[str, SchemaCatalogue]]:
    """(commit, catalogue) for every commit that changed the schema directory, newest first."""
    root = _repo_root(directory)
    if root is None:
        return []
    rel = directory.resolve().relative_to(root.resolve()).as_posix()
    try:
        commits = _git(root, "log", "--format=%H", "--", rel).split()
    except subprocess.CalledProcessError:
        return []  # no commits yet
    out = []
    for commit in commits:
        names = [n for n in _git(root, "ls-tree", "--name-only", f"{commit}:{rel}").split() if n.endswith(".avsc")]
        texts = {n: _git(root, "show", f"{commit}:{rel}/{n}") for n in names}
        try:
            out.append((commit, SchemaCatalogue(texts)))
        except (ValueError, KeyError):
            continue  # a commit whose schemas never parsed cannot have been registered
    return out


def _check(reader: str, writer: str) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro's is unannotated
    result = checker.get_compatibility(avro.schema.parse(reader), avro.schema.parse(writer))
    ok = result.compatibility is SchemaCompatibilityType.compatible
    return ok, tuple(sorted(result.locations)), tuple(sorted(result.messages))


def check(current: SchemaCatalogue, history: list[tuple[str, SchemaCatalogue]]) -> tuple[int, list[Break]]:
    """Returns (number of pairs checked, breaks)."""
    breaks: list[Break] = []
    checked = 0
    for name in current.event_schemas:
        new = current.text(name)
        seen: set[str] = {json.dumps(json.loads(new), sort_keys=True)}
        for commit, old_catalogue in history:
            if name not in old_catalogue.event_schemas:
                continue
            old = old_catalogue.text(name)
            canonical = json.dumps(json.loads(old), sort_keys=True)
            if canonical in seen:
                continue
            seen.add(canonical)
            checked += 1
            for direction, reader, writer in (("new reads old", new, old), ("old reads new", old, new)):
                ok, locations, messages = _check(reader, writer)
                if not ok:
                    breaks.append(Break(name, commit, direction, locations, messages))
    return checked, breaks
