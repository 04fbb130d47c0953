"""Joint enforcement actions as the processors that consume them see them (credit turns a closed
action's findings into records, supervision counts it): an action closes once, however often its
CLOSED report is delivered."""

from __future__ import annotations

from typing import Protocol

from schemas.events import EnforcementAction


class Kept(Protocol):
    """What a processor keeps of an action it has seen: whether the action had reached CLOSED. A
    document kept only for CLOSED actions (the form before `closed` was stored) reads as True."""

    @property
    def closed(self) -> bool: ...


def was_closed(known: Kept | None) -> bool:
    """Whether an action had reached CLOSED, by what a processor keeps of it (`known`, None for an
    action it has not seen)."""
    return known is not None and known.closed


def closes(known: Kept | None, action: EnforcementAction) -> bool:
    """Whether the status report `action` closes its action: CLOSED, and the action was not before."""
    return action.status == "CLOSED" and not was_closed(known)
