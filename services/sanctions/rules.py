"""List rules and the measure catalogue as data, and the pure decision of a subject's list.

Both files are checked at start-up: a file that cannot be parsed is refused naming its line and
column; a malformed or inconsistent one naming the field (an unknown measure, a list with no
measures, a precedence that names a list twice or leaves one out, ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from schemas.catalogue import FEEDBACK_OUTCOMES
from schemas.errors import ConfigError
from schemas.events import ActiveRecord, CreditProfile, ListKind, Measure, Meta, SanctionEntry
from services.credit.rules import CATEGORIES
from services.sanctions import feedback
from services.sanctions.state import ListEntry
from topics.datafile import check_sources, read_json, typed_field
from topics.localtime import day_after_end, local_date
from topics.measures import MEASURES_FILE, load_measures
from topics.measures import Measure as CatalogueMeasure

DATA = Path(__file__).resolve().parent.parent / "data"
RULES_FILE = DATA / "sanction_rules.json"
LISTS: tuple[ListKind, ...] = ("BLACK", "FOCUS", "RED")
RULE_KINDS = {"grade_d": "BLACK", "general_negatives": "FOCUS", "grade_a_positives": "RED"}
OUTCOMES = frozenset(FEEDBACK_OUTCOMES)
D_CATEGORIES = ("SERIOUS_DISHONESTY_LIST", "COURT_JUDGMENT_DEFAULTER")


@dataclass(frozen=True)
class ListRule:
    name: str
    rule: str
    measures: tuple[str, ...]
    extra_measures: dict[str, tuple[str, ...]]
    min_records: int = 0
    min_cities: int = 0
    within_days: int = 0


@dataclass(frozen=True)
class Decision:
    list: ListKind
    measures: tuple[str, ...]
    reasons: tuple[str, ...]  # record_ids, newest first
    initiated_by: str  # the city of the newest reason
    expires_on: date | None  # the last reason's end of publicity; None while one runs until revoked
    #: the first local day on which the rule no longer holds on this profile, with no new profile
    #: (the FOCUS rule's reasons leaving its window); None when only a new profile can end it
    leaves_on: date | None = None


@dataclass(frozen=True)
class SanctionRules:
    precedence: tuple[ListKind, ...]
    lists: dict[str, ListRule]
    measures: dict[str, CatalogueMeasure]
    feedback_window_days: int
    counted_outcomes: frozenset[str]
    feedback_lists: frozenset[str]
    #: each entry's source, by its path in the file (`lists.FOCUS`, `feedback.window_days`, ...)
    sources: dict[str, str]

    @classmethod
    def load(cls, path: Path = RULES_FILE, measures_path: Path = MEASURES_FILE) -> SanctionRules:
        measures = load_measures(measures_path)
        raw = read_json(path, "sanction rules")
        where = str(path)
        precedence = typed_field(raw, "precedence", list, where)
        twice = sorted({p for p in precedence if precedence.count(p) > 1})
        if twice:
            raise ConfigError(f"{where}: precedence: contradictory, {', '.join(twice)} appears more than once")
        unknown = sorted(set(precedence) - set(LISTS))
        if unknown:
            raise ConfigError(f"{where}: precedence: unknown list {', '.join(unknown)} (lists: {', '.join(LISTS)})")
        lists_raw = typed_field(raw, "lists", dict, where)
        if set(precedence) != set(lists_raw):
            raise ConfigError(
                f"{where}: precedence {precedence} and lists {sorted(lists_raw)} must name the same lists"
            )
        if tuple(precedence) != LISTS:
            raise ConfigError(f"{where}: precedence: contradicts the contract, which is {' over '.join(LISTS)}")
        lists = {name: cls._list(name, body, measures, f"{where}: lists.{name}") for name, body in lists_raw.items()}
        feedback = typed_field(raw, "feedback", dict, where)
        window = typed_field(feedback, "window_days", int, f"{where}: feedback")
        if window < 1:
            raise ConfigError(f"{where}: feedback.window_days: must be at least 1, not {window}")
        counted = frozenset(typed_field(feedback, "counted_outcomes", list, f"{where}: feedback"))
        if not counted or counted - OUTCOMES:
            raise ConfigError(f"{where}: feedback.counted_outcomes: outcomes are {sorted(OUTCOMES)}")
        fb_lists = frozenset(typed_field(feedback, "lists", list, f"{where}: feedback"))
        if fb_lists - set(LISTS):
            raise ConfigError(f"{where}: feedback.lists: unknown list {sorted(fb_lists - set(LISTS))}")
        entries = ["precedence", *(f"lists.{name}" for name in lists)]
        entries += [f"lists.{name}.extra_measures.{c}" for name, rule in lists.items() for c in rule.extra_measures]
        entries += ["feedback.window_days", "feedback.counted_outcomes", "feedback.lists"]
        sources = check_sources(raw, entries, path)
        return cls(LISTS, lists, measures, window, counted, fb_lists, sources)

    @staticmethod
    def _list(name: str, body: Any, measures: dict[str, CatalogueMeasure], where: str) -> ListRule:
        # `body` is the file's JSON as parsed, of any shape until typed_field has checked each field
        rule = typed_field(body, "rule", str, where)
        if RULE_KINDS.get(rule) != name:
            raise ConfigError(f"{where}.rule: {rule!r} is not the rule of list {name} (rules: {RULE_KINDS})")
        codes = typed_field(body, "measures", list, where)
        if not codes:
            raise ConfigError(f"{where}.measures: a list needs at least one measure")
        extra = {k: tuple(v) for k, v in (body.get("extra_measures") or {}).items()}
        named = [(f"{where}.measures[{i}]", code) for i, code in enumerate(codes)]
        for category, more in extra.items():
            if category not in CATEGORIES:
                raise ConfigError(f"{where}.extra_measures.{category}: unknown record category")
            named += [(f"{where}.extra_measures.{category}[{i}]", code) for i, code in enumerate(more)]
        for field, code in named:
            if code not in measures:
                raise ConfigError(f"{field}: unknown measure {code!r}; not in the measure catalogue")
        kwargs: dict[str, int] = {}
        if rule in ("general_negatives", "grade_a_positives"):
            kwargs["min_records"] = typed_field(body, "min_records", int, where)
        if rule == "general_negatives":
            kwargs["min_cities"] = typed_field(body, "min_cities", int, where)
            kwargs["within_days"] = typed_field(body, "within_days", int, where)
        return ListRule(name, rule, tuple(codes), extra, **kwargs)

    # --- decisions ---------------------------------------------------------------------------

    def reasons(self, rule: ListRule, profile: CreditProfile, today: date) -> list[ActiveRecord]:
        """The active records that put the subject on `rule`'s list; empty when it does not apply."""
        active = profile.active_records
        if rule.rule == "grade_d":
            if profile.grade != "D":
                return []
            return [
                r
                for r in active
                if (r.polarity == "NEGATIVE" and r.severity == "SERIOUS") or r.category in D_CATEGORIES
            ]
        if rule.rule == "general_negatives":
            since = today - timedelta(days=rule.within_days)
            found = [
                r for r in active if r.polarity == "NEGATIVE" and r.severity == "GENERAL" and r.decision_date >= since
            ]
            held = self.in_window(rule, ((r.decision_date, r.source_city) for r in found), today)
            return found if held else []
        positives = [r for r in active if r.polarity == "POSITIVE"]
        return positives if profile.grade == "A" and len(positives) >= rule.min_records else []

    def decide(self, profile: CreditProfile, today: date) -> Decision | None:
        """The list a profile puts its subject on, by precedence; None when on no list."""
        for name in self.precedence:
            rule = self.lists[name]
            found = self.reasons(rule, profile, today)
            if not found:
                continue
            found.sort(key=lambda r: (r.decision_date, r.record_id), reverse=True)
            codes = list(rule.measures)
            for r in found:
                codes += [c for c in rule.extra_measures.get(r.category, ()) if c not in codes]
            kind = profile.subject_kind
            codes = [c for c in codes if kind in self.measures[c].subject_kinds]
            ends = [r.active_until for r in found]
            expires = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
            return Decision(
                name,
                tuple(codes),
                tuple(r.record_id for r in found),
                found[0].source_city,
                expires,
                self.leaves_window(rule, found),
            )
        return None

    @staticmethod
    def in_window(rule: ListRule, reasons: Iterable[tuple[date, str]], day: date) -> bool:
        """Whether reasons (decision date, city) put a subject on the general-negatives rule's list
        on `day`: enough of them, from enough cities, decided within its window."""
        since = day - timedelta(days=rule.within_days)
        found = [(d, city) for d, city in reasons if d >= since]
        return len(found) >= rule.min_records and len({city for _, city in found}) >= rule.min_cities

    def leaves_window(self, rule: ListRule, found: list[ActiveRecord]) -> date | None:
        """For the general-negatives rule, the first day on which `found` no longer satisfies it; a
        record decided on day d counts through d + within_days."""
        if rule.rule != "general_negatives":
            return None
        reasons = [(r.decision_date, r.source_city) for r in found]
        for day in sorted({d + timedelta(days=rule.within_days + 1) for d, _ in reasons}):
            if not self.in_window(rule, reasons, day):
                return day
        return None

    def left_window(self, entry: ListEntry, today: date) -> ListEntry | None:
        """A LISTED entry whose reasons have left its rule's window by `today`, REMOVED (revision + 1);
        None while it still holds. Decided on the reasons stored with the entry, the same that
        `decide` counted: no record outside the window at the decision can come back into it."""
        leaves = entry.leaves_on
        if entry.status != "LISTED" or not leaves or leaves > today:
            return None
        rule = self.lists[entry.list]
        if self.in_window(rule, entry.window_reasons.values(), today):
            return None
        since = today - timedelta(days=rule.within_days)
        gone = sorted(rid for rid, (d, _) in entry.window_reasons.items() if d < since)
        reason = f"the {entry.list} rule no longer holds: decided more than {rule.within_days} days ago: " + (
            ", ".join(gone)
        )
        return replace(entry, status="REMOVED", revision=entry.revision + 1, removal_reason=reason)


