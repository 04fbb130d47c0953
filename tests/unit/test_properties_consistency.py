"""One truth: for any history, a product's state, gauges, alerts, API view and light or list entry agree.

Each property builds a history of input events through the pure rules (as the processor applies
them), then derives every output the way the processor, the read model and the API derive it,
and checks that they say the same thing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from schemas.convert import to_json
from schemas.errors import Rejected
from schemas.events import CreditProfile, SanctionEntry, SanctionFeedback
from schemas.structs import Event, plain, typed
from services.api import supervision as api
from services.credit import rules as credit
from services.credit.state import CreditState
from services.emergency import rules as emergency
from services.emergency.state import Incident
from services.readmodel.rows import credit_profile_json, sanction_entry_json
from services.readmodel.tables import credit_profile_row, sanction_entry_row
from services.sanctions import feedback
from services.sanctions import rules as sanctions
from services.sanctions.state import ListEntry
from services.supervision import rules as supervision
from services.supervision.state import Project
from tests.unit import emsup_events
from tests.unit.credit_events import credit_record, profile_body
from tests.unit.props import META, PROPS, black_listing, credit_profile, edge_dates, sanction_feedback
from topics.circle import load_circle
from topics.localtime import CIRCLE_TZ as TZ

CIRCLE = load_circle()
CITIES = CIRCLE.codes
DAY = timedelta(days=1)

# --- projects --------------------------------------------------------------------------------


@st.composite
def project_history(draw: st.DrawFn) -> tuple[list[dict[str, Any]], date]:
    today = draw(edge_dates())
    lead = draw(st.sampled_from(CITIES))
    n = draw(st.integers(1, 5))
    milestones = [
        {"milestone_id": f"M{i}", "title": "t", "planned_date": today + timedelta(days=draw(st.integers(-40, 5)))}
        for i in range(n)
    ]
    plan = {
        "meta": {"event_id": "plan", "source_city": lead},
        "project_id": "P",
        "name": "n",
        "category": "TRANSPORT",
        "lead_city": lead,
        "participating_cities": [],
        "responsible_unit": "u",
        "responsible_person": "p",
        "plan_year": today.year,
        "milestones": milestones,
    }
    events = [plan]
    for j in range(draw(st.integers(0, 8))):
        m = draw(st.sampled_from(milestones))
        status = draw(st.sampled_from(["NOT_STARTED", "IN_PROGRESS", "DONE", "BLOCKED"]))
        actual = m["planned_date"] + timedelta(days=draw(st.integers(-3, 3))) if status == "DONE" else None
        events.append(
            {
                "meta": {"event_id": f"r{j}", "source_city": lead},
                "project_id": "P",
                "milestone_id": m["milestone_id"],
                "status": status,
                "actual_date": actual,
                "progress_pct": None,
                "issue": None,
            }
        )
    return events, today


def apply_project(events: list[dict[str, Any]]) -> Project:
    project = supervision.apply_plan(None, emsup_events.plan(events[0]))
    assert project is not None
    for report in events[1:]:
        project = supervision.apply_report(project, emsup_events.report(report)) or project
    return project


def api_project(events: list[dict[str, Any]]) -> Project:
    """The project as the API rebuilds it from read-model rows: the plan, the newest report per milestone."""
    plan = events[0]
    row = SimpleNamespace(
        **{f: plan[f] for f in supervision.PLAN_FIELDS},
        total_investment="1",
        milestones=to_json(plan["milestones"]),
    )
    newest = {r["milestone_id"]: r for r in events[1:]}
    reports = [
        SimpleNamespace(**{k: r[k] for k in ("milestone_id", "status", "actual_date", "progress_pct", "issue")})
        for r in newest.values()
    ]
    return api.project_state(row, reports)


@PROPS
@given(project_history())
def test_a_projects_states_gauges_alerts_view_and_light_agree(history: tuple[list[dict[str, Any]], date]) -> None:
    events, today = history
    project = apply_project(events)
    seen = supervision.assess(project, today)
    overdue = {mid for mid, s in seen.states.items() if s == "OVERDUE"}
    # the alerts: exactly the overdue milestones
    assert set(supervision.newly_overdue(project, today)) == overdue
    # the gauges: one count per milestone, in its state
    counts = supervision.city_counts([project], today)[project.lead_city]
    for state in supervision.STATES:
        assert counts[state] == sum(s == state for s in seen.states.values())
    assert counts["due"] == counts["OVERDUE"] + sum(
        s.startswith("DONE") and project.milestones[mid].planned_date <= today for mid, s in seen.states.items()
    )
    # the light: GREEN exactly when nothing is overdue or blocked
    blocked = any(m.status == "BLOCKED" for m in project.milestones.values())
    worst = max((seen.days_overdue[mid] for mid in overdue), default=0)
    assert (seen.light == "GREEN") == (not overdue and not blocked)
    assert (seen.light == "RED") == (blocked or worst > supervision.RULES.red_after_days)
    # the processor's view and the API's (rebuilt from read-model rows) say the same
    for view in (supervision.project_view(project, today), supervision.project_view(api_project(events), today)):
        assert view["traffic_light"] == seen.light
        assert {m["milestone_id"]: m["state"] for m in view["milestones"]} == seen.states
        assert {m["milestone_id"]: m["days_overdue"] for m in view["milestones"]} == seen.days_overdue
        assert all((m["days_overdue"] > 0) <= (m["state"] == "OVERDUE") for m in view["milestones"])


# --- credit subjects and their list entries ------------------------------------------------------

CATEGORIES = [
    "ADMIN_PENALTY",
    "ABNORMAL_OPERATION",
    "SERIOUS_DISHONESTY_LIST",
    "COURT_JUDGMENT_DEFAULTER",
    "HONOR",
    "CREDIT_EVALUATION",
]


@st.composite
def credit_history(draw: st.DrawFn) -> tuple[list[dict[str, Any]], date]:
    today = draw(edge_dates())
    events: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 6))):
        category = draw(st.sampled_from(CATEGORIES))
        polarity = "POSITIVE" if category == "HONOR" else draw(st.sampled_from(["NEGATIVE", "NEGATIVE", "NEUTRAL"]))
        decided = today - timedelta(days=draw(st.sampled_from([0, 1, 90, 364, 365, 366, 400, 1100])))
        city = draw(st.sampled_from(CITIES[:4]))
        events.append(
            {
                "meta": {"event_id": f"p{i}", "source_city": city, "occurred_at": datetime(2020, 1, 1, tzinfo=UTC)},
                "record_id": f"r{i}",
                "action": "PUBLISH",
                "subject": {"subject_id": "91320106MA1XY31255", "subject_kind": "ENTERPRISE", "name": "n"},
                "category": category,
                "polarity": polarity,
                "severity": "NONE"
                if polarity != "NEGATIVE"
                else draw(st.sampled_from(["MINOR", "GENERAL", "SERIOUS"])),
                "domain": draw(st.sampled_from([None, "WORK_SAFETY"])),
                "decision_no": "d",
                "decision_date": decided,
                "valid_until": None,
                "publicity_until": None,
            }
        )
        if draw(st.booleans()):
            action = draw(st.sampled_from(["REVOKE", "REPAIR"]))
            at = datetime(today.year, today.month, today.day, tzinfo=UTC)
            events.append(
                {**events[-1], "action": action, "meta": {**events[-1]["meta"], "event_id": f"c{i}", "occurred_at": at}}
            )
    return events, today


def apply_credit(events: list[dict[str, Any]], today: date) -> CreditState:
    state = None
    for e in events:
        try:
            state, _ = credit.apply(state, credit_record(e), TZ)
        except Rejected:
            continue
    assert state is not None
    return credit.evaluate(state, today, bump=False)[0]


READ_META = {
    "event_id": "x",
    "event_type": "derived",
    "source_city": CITIES[0],
    "source_system": "test",
    "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    "published_at": datetime(2026, 1, 1, tzinfo=UTC),
}
Derived = TypeVar("Derived", bound=Event)


def derived(body: Any, kind: type[Derived]) -> Derived:
    """A derived event as the read model projects it: a rule's body (its Struct or its mapping)
    with a meta, as its Struct."""
    fields = plain(body) if isinstance(body, Event) else body
    return typed({**fields, "meta": READ_META}, kind)


@PROPS
@given(credit_history())
def test_a_subjects_grade_profile_view_and_list_entry_agree(history: tuple[list[dict[str, Any]], date]) -> None:
    events, today = history
    state = apply_credit(events, today)
    now = datetime(today.year, today.month, today.day, 4, tzinfo=UTC)
    profile = profile_body(state, now)
    active = [state.records[rid] for rid in state.active]
    assert profile["grade"] == credit.grade(active) == state.grade
    negatives = [r for r in active if r.polarity == "NEGATIVE"]
    assert profile["counts"]["negative"] == len(negatives)
    assert sum(profile["counts"][s] for s in ("minor", "general", "serious")) == len(
        [r for r in negatives if r.severity != "NONE"]
    )
    assert all(r["active_until"] is None or r["active_until"] >= today for r in profile["active_records"])
    # the gauge counts the state's grade (the subjects table counts state.grade); the API shows the profile's
    row = credit_profile_row(derived(profile, CreditProfile), 0, 0)
    assert credit_profile_json(row)["grade"] == state.grade
    # the list entry follows the grade: BLACK exactly for D, RED only for A
    listed_profile = credit_profile(profile)
    decision = sanctions.RULES.decide(listed_profile, today)
    assert (decision is not None and decision.list == "BLACK") == (state.grade == "D")
    if decision is not None and decision.list == "RED":
        assert state.grade == "A"
    entry = sanctions.next_entry(None, decision, replace(listed_profile, closed_records=[]), now, CITIES, TZ)
    assert (entry is None) == (decision is None)
    if entry is not None and decision is not None:
        listed, _ = sanctions.gauges([entry], CITIES, now)
        assert listed == {name: int(name == decision.list) for name in sanctions.LISTS}
        body = sanctions.list_body(entry, TZ, replace(META, event_id="x"))
        view = sanction_entry_json(sanction_entry_row(derived(body, SanctionEntry), 0, 0))
        assert view["list"] == decision.list and view["reasons"] == list(decision.reasons)
        if decision.expires_on is not None:  # the listing ends when its last reason leaves the profile
            assert body.expires_at is not None and body.expires_at > now
            assert credit.evaluate(state, decision.expires_on + DAY)[0].active != state.active


# --- listings: feedback -----------------------------------------------------------------------


@st.composite
def feedback_history(draw: st.DrawFn) -> tuple[ListEntry, list[SanctionFeedback], datetime]:
    listed_at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 86400)))
    measures = ["HONOR_BAN", "GOV_PROCUREMENT_BAN"]
    entry = black_listing(listed_at, measures, CITIES, CITIES[0])
    due = listed_at + timedelta(days=5)
    offsets = st.sampled_from(
        [timedelta(0), timedelta(days=1), timedelta(days=5), timedelta(days=5, milliseconds=1), timedelta(days=6)]
    )
    fbs = []
    for i in range(draw(st.integers(0, 8))):
        city = draw(st.sampled_from(CITIES[:4]))
        fbs.append(
            sanction_feedback(
                {
                    "meta": {"source_city": city, "event_id": f"f{i}"},
                    "subject_id": "S",
                    "list_revision": 1,
                    "city": city,
                    "measure_code": draw(st.sampled_from(measures)),
                    "outcome": draw(st.sampled_from(sorted(sanctions.OUTCOMES))),
                    "reported_at": listed_at + draw(offsets),
                }
            )
        )
    now = due + draw(st.sampled_from([-DAY, timedelta(0), timedelta(milliseconds=1), DAY]))
    return entry, [fb for fb in fbs if fb.reported_at <= now], now  # no answer from the future


def apply_feedback(entry: ListEntry, fbs: list[SanctionFeedback]) -> ListEntry:
    for fb in fbs:
        entry = feedback.record(entry, fb, sanctions.RULES.counted_outcomes) or entry
    return entry


@PROPS
@given(feedback_history())
def test_a_listings_statuses_alerts_ratios_and_view_agree(
    history: tuple[ListEntry, list[SanctionFeedback], datetime],
) -> None:
    entry, fbs, now = history
    entry = apply_feedback(entry, fbs)
    statuses = {city: feedback.status(entry, city, now) for city in CITIES}
    # the alerts: every city that missed the window (silent or late), once the window has closed
    assert set(feedback.overdue(entry, now, CITIES)) == {c for c, s in statuses.items() if s in ("LATE", "OVERDUE")}
    # the tracking event (the read model's and the API's view) and the scoreboard's count
    view = {c.city: c.status for c in feedback.tracking_body(entry, CITIES, now, META).cities}
    assert view == statuses
    _, ratios = sanctions.gauges([entry], CITIES, now)
    counted = feedback.count(view.items(), CITIES)
    for city, status in statuses.items():
        expected = {"ANSWERED": 1.0, "LATE": 0.0, "OVERDUE": 0.0}.get(status, 1.0)
        assert ratios[city] == expected == feedback.ratio(*counted[city])


# --- incidents ---------------------------------------------------------------------------------


@st.composite
def incident_history(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], datetime]:
    sent = datetime(2026, 11, 22, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 86400)))
    home = "340200"
    notices = []
    kinds = ["INITIAL", *draw(st.lists(st.sampled_from(["UPDATE", "FINAL"]), max_size=2))]
    if "FINAL" in kinds:
        kinds = kinds[: kinds.index("FINAL") + 1]
    for seq, kind in enumerate(kinds, 1):
        at = sent + timedelta(minutes=10 * (seq - 1))
        notices.append(
            {
                "meta": {"event_id": f"n{seq}", "source_city": home, "published_at": at},
                "incident_id": "I",
                "report_seq": seq,
                "report_kind": kind,
                "category": "ACCIDENT",
                "subtype": draw(st.sampled_from(["WATER_POLLUTION", "FLOOD"])),
                "level": draw(st.sampled_from(["I", "IV"])),
                "location": {"city": home},
                "affected_cities": draw(st.lists(st.sampled_from(CITIES), max_size=2)),
            }
        )
    acks = []
    for i in range(draw(st.integers(0, 8))):
        seq = draw(st.integers(1, len(notices)))
        city = draw(st.sampled_from(CITIES))
        at = sent + timedelta(minutes=draw(st.sampled_from([0, 15, 30, 60, 120, 130])))
        acks.append(
            {
                "meta": {"source_city": city, "event_id": f"a{i}"},
                "incident_id": "I",
                "report_seq": seq,
                "city": city,
                "acknowledged_at": at,
            }
        )
    now = sent + timedelta(minutes=draw(st.sampled_from([5, 15, 60, 120, 121, 600])))
    return notices, acks, now


def apply_incident(notices: list[dict[str, Any]], acks: list[dict[str, Any]]) -> Incident:
    incident = None
    for n in notices:
        incident = emergency.apply_notice(incident, emsup_events.notice(n), emergency.RULES, CIRCLE)
    assert incident is not None
    for a in acks:
        try:
            done = emergency.apply_ack(incident, emsup_events.ack(a))
        except Rejected:
            continue
        incident = done[0] if done else incident
    return incident


@PROPS
@given(incident_history())
def test_an_incidents_statuses_alerts_gauges_and_view_agree(
    history: tuple[list[dict[str, Any]], list[dict[str, Any]], datetime],
) -> None:
    notices, acks, now = history
    incident = apply_incident(notices, acks)
    # the API rebuilds the incident from the dispatches and the acks in the read model
    reports = [
        SimpleNamespace(
            incident_id="I",
            report_seq=n["report_seq"],
            report_kind=n["report_kind"],
            effective_level=r.effective_level,
            raised_from=None,
            subtype=n["subtype"],
            location_city=n["location"]["city"],
            sender=incident.sender,
            dispatched_at=n["meta"]["published_at"],
            recipients=to_json([plain(x) for x in emergency.dispatch_recipients(r)]),
        )
        for n in notices
        for r in [incident.reports[str(n["report_seq"])]]
    ]
    ack_rows = [
        SimpleNamespace(incident_id="I", report_seq=int(seq), city=city, acknowledged_at=s.acked_at)
        for seq, r in incident.reports.items()
        for city, s in r.recipients.items()
        if s.acked_at
    ]
    view = api.incident_json(api.incidents(reports, ack_rows)["I"], now)
    shown = {(str(r["report_seq"]), x["city"]): x["status"] for r in view["reports"] for x in r["recipients"]}
    state = {
        (seq, city): emergency.ack_status(slot, now)
        for seq, r in incident.reports.items()
        for city, slot in r.recipients.items()
    }
    assert shown == state
    # the alerts: every missed deadline (no ack by it, or an ack after it) once it has passed
    alerts = {(seq, city) for seq, city, _ in emergency.overdue(incident, now)}
    missed = {
        (seq, city)
        for seq, r in incident.reports.items()
        for city, slot in r.recipients.items()
        if emergency.missed(slot, now) and slot.deadline < now
    }
    assert alerts == missed and {k for k, s in state.items() if s == "OVERDUE"} <= alerts
    # the gauges count what the API shows: of an open incident every report, of a closed one its FINAL
    g = emergency.gauges([incident], now, CITIES)
    counted = {k: s for k, s in state.items() if not incident.closed or int(k[0]) == incident.last_seq}
    for city in CITIES:
        assert g.ack_overdue[city] == sum(s == "OVERDUE" for (_, c), s in counted.items() if c == city)
        assert g.unacknowledged[city] == sum(s != "ACKNOWLEDGED" for (_, c), s in counted.items() if c == city)
    assert view["open"] == (not incident.closed) and sum(g.open_incidents.values()) == int(not incident.closed)


@PROPS
@given(credit_history(), st.integers(1, 400))
def test_a_list_entry_stays_right_until_the_profile_next_changes(
    history: tuple[list[dict[str, Any]], date], later: int
) -> None:
    """The sanctions worker decides a subject's list when a profile arrives; the credit worker emits
    a new profile only when the active set changes (`next_change`). Between two profiles the
    decision changes on the clock alone only where the entry says so (`leaves_on`, the FOCUS
    window), and the sweep's verdict from the stored entry then equals a decision on the profile."""
    events, today = history
    state = apply_credit(events, today)
    now = datetime(today.year, today.month, today.day, tzinfo=UTC)
    profile = profile_body(state, now)
    change = credit.next_change(state)
    day = today + timedelta(days=later)
    if change is not None and day >= change:
        return
    listed_profile = replace(credit_profile(profile), closed_records=[])
    before, after = sanctions.RULES.decide(listed_profile, today), sanctions.RULES.decide(listed_profile, day)
    entry = sanctions.next_entry(None, before, listed_profile, now, CITIES, TZ)
    swept = sanctions.RULES.left_window(entry, day) if entry else None
    if before is not None and before.leaves_on is not None and day >= before.leaves_on:
        assert swept is not None and swept.status == "REMOVED"
        assert after is None or after.list != "FOCUS"
        return
    assert swept is None
    assert (before and before.list) == (after and after.list)


