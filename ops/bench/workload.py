"""Synthetic, realistic credit traffic from the member cities, reproducible from a seed.

Each item is (city, body): a CreditRecord as JSON for `Publisher.prepare`, published as `city`.
Subjects have valid USCCs; most records are PUBLISH, some are AMEND, REVOKE and REPAIR of a city's
own earlier records, and a small share are redeliveries of an earlier event (same event_id).

The other city input (emergency notices, joint enforcement actions, project plans and milestone
reports, sanction feedback) is built here too, one body at a time from the caller's random
generator, so that ops/simulate.py and the benchmarks (ops/bench/inputs.py) send the same shapes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from topics.identifiers import USCC_ALPHABET, uscc_check_char

AUTHORITIES = {
    "ADMIN_PENALTY": "市场监督管理局",
    "ADMIN_LICENSE": "行政审批局",
    "HONOR": "人民政府",
    "CREDIT_EVALUATION": "税务局",
    "ABNORMAL_OPERATION": "市场监督管理局",
    "SERIOUS_DISHONESTY_LIST": "发展和改革委员会",
}
SUBTYPES = (
    ("ACCIDENT", "WATER_POLLUTION"),
    ("ACCIDENT", "HAZMAT_SPILL"),
    ("NATURAL_DISASTER", "FLOOD"),
    ("ACCIDENT", "AIR_POLLUTION"),
    ("PUBLIC_HEALTH", "EPIDEMIC"),
)
DOMAINS = ("ENVIRONMENT", "MARKET_SUPERVISION", "FISHING_BAN", "ANTI_COUNTERFEIT", "LABOR", "TRANSPORT", "WORK_SAFETY")
CATEGORIES = ("TRANSPORT", "INDUSTRY", "INNOVATION", "ECOLOGY", "PUBLIC_SERVICE", "OPENING_UP", "SMART_CITY")
#: (category, polarity, severity, domain, weight)
KINDS: Sequence[tuple[str, str, str, str | None, int]] = (
    ("ADMIN_PENALTY", "NEGATIVE", "MINOR", "MARKET", 30),
    ("ADMIN_PENALTY", "NEGATIVE", "GENERAL", "ENVIRONMENT", 14),
    ("ADMIN_PENALTY", "NEGATIVE", "GENERAL", "WORK_SAFETY", 6),
    ("ADMIN_PENALTY", "NEGATIVE", "SERIOUS", "FIRE", 3),
    ("ADMIN_LICENSE", "NEUTRAL", "NONE", None, 20),
    ("HONOR", "POSITIVE", "NONE", None, 10),
    ("CREDIT_EVALUATION", "POSITIVE", "NONE", "TAX", 10),
    ("ABNORMAL_OPERATION", "NEGATIVE", "GENERAL", None, 5),
    ("SERIOUS_DISHONESTY_LIST", "NEGATIVE", "SERIOUS", None, 2),
)


def subject_ids(count: int, seed: int = 0) -> list[str]:
    """`count` distinct valid USCCs (enterprises registered in Jiangsu and Anhui)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        region = rng.choice(("320100", "320400", "321100", "341100", "340500", "320800"))
        first = f"91{region}" + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
        code = first + uscc_check_char(first)
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


