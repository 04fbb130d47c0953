"""Rate-limited warnings and errors, so an outage writes a few lines a minute, not millions.

During a 7.5-minute broker outage one worker wrote 2.87 million ERROR lines (299 MB): the Kafka
client logs every failed reconnect and metadata attempt, some in loops without backoff. The
filter here lets one line through per distinct error and window; when the window is over, the next
line of that error that passes says how many were held back:

    Unable connect to node with id 1: ... (and 1234 more like this in the last 30 s)

"Distinct" is the logger, the level and the message template (`record.msg`, before its arguments
are filled in), so the same failure against different nodes or offsets counts as one error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

#: how long one distinct warning or error stays quiet after it was written
WINDOW = 30.0
#: distinct errors remembered; beyond it the ones whose window is over are forgotten
MAX_KEYS = 10_000

_DECIDED = "_tongcheng_rate_limited"  # set on a record once decided, so every handler agrees

Key = tuple[str, int, str]


class RateLimit(logging.Filter):
    """A handler filter: records at `level` and above pass once per key and `window` seconds.

    Attach one instance to every handler of the process (`install` does); a record seen by several
    handlers is decided once. Records below `level` are never held back or changed.
    """

    def __init__(
        self, window: float = WINDOW, level: int = logging.WARNING, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window = window
        self.level = level
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[Key, tuple[float, int]] = {}  # key -> (when it last passed, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        decided = getattr(record, _DECIDED, None)
        if decided is not None:
            return bool(decided)
        msg = record.msg if isinstance(record.msg, str) else str(record.msg)
        key = (record.name, record.levelno, msg)
        with self._lock:
            now = self._clock()
            passed, held = self._seen.get(key, (None, 0))
            allow = passed is None or now - passed >= self.window
            if allow:
                if len(self._seen) >= MAX_KEYS:
                    self._forget(now)
                self._seen[key] = (now, 0)
            else:
                assert passed is not None
                self._seen[key] = (passed, held + 1)
        if allow and held and passed is not None:
            suffix = f" (and {held} more like this in the last {now - passed:.0f} s)"
            if isinstance(record.msg, str):
                record.msg = record.msg + suffix  # the suffix has no %: the arguments still fit
            else:
                record.msg, record.args = record.getMessage() + suffix, None
        setattr(record, _DECIDED, allow)
        return allow

    def _forget(self, now: float) -> None:
        """Drop the keys whose window is over (their held-back counts go unreported)."""
        for key in [k for k, (passed, _) in self._seen.items() if now - passed >= self.window]:
            del self._seen[key]


_installed: RateLimit | None = None


def _handlers() -> Iterable[logging.Handler]:
    """Every handler a record can reach: the root's and those of loggers that keep their own."""
    yield from logging.root.handlers
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield from logger.handlers


def install(window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> RateLimit:
    """Rate-limit WARNING and above on every handler configured now; returns the filter.

    Call it once logging is configured: mode's Worker replaces the root handlers when it starts
    (`setup_logging` in `Worker.on_first_start`, then `on_setup_root_logger`), so a filter installed
    before that is lost. Calling it again attaches the same filter (and its counts) to new handlers;
    `window` and `clock` count only at the first call.
    """
    global _installed
    if _installed is None:
        _installed = RateLimit(window, clock=clock)
    for handler in _handlers():
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    return _installed


def uninstall() -> None:
    """Remove the filter from every handler (tests; a process that re-configures logging)."""
    global _installed
    if _installed is None:
        return
    for handler in _handlers():
        handler.removeFilter(_installed)
    _installed = None
