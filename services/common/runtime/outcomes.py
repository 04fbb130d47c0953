"""What became of the input records: a handler's verdict, the outcomes counted, and the progress
document each input partition keeps in the state (`tables.Progress`)."""

from __future__ import annotations

from typing import Literal, TypedDict

#: what a handler makes of a decodable record (services/common/runtime/service.py, `Handle`)
Verdict = Literal["applied", "duplicate"]
#: what became of an input record: a verdict, or refused (dead-lettered or, on an accepted stream, counted)
Outcome = Literal["applied", "duplicate", "rejected"]
OUTCOMES: tuple[Outcome, ...] = ("applied", "duplicate", "rejected")


class ProgressDoc(TypedDict):
    """Where one input partition stands: the next offset to process and what the records before it
    came to (consumed = applied + duplicate + rejected), with the rejections by reason."""

    offset: int
    consumed: int
    applied: int
    duplicate: int
    rejected: int
    reasons: dict[str, int]