def credit_records(
    count: int, subjects: int, cities: Sequence[str], today: date, seed: int = 0, every_subject: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`count` records over `subjects` subjects drawn at random; with `every_subject`, the first
    `subjects` records go to each subject in turn (but for redeliveries), so nearly all have one."""
    rng = random.Random(seed)
    ids = subject_ids(subjects, seed)
    weights = [k[4] for k in KINDS]
    published: dict[str, list[tuple[str, dict[str, Any]]]] = {s: [] for s in ids}
    sent: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        roll = rng.random()
        subject = ids[n] if every_subject and n < subjects else rng.choice(ids)
        own = published[subject]
        if sent and roll < 0.02:  # a redelivery: the very same event again
            yield rng.choice(sent)
            continue
        if own and roll < 0.12:
            city, earlier = rng.choice(own)
            action = rng.choice(("AMEND", "REVOKE", "REPAIR"))
            body = {**earlier, "action": action, "meta": {"event_id": str(uuid.UUID(int=rng.getrandbits(128)))}}
            if action == "AMEND":
                body["content"] = earlier["content"] + "（更正）"
            item = (city, body)
        else:
            category, polarity, severity, domain, _ = rng.choices(KINDS, weights)[0]
            city = rng.choice(cities)
            decided = today - timedelta(days=rng.randrange(0, 900))
            body = {
                "meta": {"event_id": str(uuid.UUID(int=rng.getrandbits(128)))},
                "record_id": f"{city}-{n:08d}",
                "action": "PUBLISH",
                "subject": {"subject_id": subject, "subject_kind": "ENTERPRISE", "name": f"企业{subject[-6:]}有限公司"},
                "category": category,
                "polarity": polarity,
                "severity": severity,
                "domain": domain,
                "decision_no": f"{city}〔{decided.year}〕{n}号",
                "decision_date": decided.isoformat(),
                "authority": {"name": AUTHORITIES[category]},
                "legal_basis": "《社会信用体系建设相关规定》",
                "content": "合成测试数据",
                "penalty_types": ["FINE"] if polarity == "NEGATIVE" else [],
                "fine_amount": f"{rng.randrange(1, 500) * 1000}.00" if polarity == "NEGATIVE" else None,
                "valid_until": (decided + timedelta(days=1095)).isoformat() if category == "ADMIN_LICENSE" else None,
            }
            own.append((city, body))
            item = (city, body)
        sent.append(item)
        yield item


def notice(rng: random.Random, cities: Sequence[str], description: str, bad: float | None = None) -> dict[str, Any]:
    """An INITIAL EmergencyNotice from a random city (`location.city`), now and then declaring a
    neighbour affected. With `bad`, that share of them declares a city outside the circle instead."""
    city = rng.choice(cities)
    category, subtype = rng.choice(SUBTYPES)
    level = rng.choice(("I", "II", "III", "III", "IV", "IV"))
    declared = rng.sample([c for c in cities if c != city], rng.choice((0, 0, 1)))
    if bad is not None and rng.random() < bad:
        declared = ["999999"]  # not a member city: refused by the SDK
    return {
        "incident_id": f"INC-{city}-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}",
        "report_seq": 1,
        "report_kind": "INITIAL",
        "category": category,
        "subtype": subtype,
        "level": level,
        "location": {"city": city},
        "description": description,
        "casualties": {"deaths": 0, "injured": rng.randrange(0, 5), "evacuated": rng.randrange(0, 300)},
        "affected_cities": declared,
        "requested_actions": ["加强监测"],
        "reporter": {"unit": "应急管理局", "official": "值班员", "contact": "12345"},
    }


def enterprise_targets(rng: random.Random, subjects: Sequence[str]) -> list[dict[str, Any]]:
    """Two enterprises of `subjects`, as the targets of a joint enforcement action."""
    return [
        {"subject_id": s, "subject_kind": "ENTERPRISE", "name": f"企业{s[-6:]}有限公司"}
        for s in rng.sample(subjects, 2)
    ]


def planned_action(
    rng: random.Random,
    cities: Sequence[str],
    lead: str,
    subjects: Sequence[str],
    started_at: str,
    targets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A PLANNED joint enforcement action led by `lead` with two other cities; its targets are drawn
    from `subjects` after the other fields unless the caller drew them (`targets`) beforehand."""
    return {
        "action_id": f"JE-{lead}-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}",
        "domain": rng.choice(DOMAINS),
        "lead_city": lead,
        "participating_cities": rng.sample([c for c in cities if c != lead], 2),
        "status": "PLANNED",
        "started_at": started_at,
        "ended_at": None,
        "targets": targets if targets is not None else enterprise_targets(rng, subjects),
        "findings": [],
    }


def closed_action(rng: random.Random, action: Mapping[str, Any], today: date, n: int, ended_at: str) -> dict[str, Any]:
    """The action CLOSED, with findings on about 70% of its targets (decision numbers from `n`)."""
    findings = [
        {
            "subject": subject,
            "violation": "联合检查发现的违法行为",
            "severity": rng.choice(("MINOR", "GENERAL", "GENERAL", "SERIOUS")),
            "decision_no": f"{action['lead_city']}联罚〔{today.year}〕{n}-{i}号",
            "penalty_types": ["FINE"],
            "fine_amount": f"{rng.randrange(1, 100) * 1000}.00",
        }
        for i, subject in enumerate(action["targets"])
        if rng.random() < 0.7
    ]
    return {**action, "status": "CLOSED", "ended_at": ended_at, "findings": findings}


def plan(rng: random.Random, cities: Sequence[str], today: date) -> dict[str, Any]:
    """A cooperation-project plan of this year, led by a random city, with 2 to 4 milestones."""
    lead = rng.choice(cities)
    pid = f"NJMC-{today.year}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
    milestones = [
        {
            "milestone_id": f"M{i + 1}",
            "title": f"第{i + 1}阶段",
            "planned_date": (today + timedelta(days=rng.randrange(-90, 90))).isoformat(),
        }
        for i in range(rng.randrange(2, 5))
    ]
    return {
        "project_id": pid,
        "name": "都市圈合作项目",
        "category": rng.choice(CATEGORIES),
        "lead_city": lead,
        "participating_cities": rng.sample([c for c in cities if c != lead], 2),
        "responsible_unit": "发展和改革委员会",
        "responsible_person": "项目负责人",
        "total_investment": f"{rng.randrange(1, 500) * 1_000_000}.00",
        "plan_year": today.year,
        "milestones": milestones,
    }


def milestone(rng: random.Random, plans: Mapping[str, Mapping[str, Any]], today: date) -> dict[str, Any]:
    """A status report on a milestone of one of `plans` (by project_id): done (some late), in
    progress or blocked."""
    p = rng.choice(list(plans.values()))
    m = rng.choice(p["milestones"])
    planned = date.fromisoformat(m["planned_date"])
    roll = rng.random()
    if roll < 0.55:
        late = rng.random() < 0.3
        actual = planned + timedelta(days=rng.randrange(1, 20) if late else -rng.randrange(0, 10))
        status, actual_date = "DONE", min(actual, today)
    elif roll < 0.9:
        status, actual_date = "IN_PROGRESS", None
    else:
        status, actual_date = "BLOCKED", None
    return {
        "project_id": p["project_id"],
        "milestone_id": m["milestone_id"],
        "status": status,
        "actual_date": actual_date.isoformat() if actual_date else None,
        "progress_pct": 100 if status == "DONE" else rng.randrange(0, 90),
        "issue": "需要跨市协调用地" if status == "BLOCKED" else None,
    }


def feedback(
    rng: random.Random, entries: Sequence[Mapping[str, Any]], cities: Sequence[str], ref: str, reported_at: str
) -> dict[str, Any]:
    """SanctionFeedback from a random city (`city`) on one of the BLACK listings `entries`."""
    entry = rng.choice(entries)
    city = rng.choice(cities)
    return {
        "subject_id": entry["subject_id"],
        "list_revision": entry["revision"],
        "city": city,
        "measure_code": rng.choice(entry["measures"])["code"],
        "outcome": rng.choice(("APPLIED", "APPLIED", "APPLIED", "HIT", "NOT_APPLICABLE")),
        "business_ref": ref,
        "reported_at": reported_at,
    }
