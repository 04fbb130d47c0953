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

from schemas.catalogue import FEEDBACK_OUTCOMES
from schemas.errors import ConfigError
from services.credit.rules import CATEGORIES
from services.sanctions import feedback
from topics.datafile import check_sources, read_json, typed_field
from topics.localtime import day_after_end, local_date
from topics.measures import MEASURES_FILE, Measure, load_measures

DATA = Path(__file__).resolve().parent.parent / "data"
RULES_FILE = DATA / "sanction_rules.json"
LISTS = ("BLACK", "FOCUS", "RED")
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
    list: str
    measures: tuple[str, ...]
    reasons: tuple[str, ...]  # record_ids, newest first
    initiated_by: str  # the city of the newest reason
    expires_on: date | None  # the last reason's end of publicity; None while one runs until revoked
    #: the first local day on which the rule no longer holds on this profile, with no new profile
    #: (the FOCUS rule's reasons leaving its window); None when only a new profile can end it
    leaves_on: date | None = None


@dataclass(frozen=True)
class SanctionRules:
    precedence: tuple[str, ...]
    lists: dict[str, ListRule]
    measures: dict[str, Measure]
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
        return cls(tuple(precedence), lists, measures, window, counted, fb_lists, sources)

    @staticmethod
    def _list(name: str, body: Any, measures: dict[str, Measure], where: str) -> ListRule:
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

    def reasons(self, rule: ListRule, profile: dict[str, Any], today: date) -> list[dict[str, Any]]:
        """The active records that put the subject on `rule`'s list; empty when it does not apply."""
        active = profile["active_records"]
        if rule.rule == "grade_d":
            if profile["grade"] != "D":
                return []
            return [
                r
                for r in active
                if (r["polarity"] == "NEGATIVE" and r["severity"] == "SERIOUS") or r["category"] in D_CATEGORIES
            ]
        if rule.rule == "general_negatives":
            since = today - timedelta(days=rule.within_days)
            found = [
                r
                for r in active
                if r["polarity"] == "NEGATIVE" and r["severity"] == "GENERAL" and _day(r["decision_date"]) >= since
            ]
            held = self.in_window(rule, ((_day(r["decision_date"]), r["source_city"]) for r in found), today)
            return found if held else []
        positives = [r for r in active if r["polarity"] == "POSITIVE"]
        return positives if profile["grade"] == "A" and len(positives) >= rule.min_records else []

    def decide(self, profile: dict[str, Any], today: date) -> Decision | None:
        """The list a profile puts its subject on, by precedence; None when on no list."""
        for name in self.precedence:
            rule = self.lists[name]
            found = self.reasons(rule, profile, today)
            if not found:
                continue
            found.sort(key=lambda r: (_day(r["decision_date"]), r["record_id"]), reverse=True)
            codes = list(rule.measures)
            for r in found:
                codes += [c for c in rule.extra_measures.get(r["category"], ()) if c not in codes]
            kind = profile["subject_kind"]
            codes = [c for c in codes if kind in self.measures[c].subject_kinds]
            ends = [r.get("active_until") for r in found]
            expires = None if any(e is None for e in ends) else max(_day(e) for e in ends)
            return Decision(
                name,
                tuple(codes),
                tuple(r["record_id"] for r in found),
                found[0]["source_city"],
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

    def leaves_window(self, rule: ListRule, found: list[dict[str, Any]]) -> date | None:
        """For the general-negatives rule, the first day on which `found` no longer satisfies it; a
        record decided on day d counts through d + within_days."""
        if rule.rule != "general_negatives":
            return None
        reasons = [(_day(r["decision_date"]), r["source_city"]) for r in found]
        for day in sorted({d + timedelta(days=rule.within_days + 1) for d, _ in reasons}):
            if not self.in_window(rule, reasons, day):
                return day
        return None

    def left_window(self, entry: dict[str, Any], today: date) -> dict[str, Any] | None:
        """A LISTED entry whose reasons have left its rule's window by `today`, REMOVED (revision + 1);
        None while it still holds. Decided on the reasons stored with the entry, the same that
        `decide` counted: no record outside the window at the decision can come back into it."""
        leaves = entry.get("leaves_on")
        if entry["status"] != "LISTED" or not leaves or date.fromisoformat(leaves) > today:
            return None
        rule = self.lists[entry["list"]]
        reasons = [(date.fromisoformat(d), city) for d, city in entry.get("window_reasons", {}).values()]
        if self.in_window(rule, reasons, today):
            return None
        since = today - timedelta(days=rule.within_days)
        gone = sorted(rid for rid, (d, _) in entry["window_reasons"].items() if date.fromisoformat(d) < since)
        reason = f"the {entry['list']} rule no longer holds: decided more than {rule.within_days} days ago: " + (
            ", ".join(gone)
        )
        return {**entry, "status": "REMOVED", "revision": entry["revision"] + 1, "removal_reason": reason}


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


RULES = SanctionRules.load()


def next_entry(
    prev: dict[str, Any] | None,
    decision: Decision | None,
    profile: dict[str, Any],
    now: datetime,
    cities: list[str],
    tz: tzinfo,
) -> dict[str, Any] | None:
    """The subject's next list entry (a JSON-able dict), or None when nothing changes.

    A new or changed listing is LISTED with revision + 1; a listing whose rule stops holding is
    REMOVED with the reason: the reason records that are no longer active, and whether each was
    repaired, revoked (the profile's `closed_records`) or reached the end of its publicity.
    """
    listed = prev is not None and prev["status"] == "LISTED"
    revision = (prev["revision"] if prev else 0) + 1
    if decision is None:
        if not listed:
            return None
        assert prev is not None
        active = {r["record_id"] for r in profile["active_records"]}
        gone = [rid for rid in prev["reasons"] if rid not in active]
        ends = prev.get("reason_ends", {})
        today = local_date(now, tz)
        expired = [rid for rid in gone if ends.get(rid) and date.fromisoformat(ends[rid]) < today]
        closed = {c["record_id"]: c["status"] for c in profile.get("closed_records") or []}
        parts = []
        for label, rids in (
            ("repaired", [rid for rid in gone if closed.get(rid) == "REPAIRED"]),
            ("revoked", [rid for rid in gone if closed.get(rid) == "REVOKED"]),
            ("publicity expired", [rid for rid in expired if rid not in closed]),
            ("no longer active", [rid for rid in gone if rid not in closed and rid not in expired]),
        ):
            if rids:
                parts.append(f"{label}: " + ", ".join(rids))
        reason = "; ".join(parts) or f"the {prev['list']} rule no longer holds (grade {profile['grade']})"
        return {**prev, "status": "REMOVED", "revision": revision, "removal_reason": reason}
    measures = [{"code": c, "applies_in": list(cities)} for c in decision.measures]
    same_list = listed and prev is not None and prev["list"] == decision.list
    entry = {
        "subject_id": profile["subject_id"],
        "name": profile["name"],
        "list": decision.list,
        "status": "LISTED",
        "measures": measures,
        "reasons": list(decision.reasons),
        "initiated_by": prev["initiated_by"] if same_list and prev else decision.initiated_by,
        "effective_from": prev["effective_from"] if same_list and prev else now.isoformat(),
        "expires_at": decision.expires_on.isoformat() if decision.expires_on else None,
        "removal_reason": None,
        "reason_ends": {
            r["record_id"]: (str(r["active_until"]) if r.get("active_until") else None)
            for r in profile["active_records"]
            if r["record_id"] in decision.reasons
        },
        # what the sweep needs to end the listing when its reasons leave the window, with no profile
        "leaves_on": decision.leaves_on.isoformat() if decision.leaves_on else None,
        "window_reasons": {
            r["record_id"]: [str(_day(r["decision_date"])), r["source_city"]]
            for r in profile["active_records"]
            if r["record_id"] in decision.reasons
        }
        if decision.leaves_on
        else {},
    }
    if prev is not None and same_list and all(prev.get(k) == v for k, v in entry.items()):
        return None
    return {**entry, "revision": revision}


def labels(entry: dict[str, Any], cities: Iterable[str], now: datetime) -> list[str]:
    """What one entry counts toward in the gauges: its list while LISTED, and per city whether it
    was answered by the deadline (`ok:`) or late or not at all (`missed:`); the entries table keeps
    these counts with the state, changed by each write."""
    out = [f"list:{entry['list']}"] if entry.get("status") == "LISTED" else []
    if entry.get("due_at") is not None:
        for city, (ok, missed) in feedback.tally([entry], cities, now).items():
            out += [f"ok:{city}"] * ok + [f"missed:{city}"] * missed
    return out


def gauges_of(counts: dict[str, int], cities: Iterable[str]) -> tuple[dict[str, int], dict[str, float]]:
    """The sanction gauges from the entries' label counts: listed subjects per list, and each city's
    feedback ratio (services/sanctions/feedback.py)."""
    listed = {name: counts.get(f"list:{name}", 0) for name in LISTS}
    ratios = {city: feedback.ratio(counts.get(f"ok:{city}", 0), counts.get(f"missed:{city}", 0)) for city in cities}
    return listed, ratios


def gauges(
    entries: Iterable[dict[str, Any] | None], cities: Iterable[str], now: datetime
) -> tuple[dict[str, int], dict[str, float]]:
    """The sanction gauges as one function of the entries and the clock (the sum of their labels)."""
    cities = list(cities)
    counts = Counter(label for e in entries if e for label in labels(e, cities, now))
    return gauges_of(counts, cities)


def list_body(entry: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """The SanctionList event of an entry, but for its `meta`."""
    expires = entry["expires_at"]
    return {
        **{k: entry[k] for k in ("subject_id", "name", "list", "status", "measures", "reasons", "initiated_by")},
        "effective_from": datetime.fromisoformat(entry["effective_from"]),
        # local midnight (in `tz`, the circle's zone) after the last day of publicity
        "expires_at": day_after_end(date.fromisoformat(expires), tz) if expires else None,
        "revision": entry["revision"],
        "removal_reason": entry["removal_reason"],
    }
