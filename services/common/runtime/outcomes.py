"""What a handler takes and what became of the input records: the consumed record, the handler's
verdict, the outcomes counted, and the progress document each input partition keeps in the state
(`tables.Progress`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, Protocol, TypedDict, TypeVar

from schemas.structs import Event
from topics.dlq import Consumed

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


class Record(Consumed, Protocol):
    """One consumed record, as aiokafka's ConsumerRecord carries it (aiokafka is unannotated)."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


E = TypeVar("E", bound=Event)
#: what a processor does with one decoded input event (the Struct of its type): the outcome to count
Handle = Callable[[Record, E], Awaitable[Verdict]]
OnBatch = Callable[[list[Record]], Awaitable[None]]
