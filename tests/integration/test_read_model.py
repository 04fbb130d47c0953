"""The SQL read model and its batched sink: the same suite on SQLite and on PostgreSQL.

Kafka, Apicurio and both databases are real: PostgreSQL is a throwaway cluster from Debian's
packages, started once per session.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy.engine import Engine

from ops.postgres import LocalPostgres
from services.api.app import create_app
from services.api.tokens import TokenStore
from services.readmodel.db import current_revision, head_revision, make_engine, migrate
from services.readmodel.sql import SqlSink, upsert
from services.readmodel.tables import PROJECTIONS, credit_profiles
from tests.integration.conftest import PORT_SHIFT
from topics.context import Context
from topics.identifiers import uscc_check_char
from topics.kafka_auth import client_config
from topics.metrics import Metrics
from topics.subscriber import Subscriber

PG_PORT = 15432 + PORT_SHIFT
AS_OF = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def uscc(seed: int) -> str:
    first = f"91320100MB{seed:07d}"
    return first + uscc_check_char(first)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    # not under pytest's tmp dir: that is private to this user, and PostgreSQL runs as `postgres` under root
    directory = Path(tempfile.mkdtemp(prefix="tongcheng-pg-"))
    pg = LocalPostgres(directory, PG_PORT)
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'read.db'}"
    else:
        pg: LocalPostgres = request.getfixturevalue("postgres")
        name = f"t{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(pg.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = pg.url.rsplit("/", 1)[0] + f"/{name}"
    eng = make_engine(url)
    migrate(eng)
    yield eng
    eng.dispose()


def profile(subject: str, revision: int, grade: str = "B", cities: tuple[str, ...] = ("320100",)) -> dict[str, Any]:
    return {
        "meta": {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subject}#{revision}")),
            "event_type": "credit.profile",
            "source_city": cities[0],
            "source_system": "test",
            "occurred_at": AS_OF,
            "published_at": AS_OF,
            "correlation_id": None,
            "causation_id": None,
        },
        "subject_id": subject,
        "subject_kind": "ENTERPRISE",
        "name": "南京某某科技有限公司",
        "grade": grade,
        "counts": {"positive": 0, "neutral": 0, "negative": 1, "minor": 0, "general": 1, "serious": 0},
        "cities": list(cities),
        "active_records": [
            {
                "record_id": f"{subject}-r{revision}",
                "source_city": cities[0],
                "category": "ADMIN_PENALTY",
                "polarity": "NEGATIVE",
                "severity": "GENERAL",
                "domain": None,
                "decision_no": "宁市监罚〔2026〕1号",
                "decision_date": date(2026, 5, 1),
                "active_until": date(2027, 5, 1),
            }
        ],
        "revision": revision,
        "as_of": AS_OF,
    }


def rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.subject_id: r for r in conn.execute(sa.select(credit_profiles))}


def drain(sink: SqlSink, expected: int, max_polls: int = 60) -> int:
    seen = 0
    for _ in range(max_polls):
        seen += sink.step()
        if seen >= expected:
            break
    return seen


def consumed(metrics: Metrics, topic: str) -> dict[str, float]:
    out = {}
    for outcome in ("applied", "duplicate", "rejected"):
        value = metrics.registry.get_sample_value(
            "tongcheng_events_consumed_total", {"service": "readmodel", "topic": topic, "outcome": outcome}
        )
        out[outcome] = value or 0.0
    return out


def test_migrations_reach_head_and_are_idempotent(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert migrate(engine) == head_revision()  # a second run changes nothing
    assert "credit_profiles" in sa.inspect(engine).get_table_names()


def test_upsert_never_replaces_a_newer_row(engine: Engine) -> None:
    project = PROJECTIONS["credit.profile"]
    s = uscc(1)
    with engine.begin() as conn:
        upsert(conn, credit_profiles, [project.row(profile(s, 2, "C"), 0, 10)], project.keys, project.version)
        upsert(conn, credit_profiles, [project.row(profile(s, 1, "D"), 0, 5)], project.keys, project.version)
    assert (rows(engine)[s].revision, rows(engine)[s].grade) == (2, "C")
    with engine.begin() as conn:
        upsert(conn, credit_profiles, [project.row(profile(s, 3, "A"), 0, 11)], project.keys, project.version)
    got = rows(engine)[s]
    assert (got.revision, got.grade, got.source_offset) == (3, "A", 11)
    assert got.active_records[0]["decision_date"] == "2026-05-01" and got.counts["general"] == 1


def test_sink_batches_profiles_into_rows_and_dead_letters_the_rest(ctx: Context, engine: Engine) -> None:
    topic = ctx.topics.topic("credit.profile")
    subjects = [uscc(100 + i) for i in range(300)]
    producer = KafkaProducer(
        bootstrap_servers=ctx.settings.bootstrap, acks="all", linger_ms=5, **client_config(ctx.settings)
    )
    sent = 0
    for rev in (1, 2):
        for s in subjects:
            value = ctx.codec.encode(f"{topic}-value", "CreditProfile", profile(s, rev, "C" if rev == 2 else "B"))
            producer.send(topic, key=s.encode(), value=value)
            sent += 1
    stale = ctx.codec.encode(f"{topic}-value", "CreditProfile", profile(subjects[0], 1, "D"))
    producer.send(topic, key=subjects[0].encode(), value=stale)  # an older revision arriving late
    producer.send(topic, key=subjects[1].encode(), value=b"\x00\x00\x00\x00\x01not avro")
    producer.send(topic, key=subjects[2].encode(), value=None)  # tombstone: the subject is gone
    producer.flush()
    producer.close()
    sent += 3

    metrics = Metrics()
    sink = SqlSink(ctx, engine, PROJECTIONS.values(), group_id=f"sink-{uuid.uuid4().hex[:8]}", metrics=metrics)
    try:
        assert drain(sink, sent) == sent
    finally:
        sink.close()
    got = rows(engine)
    assert len(got) == 299 and subjects[2] not in got
    assert {r.revision for r in got.values()} == {2} and {r.grade for r in got.values()} == {"C"}
    counts = consumed(metrics, topic)
    assert counts["rejected"] == 1 and counts["duplicate"] >= 1
    assert sum(counts.values()) == sent  # every record is applied, a duplicate or rejected

    dlq = Subscriber(ctx, [ctx.topics.dlq("credit.profile")], from_beginning=True)
    dead = []
    for _ in range(20):
        dead += dlq.poll(timeout_ms=300)
        if dead:
            break
    dlq.close()
    assert [d.headers["error.reason"] for d in dead] == ["undecodable"]
    assert dead[0].value == b"\x00\x00\x00\x00\x01not avro"  # byte for byte
    assert dead[0].headers["source.key"] == subjects[1]
    where = (dead[0].headers["source.topic"], dead[0].headers["source.partition"], dead[0].headers["source.offset"])
    assert dead[0].key == "/".join(where).encode()  # keyed by where the bad record is


def test_redelivery_into_a_fresh_group_changes_nothing(ctx: Context, engine: Engine) -> None:
    topic = ctx.topics.topic("credit.profile")
    producer = KafkaProducer(bootstrap_servers=ctx.settings.bootstrap, acks="all", **client_config(ctx.settings))
    for i in range(50):
        s = uscc(500 + i)
        producer.send(topic, key=s.encode(), value=ctx.codec.encode(f"{topic}-value", "CreditProfile", profile(s, 1)))
    producer.flush()
    producer.close()
    first = SqlSink(ctx, engine, PROJECTIONS.values(), group_id=f"a-{uuid.uuid4().hex[:8]}")
    assert drain(first, 50) == 50
    first.close()
    before = {k: (r.revision, r.source_offset, r.updated_at) for k, r in rows(engine).items()}
    metrics = Metrics()
    again = SqlSink(ctx, engine, PROJECTIONS.values(), group_id=f"b-{uuid.uuid4().hex[:8]}", metrics=metrics)
    assert drain(again, 50) == 50
    again.close()
    after = {k: (r.revision, r.source_offset, r.updated_at) for k, r in rows(engine).items()}
    assert after == before  # not even rewritten
    assert consumed(metrics, topic) == {"applied": 0.0, "duplicate": 50.0, "rejected": 0.0}


def test_credit_endpoint_reads_the_read_model(ctx: Context, engine: Engine, tmp_path: Path) -> None:
    project = PROJECTIONS["credit.profile"]
    s = uscc(900)
    with engine.begin() as conn:
        upsert(conn, credit_profiles, [project.row(profile(s, 4, "C", ("320100", "341100")), 1, 7)], project.keys, None)
    store = TokenStore(tmp_path / "tokens.json")
    _, token = store.issue("320100", ("read",))
    client = TestClient(create_app(ctx, store, Metrics(), engine=engine), headers={"Authorization": f"Bearer {token}"})
    ok = client.get(f"/v1/credit/{s}")
    assert ok.status_code == 200
    body = ok.json()
    assert (body["grade"], body["cities"], body["revision"]) == ("C", ["320100", "341100"], 4)
    assert body["as_of"] == "2026-11-22T06:00:00.000Z"
    missing = client.get(f"/v1/credit/{uscc(901)}")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = client.get("/v1/credit/91320100MB00009000")  # wrong check character
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_subject_id"