RULES = SanctionRules.load()


def next_entry(
    prev: ListEntry | None,
    decision: Decision | None,
    profile: CreditProfile,
    now: datetime,
    cities: list[str],
    tz: tzinfo,
) -> ListEntry | None:
    """The subject's next list entry as of `profile` (its `profile_revision`), or None when nothing
    changes.

    A new or changed listing is LISTED with revision + 1; a listing whose rule stops holding is
    REMOVED with the reason: the reason records that are no longer active, and whether each was
    repaired, revoked (the profile's `closed_records`) or reached the end of its publicity.
    """
    listed = prev is not None and prev.status == "LISTED"
    revision = (prev.revision if prev is not None else 0) + 1
    if decision is None:
        if prev is None or not listed:
            return None
        active = {r.record_id for r in profile.active_records}
        gone = [rid for rid in prev.reasons if rid not in active]
        ends = prev.reason_ends
        today = local_date(now, tz)
        expired = [rid for rid in gone if (end := ends.get(rid)) is not None and end < today]
        closed = {c.record_id: c.status for c in profile.closed_records}
        parts = []
        for label, rids in (
            ("repaired", [rid for rid in gone if closed.get(rid) == "REPAIRED"]),
            ("revoked", [rid for rid in gone if closed.get(rid) == "REVOKED"]),
            ("publicity expired", [rid for rid in expired if rid not in closed]),
            ("no longer active", [rid for rid in gone if rid not in closed and rid not in expired]),
        ):
            if rids:
                parts.append(f"{label}: " + ", ".join(rids))
        reason = "; ".join(parts) or f"the {prev.list} rule no longer holds (grade {profile.grade})"
        return replace(
            prev, status="REMOVED", revision=revision, removal_reason=reason, profile_revision=profile.revision
        )
    same_list = listed and prev is not None and prev.list == decision.list
    reasons = [r for r in profile.active_records if r.record_id in decision.reasons]
    entry = ListEntry(
        subject_id=profile.subject_id,
        name=profile.name,
        list=decision.list,
        status="LISTED",
        measures=[Measure(code=c, applies_in=list(cities)) for c in decision.measures],
        reasons=list(decision.reasons),
        initiated_by=prev.initiated_by if same_list and prev is not None else decision.initiated_by,
        effective_from=prev.effective_from if same_list and prev is not None else now,
        expires_at=decision.expires_on,
        revision=revision,
        removal_reason=None,
        reason_ends={r.record_id: r.active_until for r in reasons},
        # what the sweep needs to end the listing when its reasons leave the window, with no profile
        leaves_on=decision.leaves_on,
        window_reasons={r.record_id: (r.decision_date, r.source_city) for r in reasons} if decision.leaves_on else {},
        profile_revision=profile.revision,
    )
    if prev is not None and same_list and _listing(prev) == _listing(entry):
        return None
    return entry


