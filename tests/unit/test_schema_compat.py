"""`schemas check` compares the work tree with every earlier version in git history."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from schemas import compat
from schemas.catalogue import SCHEMA_DIR, SchemaCatalogue
from topics.catalog import EVENT_TYPES


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True
    )


def repo_with_history(tmp_path: Path) -> Path:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, schemas)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "v1")
    return schemas


def edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def test_current_schemas_are_compatible_with_history() -> None:
    checked, breaks = compat.check(SchemaCatalogue(), compat.historical_catalogues())
    assert breaks == []


def test_adding_an_optional_field_is_compatible(tmp_path: Path) -> None:
    schemas = repo_with_history(tmp_path)
    edit(
        schemas / "EmergencyAck.avsc",
        lambda s: s["fields"].append({"name": "note", "type": ["null", "string"], "default": None}),
    )
    checked, breaks = compat.check(SchemaCatalogue(schemas), compat.historical_catalogues(schemas))
    assert breaks == []
    assert checked == 1


def test_a_breaking_change_is_caught_with_its_field_path(tmp_path: Path) -> None:
    schemas = repo_with_history(tmp_path)
    # a new required field without a default: new readers cannot read old data
    edit(schemas / "EmergencyAck.avsc", lambda s: s["fields"].append({"name": "officer", "type": "string"}))
    git(tmp_path, "commit", "-qam", "v2")
    # and a shared type changes incompatibly in the work tree: every event breaks
    edit(schemas / "Meta.avsc", lambda s: s["fields"][2].update(type="int"))
    checked, breaks = compat.check(SchemaCatalogue(schemas), compat.historical_catalogues(schemas))
    assert any(b.schema == "EmergencyAck" and "/fields/6" in " ".join(b.locations) for b in breaks)
    assert any("/fields/0/type/fields/2" in " ".join(b.locations) for b in breaks)
    assert {b.schema for b in breaks} == {e.schema for e in EVENT_TYPES.values()}  # every event schema
