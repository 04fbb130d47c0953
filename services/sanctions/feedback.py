"""The initiate–respond–feedback loop, as pure functions over a list entry (a JSON-able dict).

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
from typing import Any

from schemas.errors import Reason, Rejected


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def track(
    prev: dict[str, Any] | None, entry: dict[str, Any], now: datetime, window_days: int, lists: Iterable[str]
) -> dict[str, Any]:
    """`entry` (the next revision of `prev`) with its feedback tracking carried over or begun."""
    version = (prev or {}).get("tracking_version", 0) + 1
    if entry["status"] == "REMOVED":
        return {**entry, "closed_at": now.isoformat(), "tracking_version": version}
    continues = prev is not None and prev["status"] == "LISTED" and prev["list"] == entry["list"]
    if continues:
        assert prev is not None
        carried = {k: prev.get(k) for k in ("listed_revision", "due_at", "feedback")}
    else:
        due = (now + timedelta(days=window_days)).isoformat() if entry["list"] in set(lists) else None
        carried = {"listed_revision": entry["revision"], "due_at": due, "feedback": {}}
    return {**entry, **carried, "closed_at": None, "tracking_version": version}


def record(entry: dict[str, Any] | None, fb: dict[str, Any], counted: frozenset[str]) -> dict[str, Any] | None:
    """The entry with one city's feedback applied; None when it changes nothing (a redelivery or
    an older report). Raises Rejected for feedback that cannot be accepted."""
    subject, city, revision = fb["subject_id"], fb["city"], fb["list_revision"]
    if fb["meta"]["source_city"] != city:
        raise Rejected(
            Reason.SOURCE_CITY_MISMATCH,
            f"feedback for city {city} was sent by city {fb['meta']['source_city']}",
            "city",
        )
    if entry is None:
        raise Rejected(Reason.UNKNOWN_SUBJECT, f"{subject} has no list entry", "subject_id")
    if entry["status"] != "LISTED":
        raise Rejected(
            Reason.STALE_REVISION,
            f"{subject} was removed from the {entry['list']} list at revision {entry['revision']}",
            "list_revision",
        )
    first = entry.get("listed_revision", entry["revision"])
    if not first <= revision <= entry["revision"]:
        raise Rejected(
            Reason.STALE_REVISION,
            f"list_revision {revision} is not of the current {entry['list']} listing of {subject} "
            f"(revisions {first} to {entry['revision']})",
            "list_revision",
        )
    code = fb["measure_code"]
    codes = [m["code"] for m in entry["measures"] if city in m["applies_in"]]
    if code not in codes:
        raise Rejected(
            Reason.UNKNOWN_MEASURE,
            f"{code} is not a measure of {subject}'s listing in city {city} (measures: {', '.join(codes)})",
            "measure_code",
        )
    reported = fb["reported_at"].isoformat()
    mine = dict(entry.get("feedback", {}).get(city) or {})
    outcomes = dict(mine.get("outcomes") or {})
    stored = outcomes.get(code)
    answered = _ts(mine.get("answered_at"))
    # the newest outcome per measure stands (at the same instant, the greater event_id: a total order
    # that does not depend on arrival); the earliest counted outcome answers, whichever arrived first
    event_id = fb["meta"].get("event_id") or ""
    newer = stored is None or (_ts(stored["reported_at"]), stored.get("event_id") or "") < (
        fb["reported_at"],
        event_id,
    )
    earlier = fb["outcome"] in counted and (answered is None or fb["reported_at"] < answered)
    if not newer and not earlier:
        return None
    if newer:
        outcomes[code] = {
            "outcome": fb["outcome"],
            "reported_at": reported,
            "list_revision": revision,
            "event_id": event_id,
        }
    mine["outcomes"] = outcomes
    if earlier:
        mine["answered_at"] = reported
    mine.setdefault("alerted_at", None)
    feedback = {**entry.get("feedback", {}), city: mine}
    version = entry.get("tracking_version", 0) + 1
    return {**entry, "listed_revision": first, "feedback": feedback, "tracking_version": version}


def status(entry: dict[str, Any], city: str, now: datetime) -> str:
    mine = entry.get("feedback", {}).get(city) or {}
    answered, due, closed = _ts(mine.get("answered_at")), _ts(entry.get("due_at")), _ts(entry.get("closed_at"))
    if answered is not None:
        return "LATE" if due is not None and answered > due else "ANSWERED"
    if due is None:
        return "PENDING" if closed is None else "CLOSED"
    if closed is not None and closed < due:
        return "CLOSED"
    # the window includes its last instant: an answer exactly at `due` is in time, so a silent city
    # is OVERDUE only after it
    return "OVERDUE" if now > due else "PENDING"


def overdue(entry: dict[str, Any], now: datetime, cities: Iterable[str]) -> list[str]:
    """Cities to alert for on this listing now: past the deadline without a counted outcome by it,
    and not yet alerted. Each city is alerted once per listing."""
    due = _ts(entry.get("due_at"))
    if due is None or now <= due or entry.get("listed_revision") is None:
        return []
    closed = _ts(entry.get("closed_at"))
    if closed is not None and closed < due:
        return []
    out = []
    for city in cities:
        mine = entry.get("feedback", {}).get(city) or {}
        answered = _ts(mine.get("answered_at"))
        if mine.get("alerted_at") is None and (answered is None or answered > due):
            out.append(city)
    return out


def mark_alerted(entry: dict[str, Any], cities: Iterable[str], now: datetime) -> dict[str, Any]:
    feedback = dict(entry.get("feedback", {}))
    for city in cities:
        feedback[city] = {
            "outcomes": {},
            "answered_at": None,
            **(feedback.get(city) or {}),
            "alerted_at": now.isoformat(),
        }
    return {**entry, "feedback": feedback, "tracking_version": entry.get("tracking_version", 0) + 1}


def count(statuses: Iterable[tuple[str, str]], cities: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Per city, from (city, status) pairs: (listings answered by the deadline, answered late or not at all)."""
    out = {city: [0, 0] for city in cities}
    for city, st in statuses:
        if city in out and st == "ANSWERED":
            out[city][0] += 1
        elif city in out and st in ("LATE", "OVERDUE"):
            out[city][1] += 1
    return {city: (ok, missed) for city, (ok, missed) in out.items()}