def _listing(entry: ListEntry) -> tuple[object, ...]:
    """What a listing says, apart from its revision and tracking: two entries that agree on it are
    the same listing (a new profile that changes none of it makes no new revision)."""
    return (
        entry.subject_id,
        entry.name,
        entry.list,
        entry.status,
        entry.measures,
        entry.reasons,
        entry.initiated_by,
        entry.effective_from,
        entry.expires_at,
        entry.removal_reason,
        entry.reason_ends,
        entry.leaves_on,
        entry.window_reasons,
    )


def labels(entry: ListEntry, cities: Iterable[str], now: datetime) -> list[str]:
    """What one entry counts toward in the gauges: its list while LISTED, and per city whether it
    was answered by the deadline (`ok:`) or late or not at all (`missed:`); the entries table keeps
    these counts with the state, changed by each write."""
    out = [f"list:{entry.list}"] if entry.status == "LISTED" else []
    if entry.due_at is not None:
        for city, (ok, missed) in feedback.tally([entry], cities, now).items():
            out += [f"ok:{city}"] * ok + [f"missed:{city}"] * missed
    return out


def gauges_of(counts: dict[str, int], cities: Iterable[str]) -> tuple[dict[str, int], dict[str, float]]:
    """The sanction gauges from the entries' label counts: listed subjects per list, and each city's
    feedback ratio (services/sanctions/feedback.py)."""
    listed: dict[str, int] = {name: counts.get(f"list:{name}", 0) for name in LISTS}
    ratios = {city: feedback.ratio(counts.get(f"ok:{city}", 0), counts.get(f"missed:{city}", 0)) for city in cities}
    return listed, ratios


def gauges(
    entries: Iterable[ListEntry | None], cities: Iterable[str], now: datetime
) -> tuple[dict[str, int], dict[str, float]]:
    """The sanction gauges as one function of the entries and the clock (the sum of their labels)."""
    cities = list(cities)
    counts = Counter(label for e in entries if e is not None for label in labels(e, cities, now))
    return gauges_of(counts, cities)


def list_body(entry: ListEntry, tz: tzinfo, meta: Meta) -> SanctionEntry:
    """The SanctionEntry event of an entry, with its `meta`."""
    expires = entry.expires_at
    return SanctionEntry(
        meta=meta,
        subject_id=entry.subject_id,
        name=entry.name,
        list=entry.list,
        status=entry.status,
        measures=entry.measures,
        reasons=entry.reasons,
        initiated_by=entry.initiated_by,
        effective_from=entry.effective_from,
        # local midnight (in `tz`, the circle's zone) after the last day of publicity
        expires_at=day_after_end(expires, tz) if expires is not None else None,
        revision=entry.revision,
        removal_reason=entry.removal_reason,
    )
