"""Authentication and ACLs on the real SASL/SCRAM broker: who is refused, the drift `acl diff`
reports and `acl apply` removes, a city's secret rotated, and a client over SASL_SSL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ACL, ACLOperation, ACLPermissionType, NewTopic, ResourcePattern, ResourceType
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from ops import certs
from ops.broker import local, processes
from ops.chaos.probes import worker_env
from tests.conftest import example
from topics import kafka_auth
from topics.context import Context
from topics.publisher import Publisher
from topics.settings import Settings

CITY = "320100"


def as_user(settings: Settings, user: str, secret: str | None = None) -> Settings:
    return settings.with_(kafka_user=user, kafka_password=secret or "")


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", max_block_ms=10_000, **kafka_auth.client_config(settings)
    )


def tongcheng(settings: Settings, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command line as an operator runs it against the test's circle (as admin)."""
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *argv],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_city_writes_its_inputs_but_never_a_derived_topic(ctx: Context) -> None:
    city = as_user(ctx.settings, f"city-{CITY}")
    with Publisher(Context(city, ctx.circle, ctx.schemas, ctx.topics), CITY, "auth-test") as pub:
        pub.publish("credit.record", example("credit.record"))  # its own input: allowed
    p = producer(city)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            p.send(ctx.topics.topic("credit.profile"), b"a forged profile").get(timeout=15)
    finally:
        p.close(timeout=5)
    # nor may it read the raw inputs, which hold the other cities' submissions as they were sent
    consumer = KafkaConsumer(bootstrap_servers=city.bootstrap, **kafka_auth.client_config(city))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.assign([TopicPartition(ctx.topics.topic("credit.record"), 0)])
            consumer.seek_to_beginning()
            consumer.poll(timeout_ms=5_000)
    finally:
        consumer.close()


def refused(settings: Settings, **config: object) -> None:
    """Connect as `settings` (with `config` on top) and list the topics: raises when refused."""
    config = {**kafka_auth.client_config(settings), **config}
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap, request_timeout_ms=3_000, bootstrap_timeout_ms=2_000, **config
    )
    try:
        admin.list_topics()
    finally:
        admin.close()


def test_anonymous_and_wrong_secret_clients_are_refused(stack: Settings) -> None:
    anonymous = {"security_protocol": "PLAINTEXT", "sasl_mechanism": None}  # no authentication at all
    for settings, config in (
        (stack, anonymous),
        (as_user(stack, f"city-{CITY}", "guessed"), {}),
        (as_user(stack, "nobody", "whatever"), {}),
    ):
        with pytest.raises(KafkaError):
            refused(settings, **config)
    refused(stack)  # while admin with its secret gets through


def test_a_hand_made_grant_is_drift_that_apply_removes_and_apply_is_idempotent(ctx: Context) -> None:
    settings = ctx.settings
    profile = ctx.topics.topic("credit.profile")
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_auth.client_config(settings))
    grant = ACL(
        principal=f"User:city-{CITY}",
        host="*",
        operation=ACLOperation.WRITE,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(ResourceType.TOPIC, profile),
    )
    try:
        assert not admin.create_acls([grant])["failed"]
    finally:
        admin.close()
    time.sleep(1)  # the authorizer learns it from the metadata log

    diff = tongcheng(settings, "acl", "diff")
    assert diff.returncode == 1, diff.stdout + diff.stderr
    extra = [line for line in diff.stdout.splitlines() if line.startswith("extra")]
    assert len(extra) == 1 and f"User:city-{CITY}" in extra[0] and "WRITE" in extra[0] and profile in extra[0]
    assert diff.stdout.splitlines()[-1].startswith("0 missing, 1 extra")

    applied = tongcheng(settings, "acl", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "0 created, 1 deleted" in applied.stdout
    again = tongcheng(settings, "acl", "apply")
    assert again.returncode == 0 and "0 created, 0 deleted" in again.stdout, again.stdout + again.stderr
    clean = tongcheng(settings, "acl", "diff")
    assert clean.returncode == 0 and clean.stdout.splitlines()[-1].startswith("0 missing, 0 extra"), clean.stdout


def test_rotated_city_credentials_replace_the_old_secret(ctx: Context) -> None:
    city = "341800"
    old = kafka_auth.credentials(as_user(ctx.settings, f"city-{city}"))[1]
    rotated = tongcheng(ctx.settings, "city", "credentials", city)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new and new != old and "shown only once" in rotated.stderr
    assert kafka_auth.credentials(as_user(ctx.settings, f"city-{city}"))[1] == new  # stored for the embedded setup
    time.sleep(0.5)
    p = producer(as_user(ctx.settings, f"city-{city}", new))
    p.send(ctx.topics.topic("project.milestone"), b"x").get(timeout=15)  # authenticated and authorized
    p.close(timeout=5)
    with pytest.raises(KafkaError):
        refused(as_user(ctx.settings, f"city-{city}", old))


# --- SASL_SSL, the production profile's listener, on a broker of its own ------------------------

#: clear of the other stacks with TONGCHENG_TEST_PORT_SHIFT=1000 (broker restart: 25092); no registry is started
SSL_PORTS = {"kafka_port": 25592, "controller_port": 25593, "registry_port": 25581}


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data: Path = tmp_path_factory.mktemp("tls")
    settings = Settings(data_dir=data, profile="production", kafka_user="admin", **SSL_PORTS)
    certs.generate(data, list(certs.DEFAULT_HOSTS))
    p = local.paths(settings)
    local.ensure_artifacts(p)
    local.start_kafka(settings, p, say=print)
    try:
        processes.wait("kafka", lambda: local.kafka_ready(settings), p, 90, print)
        local.ensure_users(settings)
        yield settings
    finally:
        local.stop(settings, say=print)


def test_a_client_connects_over_sasl_ssl_and_trusts_only_the_ca(tls_broker: Settings) -> None:
    settings = tls_broker
    assert kafka_auth.client_config(settings)["security_protocol"] == "SASL_SSL"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **kafka_auth.client_config(settings))
    try:
        admin.create_topics([NewTopic("tls.check", 1, 1)])
    finally:
        admin.close()
    p = producer(settings)
    p.send("tls.check", b"over TLS").get(timeout=30)
    p.close(timeout=5)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap, auto_offset_reset="earliest", **kafka_auth.client_config(settings)
    )
    consumer.assign([TopicPartition("tls.check", 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while not got and time.monotonic() < deadline:
            got += [r.value for records in consumer.poll(timeout_ms=500).values() for r in records]
    finally:
        consumer.close()
    assert got == [b"over TLS"]
    # a client that does not trust the CA does not get as far as authenticating
    untrusting = {**kafka_auth.client_config(settings), "ssl_cafile": None}
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=settings.bootstrap, bootstrap_timeout_ms=2_000, **untrusting).close()
