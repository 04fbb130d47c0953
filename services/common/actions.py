"""Joint enforcement actions as the processors that consume them see them (credit turns a closed
action's findings into records, supervision counts it): an action closes once, however often its
CLOSED report is delivered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def was_closed(known: Mapping[str, Any] | None) -> bool:
    """Whether an action had reached CLOSED, by what a processor keeps of it (`known`, None for an
    action it has not seen). A record without `closed` is one kept only for a CLOSED action."""
    return known is not None and bool(known.get("closed", True))


def closes(known: Mapping[str, Any] | None, action: Mapping[str, Any]) -> bool:
    """Whether the status report `action` closes its action: CLOSED, and the action was not before."""
    return action["status"] == "CLOSED" and not was_closed(known)
