"""The clock every time rule reads. Production uses the wall clock; tests inject their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


class FileClock:
    """A clock another process can move: the time is read from a file (ISO-8601 with offset).

    It lets a test or a drill drive deadlines and expiry of running workers without sleeping.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime = -1.0
        self._value = datetime.now(UTC)

    def now(self) -> datetime:
        import os

        try:
            mtime = os.stat(self.path).st_mtime
            if mtime != self._mtime:
                with open(self.path, encoding="utf-8") as f:
                    self._value = datetime.fromisoformat(f.read().strip())
                self._mtime = mtime
        except (OSError, ValueError):
            pass  # keep the last good reading
        return self._value
