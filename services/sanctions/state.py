"""A subject's list entry as the sanctions processor keeps it: frozen msgspec Structs.

The `entries` table stores each entry as msgpack of `ListEntry`, a map keyed by field name. The
field names are those of the plain documents stored before the entry was typed, and each field a
document may lack has the default those documents were read with, so a stored document of either
form reads as a `ListEntry` (instants and dates stored as ISO strings decode as well).

A rule never changes an entry: it returns a new one (`msgspec.structs.replace`), and the dicts an
entry holds are replaced, never updated in place.
"""

from __future__ import annotations

import builtins
from datetime import date, datetime

import msgspec

from schemas.events import FeedbackOutcome, ListingStatus, ListKind, Measure


class OutcomeReport(msgspec.Struct, frozen=True, kw_only=True):
    """The newest outcome a city reported on one measure of a listing."""

    outcome: FeedbackOutcome
    reported_at: datetime
    list_revision: int
    event_id: str = ""  # of the report; orders two reports of the same instant ("" before ids were kept)


class CityTracking(msgspec.Struct, frozen=True, kw_only=True):
    """One member city's feedback on a listing."""

    #: the newest outcome per measure code
    outcomes: dict[str, OutcomeReport] = {}
    #: when the city first answered with a counted outcome (the earliest such report)
    answered_at: datetime | None = None
    #: when the overdue alert was raised for the city (once per listing)
    alerted_at: datetime | None = None


class ListEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's entry: the listing (what `sanction.list` says) and its feedback tracking
    (what `sanction.tracking` says); services/sanctions/rules.py and feedback.py."""

    subject_id: str
    name: str
    list: ListKind
    status: ListingStatus
    measures: builtins.list[Measure]
    reasons: builtins.list[str]  # record_ids, newest first
    initiated_by: str
    effective_from: datetime
    #: the last day of publicity of the listing's reasons; None while one runs until revoked
    expires_at: date | None = None
    revision: int
    removal_reason: str | None = None
    #: each reason's last day of publicity (None: until revoked), to say why a listing ended
    reason_ends: dict[str, date | None] = {}
    #: the first local day the rule no longer holds on the reasons alone (the FOCUS window), and
    #: the reasons it counts, as (decision date, city): what the sweep needs to end the listing
    leaves_on: date | None = None
    window_reasons: dict[str, tuple[date, str]] = {}
    #: the revision of the newest credit profile applied (older and equal ones are duplicates)
    profile_revision: int = 0
    # --- feedback tracking (services/sanctions/feedback.py) ---
    #: the revision at which the listing began (None: not tracked yet, read as `revision`)
    listed_revision: int | None = None
    #: the end of the feedback window; None when the list is not tracked
    due_at: datetime | None = None
    feedback: dict[str, CityTracking] = {}  # by city
    #: when the listing was removed
    closed_at: datetime | None = None
    #: + 1 on every change of the tracking, so that readers keep the newest
    tracking_version: int = 0
