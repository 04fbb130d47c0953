"""Reading the rules and data files: JSON, refused with the line and column when it cannot be parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.errors import ConfigError


def read_json(path: Path, what: str) -> Any:
    """The parsed file; a ConfigError naming the file and the line and column, or why it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from exc
