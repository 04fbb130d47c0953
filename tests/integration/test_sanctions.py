"""The list chain on the real broker: records -> credit worker -> profiles -> sanctions worker -> list."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.context import Context
from services.common.settings import Settings
from services.sanctions.rules import RULES
from tests.integration.conftest import fresh_settings, latest, provisioned, spawn_worker, stop_worker
from tests.integration.test_credit import profiles, record, uscc
from topics.publisher import Publisher

NOW = datetime.now(UTC)
LONG_AGO = (NOW - timedelta(days=400)).date().isoformat()
RECENT = (NOW - timedelta(days=30)).date().isoformat()


@pytest.fixture(scope="module")
def chain(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    data = tmp_path_factory.mktemp("sanctions")
    clock_file = data / "clock"
    clock_file.write_text(NOW.isoformat())
    settings = fresh_settings(stack, data_dir=data, metrics_port=19700, clock_file=clock_file)
    ctx = provisioned(settings)
    procs = [spawn_worker(settings, service) for service in ("credit", "sanctions")]
    yield ctx
    for proc in procs:
        stop_worker(proc)


def entries(ctx: Context, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return latest(ctx, "sanction.list", "subject_id", until)


def test_serious_penalty_blacklists_in_all_cities_and_repair_removes(chain: Context) -> None:
    s = uscc(301)
    with Publisher(chain, "321100", "test") as pub:
        pub.publish("credit.record", record(s, "k-1", severity="SERIOUS", domain=None, decision_date=LONG_AGO))
    got = entries(chain, lambda e: s in e)[s]
    assert (got["list"], got["status"], got["initiated_by"], got["revision"]) == ("BLACK", "LISTED", "321100", 1)
    assert [m["code"] for m in got["measures"]] == list(RULES.lists["BLACK"].measures)
    assert len(got["measures"]) == 6
    assert all(sorted(m["applies_in"]) == sorted(chain.circle.codes) for m in got["measures"])
    assert len(chain.circle.codes) == 10 and got["reasons"] == ["k-1"]
    with Publisher(chain, "321100", "test") as pub:
        pub.publish("credit.record", record(s, "k-1", action="REPAIR", severity="SERIOUS", domain=None))
    got = entries(chain, lambda e: e[s]["status"] == "REMOVED")[s]
    assert got["revision"] == 2 and "repaired or revoked: k-1" in got["removal_reason"]


def test_focus_needs_two_cities(chain: Context) -> None:
    two, one = uscc(302), uscc(303)
    for city, subject, rid in (
        ("320100", two, "f-1"),
        ("340500", two, "f-2"),
        ("320100", one, "f-3"),
        ("320100", one, "f-4"),
    ):
        with Publisher(chain, city, "test") as pub:
            pub.publish("credit.record", record(subject, rid, severity="GENERAL", domain=None, decision_date=RECENT))
    profiles(chain, lambda p: one in p and len(p[one]["active_records"]) == 2)
    with Publisher(chain, "320100", "test") as pub:  # then a SERIOUS record for the one-city subject
        pub.publish("credit.record", record(one, "f-5", severity="SERIOUS", domain=None))
    got = entries(chain, lambda e: one in e and two in e)
    assert got[two]["list"] == "FOCUS" and [m["code"] for m in got[two]["measures"]] == ["INSPECTION_INTENSIFIED"]
    # its profiles are decided in order, so revision 1 means the two GENERALs listed nothing before it
    assert (got[one]["list"], got[one]["revision"]) == ("BLACK", 1)


def test_grade_a_with_two_positives_is_red(chain: Context) -> None:
    s = uscc(305)
    with Publisher(chain, "341100", "test") as pub:
        for rid in ("h-1", "h-2"):
            pub.publish(
                "credit.record",
                record(
                    s, rid, category="HONOR", polarity="POSITIVE", severity="NONE", domain=None, decision_date=RECENT
                ),
            )
    got = entries(chain, lambda e: s in e)[s]
    assert got["list"] == "RED" and got["initiated_by"] == "341100"
    assert {m["code"] for m in got["measures"]} == {"GREEN_CHANNEL", "TOLERANT_ACCEPTANCE", "INSPECTION_REDUCED"}
