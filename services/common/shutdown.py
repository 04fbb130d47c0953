"""A stop flag set by SIGTERM or SIGINT, for the plain loops (`up`, the read-model worker)."""

from __future__ import annotations

import signal


class StopFlag:
    def __init__(self) -> None:
        self.stopping = False
        signal.signal(signal.SIGTERM, self.set)
        signal.signal(signal.SIGINT, self.set)

    def set(self, *_: object) -> None:
        self.stopping = True

    def __call__(self) -> bool:
        return self.stopping