def tally(entries: Iterable[dict[str, Any]], cities: Iterable[str], now: datetime) -> dict[str, tuple[int, int]]:
    """Per city: (listings answered by the deadline, listings answered late or not at all)."""
    cities = list(cities)
    tracked = [e for e in entries if e and e.get("due_at") is not None]
    return count(((city, status(e, city, now)) for e in tracked for city in cities), cities)


def ratio(ok: int, missed: int) -> float:
    """ANSWERED / (ANSWERED + LATE + OVERDUE); 1.0 while nothing has fallen due (nothing is owed)."""
    return ok / (ok + missed) if ok + missed else 1.0


def cities_view(entry: dict[str, Any], cities: Iterable[str], now: datetime) -> list[dict[str, Any]]:
    """Every member city's feedback on the listing, as the tracking event and the API show it."""
    out = []
    for city in cities:
        mine = entry.get("feedback", {}).get(city) or {}
        out.append(
            {
                "city": city,
                "status": status(entry, city, now),
                "answered_at": _ts(mine.get("answered_at")),
                "alerted_at": _ts(mine.get("alerted_at")),
                "outcomes": [
                    {
                        "measure_code": code,
                        "outcome": o["outcome"],
                        "reported_at": _ts(o["reported_at"]),
                        "list_revision": o["list_revision"],
                    }
                    for code, o in sorted((mine.get("outcomes") or {}).items())
                ],
            }
        )
    return out


def tracking_body(entry: dict[str, Any], cities: Iterable[str], now: datetime) -> dict[str, Any]:
    """The SanctionTracking event of an entry's feedback tracking, but for its `meta`."""
    return {
        "subject_id": entry["subject_id"],
        "list": entry["list"],
        "status": entry["status"],
        "list_revision": entry["revision"],
        "listed_revision": entry.get("listed_revision", entry["revision"]),
        "due_at": datetime.fromisoformat(entry["due_at"]) if entry.get("due_at") else None,
        "cities": cities_view(entry, cities, now),
        "version": entry["tracking_version"],
    }
