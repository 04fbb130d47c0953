"""The ACL declaration (topics/acls.py) expanded for a prefix: who may write and read what."""

from __future__ import annotations

import pytest

from topics.acls import SERVICES, Binding, bindings, managed, writes
from topics.catalog import INPUT_TYPES, OWNER, WRITERS, Catalog

PREFIX = "njmc"
CITIES = ["320100", "341800"]
CATALOG = Catalog(PREFIX)


@pytest.fixture(scope="module")
def declared() -> set[Binding]:
    return bindings(PREFIX, CITIES)


def allowed(declared: set[Binding], operation: str, topic: str) -> set[str]:
    return {
        b.principal.removeprefix("User:")
        for b in declared
        if b.resource == "TOPIC" and b.pattern == "LITERAL" and b.name == topic and b.operation == operation
    }


def test_every_topic_of_the_catalogue_has_its_writers_and_only_those(declared: set[Binding]) -> None:
    cities = {f"city-{c}" for c in CITIES}
    for event_type in INPUT_TYPES:
        extra = {"credit"} if event_type == "credit.record" else set()  # enforcement into credit
        assert allowed(declared, "WRITE", CATALOG.topic(event_type)) == cities | {"api"} | extra
        assert allowed(declared, "WRITE", CATALOG.accepted(event_type)) == {OWNER[event_type]}
        # one verdict per event: only the owner dead-letters an input
        assert allowed(declared, "WRITE", CATALOG.dlq(event_type)) == {OWNER[event_type]}
    for event_type, writers in WRITERS.items():
        assert allowed(declared, "WRITE", CATALOG.topic(event_type)) == set(writers)


def test_a_city_reads_only_the_derived_topics_and_the_accepted_credit_records(declared: set[Binding]) -> None:
    reads = {b.name for b in declared if b.principal == "User:city-320100" and b.operation == "READ"}
    public = {CATALOG.topic(t) for t in WRITERS if t != "audit.read"}
    assert reads == public | {CATALOG.accepted("credit.record"), "njmc.city-320100."}
    # the audit trail of personal-data reads: the api writes it, no principal but admin reads it
    assert allowed(declared, "READ", CATALOG.topic("audit.read")) == set()
    assert allowed(declared, "WRITE", CATALOG.topic("audit.read")) == {"api"}
    for spec in CATALOG.specs():  # no raw input, other accepted stream or DLQ: other cities' submissions
        if spec.name not in reads:
            assert "city-320100" not in allowed(declared, "READ", spec.name)


def test_the_owners_read_raw_input_and_the_others_their_accepted_streams(declared: set[Binding]) -> None:
    for event_type, owner in OWNER.items():
        assert owner in allowed(declared, "READ", CATALOG.topic(event_type))
    assert "supervision" in allowed(declared, "READ", CATALOG.accepted("enforcement.action"))
    for t in ("emergency.ack", "project.plan", "project.milestone"):
        assert "readmodel" in allowed(declared, "READ", CATALOG.accepted(t))
    for t in ("credit.profile", "sanction.list", "sanction.tracking", "emergency.dispatch"):
        assert "readmodel" in allowed(declared, "READ", CATALOG.topic(t))


def test_the_read_model_may_read_every_topic_of_its_projections(declared: set[Binding]) -> None:
    from services.readmodel.tables import PROJECTIONS

    for event_type in PROJECTIONS:
        readable = {CATALOG.topic(event_type), CATALOG.accepted(event_type) if event_type in OWNER else ""}
        assert any("readmodel" in allowed(declared, "READ", t) for t in readable), event_type
    assert "sanctions" in allowed(declared, "READ", CATALOG.topic("credit.profile"))


def test_each_consumer_owns_its_group_and_internal_topics(declared: set[Binding]) -> None:
    for service in ("credit", "sanctions", "emergency", "supervision", "readmodel"):
        own = [b for b in declared if b.principal == f"User:{service}" and b.pattern == "PREFIXED"]
        assert {(b.resource, b.operation) for b in own} >= {("GROUP", "READ"), ("TOPIC", "CREATE"), ("TOPIC", "WRITE")}
        assert {b.name for b in own} == {f"tongcheng-{service}-{PREFIX}-"}
        assert Binding(f"User:{service}", "GROUP", f"tongcheng-{service}-{PREFIX}", "LITERAL", "READ") in declared
    assert not [b for b in declared if b.resource in ("CLUSTER", "TRANSACTIONAL_ID")]
    assert {b for b in declared if b.principal == "User:lag"} == {
        Binding("User:lag", "TOPIC", "*", "LITERAL", "DESCRIBE"),
        Binding("User:lag", "GROUP", "*", "LITERAL", "DESCRIBE"),
    }
    assert "readmodel.dlq" not in writes("readmodel")
    assert set(SERVICES) >= {b.principal.removeprefix("User:") for b in declared if "city-" not in b.principal}


def test_managed_covers_this_circle_and_its_principals_on_the_wildcard_not_other_circles() -> None:
    def b(principal: str, name: str, resource: str = "TOPIC") -> Binding:
        return Binding(f"User:{principal}", resource, name, "LITERAL", "READ")

    assert managed(b("eve", "njmc.credit.record.v1"), PREFIX, CITIES)
    assert managed(b("eve", "tongcheng-credit-njmc-subjects-changelog"), PREFIX, CITIES)
    assert managed(b("city-320100", "*"), PREFIX, CITIES)
    assert managed(b("credit", "kafka-cluster", "CLUSTER"), PREFIX, CITIES)
    assert not managed(b("eve", "*"), PREFIX, CITIES)  # another tool's principal
    assert not managed(b("city-320100", "hzmc.credit.record.v1"), PREFIX, CITIES)  # another circle


def test_a_circle_whose_prefix_starts_with_another_s_neither_grants_nor_manages_its_resources() -> None:
    """`nj` and `njmc` are two circles: applying `nj` must not grant or delete `njmc`'s resources."""
    short = bindings("nj", CITIES)
    njmc_group = "tongcheng-credit-njmc"
    for b in short:
        if b.pattern == "PREFIXED":
            assert not njmc_group.startswith(b.name) and not f"{njmc_group}-subjects-changelog".startswith(b.name), b
    theirs = Binding("User:credit", "GROUP", njmc_group, "LITERAL", "READ")
    assert not managed(theirs, "nj", CITIES) and managed(theirs, "njmc", CITIES)
