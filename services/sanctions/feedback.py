"""The initiate–respond–feedback loop, as pure functions over a list entry (services/sanctions/state.py).

Every member city owes at least one counted outcome (APPLIED or HIT by default) on each listing
of a tracked list (BLACK by default) within the window (5 days by default) from the listing's
start. The entry carries the tracking:

- `listed_revision`: the revision at which the listing began; feedback on any revision from
  there to the current one counts, feedback on an earlier or later revision is stale;
- `due_at`: the end of the window (None when the list is not tracked);
- `feedback`: per city, the newest outcome per measure, when the city first answered with a
  counted outcome, and when an overdue alert was raised for it;
- `closed_at`: when the listing was removed;
- `tracking_version`: + 1 on every change, so readers keep the newest.

A city's status on a listing is ANSWERED (a counted outcome by the deadline), LATE (after it),
OVERDUE (none, and the deadline has passed), CLOSED (none, and the listing was removed before the
deadline) or PENDING. Its feedback ratio is ANSWERED over ANSWERED + LATE + OVERDUE.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from msgspec.structs import replace

from schemas.errors import Reason, Rejected
from schemas.events import CityFeedback, FeedbackStatus, MeasureOutcome, Meta, SanctionFeedback, SanctionTracking
from services.sanctions.state import CityTracking, ListEntry, OutcomeReport

#: a city that has not reported on a listing yet
_SILENT = CityTracking()


def track(prev: ListEntry | None, entry: ListEntry, now: datetime, window_days: int, lists: Iterable[str]) -> ListEntry:
    """`entry` (the next revision of `prev`) with its feedback tracking carried over or begun."""
    version = (prev.tracking_version if prev is not None else 0) + 1
    if entry.status == "REMOVED":
        return replace(entry, closed_at=now, tracking_version=version)
    if prev is not None and prev.status == "LISTED" and prev.list == entry.list:  # the listing continues
        return replace(
            entry,
            listed_revision=prev.listed_revision,
            due_at=prev.due_at,
            feedback=prev.feedback,
            closed_at=None,
            tracking_version=version,
        )
    due = now + timedelta(days=window_days) if entry.list in set(lists) else None
    return replace(
        entry, listed_revision=entry.revision, due_at=due, feedback={}, closed_at=None, tracking_version=version
    )


def record(entry: ListEntry | None, fb: SanctionFeedback, counted: frozenset[str]) -> ListEntry | None:
    """The entry with one city's feedback applied; None when it changes nothing (a redelivery or
    an older report). Raises Rejected for feedback that cannot be accepted."""
    subject, city, revision = fb.subject_id, fb.city, fb.list_revision
    if fb.meta.source_city != city:
        raise Rejected(
            Reason.SOURCE_CITY_MISMATCH,
            f"feedback for city {city} was sent by city {fb.meta.source_city}",
            "city",
        )
    if entry is None:
        raise Rejected(Reason.UNKNOWN_SUBJECT, f"{subject} has no list entry", "subject_id")
    if entry.status != "LISTED":
        raise Rejected(
            Reason.STALE_REVISION,
            f"{subject} was removed from the {entry.list} list at revision {entry.revision}",
            "list_revision",
        )
    first = entry.listed_revision if entry.listed_revision is not None else entry.revision
    if not first <= revision <= entry.revision:
        raise Rejected(
            Reason.STALE_REVISION,
            f"list_revision {revision} is not of the current {entry.list} listing of {subject} "
            f"(revisions {first} to {entry.revision})",
            "list_revision",
        )
    code = fb.measure_code
    codes = [m.code for m in entry.measures if city in m.applies_in]
    if code not in codes:
        raise Rejected(
            Reason.UNKNOWN_MEASURE,
            f"{code} is not a measure of {subject}'s listing in city {city} (measures: {', '.join(codes)})",
            "measure_code",
        )
    mine = entry.feedback.get(city) or _SILENT
    stored = mine.outcomes.get(code)
    answered = mine.answered_at
    # the newest outcome per measure stands (at the same instant, the greater event_id: a total order
    # that does not depend on arrival); the earliest counted outcome answers, whichever arrived first
    event_id = fb.meta.event_id or ""
    newer = stored is None or (stored.reported_at, stored.event_id or "") < (fb.reported_at, event_id)
    earlier = fb.outcome in counted and (answered is None or fb.reported_at < answered)
    if not newer and not earlier:
        return None
    outcomes = mine.outcomes
    if newer:
        report = OutcomeReport(
            outcome=fb.outcome, reported_at=fb.reported_at, list_revision=revision, event_id=event_id
        )
        outcomes = {**outcomes, code: report}
    mine = CityTracking(
        outcomes=outcomes, answered_at=fb.reported_at if earlier else answered, alerted_at=mine.alerted_at
    )
    return replace(
        entry,
        listed_revision=first,
        feedback={**entry.feedback, city: mine},
        tracking_version=entry.tracking_version + 1,
    )


def status(entry: ListEntry, city: str, now: datetime) -> FeedbackStatus:
    mine = entry.feedback.get(city)
    answered = mine.answered_at if mine is not None else None
    due, closed = entry.due_at, entry.closed_at
    if answered is not None:
        return "LATE" if due is not None and answered > due else "ANSWERED"
    if due is None:
        return "PENDING" if closed is None else "CLOSED"
    if closed is not None and closed < due:
        return "CLOSED"
    # the window includes its last instant: an answer exactly at `due` is in time, so a silent city
    # is OVERDUE only after it
    return "OVERDUE" if now > due else "PENDING"


def overdue(entry: ListEntry, now: datetime, cities: Iterable[str]) -> list[str]:
    """Cities to alert for on this listing now: past the deadline without a counted outcome by it,
    and not yet alerted. Each city is alerted once per listing."""
    due = entry.due_at
    if due is None or now <= due or entry.listed_revision is None:
        return []
    closed = entry.closed_at
    if closed is not None and closed < due:
        return []
    out = []
    for city in cities:
        mine = entry.feedback.get(city) or _SILENT
        answered = mine.answered_at
        if mine.alerted_at is None and (answered is None or answered > due):
            out.append(city)
    return out


def mark_alerted(entry: ListEntry, cities: Iterable[str], now: datetime) -> ListEntry:
    feedback = dict(entry.feedback)
    for city in cities:
        feedback[city] = replace(feedback.get(city) or _SILENT, alerted_at=now)
    return replace(entry, feedback=feedback, tracking_version=entry.tracking_version + 1)


def count(statuses: Iterable[tuple[str, str]], cities: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Per city, from (city, status) pairs: (listings answered by the deadline, answered late or not at all)."""
    out = {city: [0, 0] for city in cities}
    for city, st in statuses:
        if city in out and st == "ANSWERED":
            out[city][0] += 1
        elif city in out and st in ("LATE", "OVERDUE"):
            out[city][1] += 1
    return {city: (ok, missed) for city, (ok, missed) in out.items()}