def test_a_focus_listing_ends_when_its_reasons_leave_the_365_day_window() -> None:
    today = date(2026, 11, 22)
    events = []
    for i, (city, age) in enumerate((("320100", 300), ("321100", 10))):
        events.append(
            {
                "meta": {"event_id": f"e{i}", "source_city": city, "occurred_at": datetime(2020, 1, 1, tzinfo=UTC)},
                "record_id": f"r{i}",
                "action": "PUBLISH",
                "subject": {"subject_id": "S", "subject_kind": "ENTERPRISE", "name": "n"},
                "category": "ABNORMAL_OPERATION",
                "polarity": "NEGATIVE",
                "severity": "GENERAL",
                "domain": None,
                "decision_no": "d",
                "decision_date": today - timedelta(days=age),
                "valid_until": None,
                "publicity_until": None,
            }
        )
    state = apply_credit(events, today)
    profile = profile_body(state, datetime(2026, 11, 22, tzinfo=UTC))
    listed_profile = credit_profile(profile)
    listed = sanctions.RULES.decide(listed_profile, today)
    assert listed is not None and listed.list == "FOCUS"
    assert sanctions.RULES.decide(listed_profile, today + timedelta(days=65)) is not None
    assert sanctions.RULES.decide(listed_profile, today + timedelta(days=66)) is None  # the rule no longer holds...
    assert credit.next_change(state) is None  # ...and no new profile will come to say so
    # so the entry says when, and the sanctions sweep removes it then, from the entry alone
    assert listed.leaves_on == today + timedelta(days=66)
    entry = sanctions.next_entry(
        None, listed, replace(listed_profile, closed_records=[]), datetime(2026, 11, 22, tzinfo=UTC), CITIES, TZ
    )
    assert entry is not None
    assert sanctions.RULES.left_window(entry, today + timedelta(days=65)) is None
    removed = sanctions.RULES.left_window(entry, today + timedelta(days=66))
    assert removed is not None and (removed.status, removed.revision) == ("REMOVED", 2)
    assert removed.removal_reason is not None
    assert "r0" in removed.removal_reason and "r1" not in removed.removal_reason
