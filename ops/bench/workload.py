"""Synthetic, realistic credit traffic from the member cities, reproducible from a seed.

Each item is (city, body): a CreditRecord as JSON for `Publisher.prepare`, published as `city`.
Subjects have valid USCCs; most records are PUBLISH, some are AMEND, REVOKE and REPAIR of a city's
own earlier records, and a small share are redeliveries of an earlier event (same event_id).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

from services.common.identifiers import USCC_ALPHABET, uscc_check_char

AUTHORITIES = {
    "ADMIN_PENALTY": "市场监督管理局",
    "ADMIN_LICENSE": "行政审批局",
    "HONOR": "人民政府",
    "CREDIT_EVALUATION": "税务局",
    "ABNORMAL_OPERATION": "市场监督管理局",
    "SERIOUS_DISHONESTY_LIST": "发展和改革委员会",
}
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
    count: int, subjects: int, cities: Sequence[str], today: date, seed: int = 0
) -> Iterator[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    ids = subject_ids(subjects, seed)
    weights = [k[4] for k in KINDS]
    published: dict[str, list[tuple[str, dict[str, Any]]]] = {s: [] for s in ids}
    sent: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        roll = rng.random()
        subject = rng.choice(ids)
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