def tally(entries: Iterable[ListEntry | None], cities: Iterable[str], now: datetime) -> dict[str, tuple[int, int]]:
    """Per city: (listings answered by the deadline, listings answered late or not at all)."""
    cities = list(cities)
    tracked = [e for e in entries if e is not None and e.due_at is not None]
    return count(((city, status(e, city, now)) for e in tracked for city in cities), cities)


def ratio(ok: int, missed: int) -> float:
    """ANSWERED / (ANSWERED + LATE + OVERDUE); 1.0 while nothing has fallen due (nothing is owed)."""
    return ok / (ok + missed) if ok + missed else 1.0


def cities_view(entry: ListEntry, cities: Iterable[str], now: datetime) -> list[CityFeedback]:
    """Every member city's feedback on the listing, as the tracking event and the API show it."""
    out = []
    for city in cities:
        mine = entry.feedback.get(city) or _SILENT
        out.append(
            CityFeedback(
                city=city,
                status=status(entry, city, now),
                answered_at=mine.answered_at,
                alerted_at=mine.alerted_at,
                outcomes=[
                    MeasureOutcome(
                        measure_code=code,
                        outcome=o.outcome,
                        reported_at=o.reported_at,
                        list_revision=o.list_revision,
                    )
                    for code, o in sorted(mine.outcomes.items())
                ],
            )
        )
    return out


def tracking_body(entry: ListEntry, cities: Iterable[str], now: datetime, meta: Meta) -> SanctionTracking:
    """The SanctionTracking event of an entry's feedback tracking, with its `meta`."""
    return SanctionTracking(
        meta=meta,
        subject_id=entry.subject_id,
        list=entry.list,
        status=entry.status,
        list_revision=entry.revision,
        listed_revision=entry.listed_revision if entry.listed_revision is not None else entry.revision,
        due_at=entry.due_at,
        cities=cities_view(entry, cities, now),
        version=entry.tracking_version,
    )
