"""Shared fixtures. Integration tests run against one real local broker and registry per session."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.clock import ManualClock

EXAMPLES = Path(__file__).resolve().parent.parent / "topics" / "examples"


def example(event_type: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{event_type}.json").read_text(encoding="utf-8"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
