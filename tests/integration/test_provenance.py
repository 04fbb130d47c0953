"""A downstream subscriber checks a credit record's origin on the real broker, with nothing but the
roster's public keys: a signed record verifies on its input topic and its accepted stream, forged
ones are refused with their reason."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from schemas.errors import Reason
from tests.conftest import example
from topics.context import Context, build_context
from topics.kafka_auth import client_config
from topics.provenance import Signer
from topics.publisher import Publisher
from topics.subscriber import Delivery, Subscriber, verify_origin

pytestmark = pytest.mark.integration


def read_all(ctx: Context, topic: str, count: int, verify: bool = True) -> dict[bytes | None, Delivery]:
    sub = Subscriber(ctx, [topic], from_beginning=True, verify=verify)
    got: list[Delivery] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            got += sub.poll(timeout_ms=300)
    finally:
        sub.close()
    assert len(got) == count, got
    return {d.key: d for d in got}


def test_subscriber_verifies_a_signed_credit_record_and_refuses_forgeries(ctx: Context, tmp_path: Path) -> None:
    topic = ctx.topics.topic("credit.record")
    with Publisher(ctx, "320100", "test") as nanjing:
        signed = nanjing.prepare("credit.record", {**example("credit.record"), "record_id": "320100-AP-1"})
        nanjing.send_prepared(signed).get(timeout=30)
    with Publisher(ctx, "320100", "test", sign=False) as unsigned_pub:
        claimed = unsigned_pub.prepare("credit.record", {**example("credit.record"), "record_id": "320100-AP-2"})
    zhenjiang = Signer.for_city(ctx.settings, ctx.circle, "321100")
    forged = [
        (b"a-unsigned", claimed.value, []),
        # Zhenjiang's valid signature on a record that claims to come from Nanjing
        (b"b-other-city", claimed.value, zhenjiang.headers(topic, claimed.value)),
        # Nanjing's signature of one record copied onto another
        (b"c-copied", claimed.value, list(signed.headers)),
    ]
    raw = KafkaProducer(bootstrap_servers=ctx.settings.bootstrap, acks="all", **client_config(ctx.settings))
    try:
        for key, value, headers in forged:
            raw.send(topic, key=key, value=value, headers=headers).get(timeout=30)
        # the owner forwards an accepted record byte for byte, headers included, to the accepted stream
        raw.send(ctx.topics.accepted("credit.record"), key=signed.key, value=signed.value, headers=list(signed.headers))
        raw.flush()
    finally:
        raw.close()

    # the subscriber's side: a data directory holding only the roster's public keys
    shutil.copy(ctx.settings.roster_keys_path, tmp_path / "roster.json")
    public_only = build_context(ctx.settings.with_(data_dir=tmp_path, roster_keys_file=tmp_path / "roster.json"))
    assert not public_only.settings.keys_dir.exists()

    got = read_all(public_only, topic, 4)
    good = got[signed.key]
    assert good.event is not None and good.event["record_id"] == "320100-AP-1" and good.origin == "320100"
    reasons = {key: (d.error.reason if d.error else None, d.event) for key, d in got.items() if key != signed.key}
    assert reasons == {
        b"a-unsigned": (Reason.UNSIGNED, None),
        b"b-other-city": (Reason.SOURCE_MISMATCH, None),
        b"c-copied": (Reason.BAD_SIGNATURE, None),
    }
    accepted = read_all(public_only, ctx.topics.accepted("credit.record"), 1)[signed.key]
    assert accepted.origin == "320100" and accepted.event is not None

    # the same check as a helper, on deliveries read without verification
    plain = read_all(public_only, topic, 4, verify=False)
    assert verify_origin(public_only.verifier, plain[signed.key]) == "320100"
