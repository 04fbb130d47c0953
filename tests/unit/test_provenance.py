"""Record signatures: the signed message, the roster's keys, rotation, and what a verifier refuses."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.errors import ConfigError, Reason, Rejected
from services.common.keys import KeyStore
from topics import kafka_auth
from topics.circle import CircleFileError, RosterKey, key_id, load_circle
from topics.context import build_context
from topics.provenance import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Signer,
    Verifier,
    private_key_path,
    raw_public_key,
    signed_message,
)
from topics.settings import Settings

TOPIC = "njmc.credit.record.v1"
VALUE = b"\x00\x00\x00\x00\x07" + b"avro body"
SEED = bytes(range(32))  # a fixed private key, for golden bytes


def roster_key(city: str, key: Ed25519PrivateKey) -> RosterKey:
    raw = raw_public_key(key.public_key())
    return RosterKey(city, key_id(city, raw), raw)


@pytest.fixture
def nanjing() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def zhenjiang() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(nanjing: Ed25519PrivateKey, zhenjiang: Ed25519PrivateKey) -> Verifier:
    return Verifier([roster_key("320100", nanjing), roster_key("321100", zhenjiang)])


def rejection(verifier: Verifier, topic: str, value: bytes, headers: list[tuple[str, bytes]], city: str) -> Reason:
    with pytest.raises(Rejected) as caught:
        verifier.check(topic, value, headers, city)
    return caught.value.reason


def test_golden_message_headers_and_signature() -> None:
    """The wire format a third party implements: pinned bytes, checked with cryptography alone."""
    assert signed_message(TOPIC, VALUE) == b"tongcheng.provenance.v1\x00njmc.credit.record.v1\x00" + VALUE
    assert signed_message("njmc.credit.record.accepted.v1", VALUE) == signed_message(TOPIC, VALUE)
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    signer = Signer("320100", key)
    raw = raw_public_key(key.public_key())
    assert signer.kid == "320100:" + hashlib.sha256(raw).hexdigest()[:16] == "320100:56475aa75463474c"
    headers = dict(signer.headers(TOPIC, VALUE))
    assert headers[KEY_ID_HEADER] == b"320100:56475aa75463474c"
    # Ed25519 is deterministic: the same key and message give the same 64 bytes
    assert headers[SIGNATURE_HEADER] == (
        b"8QdRx6rlWa9ia7K/llBQyb9FI0pU+zdTVzCnfZxkxWe0u+ZVv5gGOyqPybx0+Yl/I1qdk1fX8bemkni3GuaQAg=="
    )
    signature = base64.b64decode(headers[SIGNATURE_HEADER], validate=True)
    message = b"tongcheng.provenance.v1" + b"\x00" + TOPIC.encode() + b"\x00" + VALUE
    Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)  # raises if it does not verify


def test_round_trip_on_the_input_topic_and_its_accepted_stream(nanjing: Ed25519PrivateKey, verifier: Verifier) -> None:
    headers = Signer("320100", nanjing).headers(TOPIC, VALUE)
    assert verifier.check(TOPIC, VALUE, headers, "320100") == "320100"
    assert verifier.check("njmc.credit.record.accepted.v1", VALUE, headers, "320100") == "320100"
    assert verifier.origin(TOPIC, VALUE, headers) == "320100"
    assert verifier.origin(TOPIC, VALUE, dict(headers)) == "320100"  # headers as a mapping
    assert verifier.origin(TOPIC, VALUE, (("other", b"x"), *headers)) == "320100"  # aiokafka gives a tuple


def test_tampered_value_or_topic_is_a_bad_signature(nanjing: Ed25519PrivateKey, verifier: Verifier) -> None:
    headers = Signer("320100", nanjing).headers(TOPIC, VALUE)
    assert rejection(verifier, TOPIC, VALUE + b"x", headers, "320100") is Reason.BAD_SIGNATURE
    assert rejection(verifier, TOPIC, VALUE[:-1] + b"X", headers, "320100") is Reason.BAD_SIGNATURE
    assert rejection(verifier, "njmc.enforcement.action.v1", VALUE, headers, "320100") is Reason.BAD_SIGNATURE
    assert rejection(verifier, "hzmc.credit.record.v1", VALUE, headers, "320100") is Reason.BAD_SIGNATURE


def test_unknown_key_and_malformed_headers_are_bad_signatures(nanjing: Ed25519PrivateKey, verifier: Verifier) -> None:
    outsider = Signer("320100", Ed25519PrivateKey.generate())  # claims Nanjing, not in the roster
    assert rejection(verifier, TOPIC, VALUE, outsider.headers(TOPIC, VALUE), "320100") is Reason.BAD_SIGNATURE
    good = dict(Signer("320100", nanjing).headers(TOPIC, VALUE))
    not_base64 = [(SIGNATURE_HEADER, b"%%%"), (KEY_ID_HEADER, good[KEY_ID_HEADER])]
    assert rejection(verifier, TOPIC, VALUE, not_base64, "320100") is Reason.BAD_SIGNATURE
    short = [(SIGNATURE_HEADER, base64.b64encode(b"x" * 10)), (KEY_ID_HEADER, good[KEY_ID_HEADER])]
    assert rejection(verifier, TOPIC, VALUE, short, "320100") is Reason.BAD_SIGNATURE
    twice = [*good.items(), (SIGNATURE_HEADER, good[SIGNATURE_HEADER])]
    assert rejection(verifier, TOPIC, VALUE, twice, "320100") is Reason.BAD_SIGNATURE


def test_missing_headers_are_unsigned(nanjing: Ed25519PrivateKey, verifier: Verifier) -> None:
    good = Signer("320100", nanjing).headers(TOPIC, VALUE)
    assert rejection(verifier, TOPIC, VALUE, [], "320100") is Reason.UNSIGNED
    assert rejection(verifier, TOPIC, VALUE, [("other", b"1")], "320100") is Reason.UNSIGNED
    assert rejection(verifier, TOPIC, VALUE, good[:1], "320100") is Reason.UNSIGNED
    assert rejection(verifier, TOPIC, VALUE, good[1:], "320100") is Reason.UNSIGNED


def test_a_city_signing_as_another_is_a_source_mismatch(zhenjiang: Ed25519PrivateKey, verifier: Verifier) -> None:
    headers = Signer("321100", zhenjiang).headers(TOPIC, VALUE)  # Zhenjiang's valid signature
    with pytest.raises(Rejected) as caught:
        verifier.check(TOPIC, VALUE, headers, "320100")  # on a record claiming to be from Nanjing
    assert caught.value.reason is Reason.SOURCE_MISMATCH
    assert "321100" in caught.value.detail


def settings_in(tmp_path: Path, **changes: object) -> Settings:
    return Settings(data_dir=tmp_path, **changes)  # type: ignore[arg-type]


def test_init_makes_one_private_key_per_city_readable_only_by_its_owner(tmp_path: Path) -> None:
    store = KeyStore(settings_in(tmp_path))
    made = store.ensure()
    circle = store.circle()
    assert sorted(k.rsplit(":", 1)[0] for k in made) == sorted(circle.signers)  # the cities and service:credit
    assert store.ensure() == []  # idempotent
    assert os.stat(tmp_path / "keys").st_mode & 0o777 == 0o700
    for kid in made:
        assert os.stat(private_key_path(tmp_path / "keys", kid)).st_mode & 0o777 == 0o600
    listed = json.loads((tmp_path / "roster-keys.json").read_text())["keys"]
    assert {e["kid"] for e in listed} == set(made) and not any("PRIVATE" in json.dumps(e) for e in listed)


def test_rotation_two_keys_valid_then_the_retired_one_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    store = KeyStore(settings)
    store.ensure()
    old = Signer.for_city(settings, store.circle(), "320100")
    new_kid = store.rotate("320100")
    new = Signer.for_city(settings, store.circle(), "320100")
    assert new.kid == new_kid != old.kid  # the newest key signs from now on
    with pytest.raises(ConfigError, match="already has 2 valid keys"):
        store.rotate("320100")
    ctx = build_context(settings)
    for signer in (old, new):
        assert ctx.verifier.check(TOPIC, VALUE, signer.headers(TOPIC, VALUE), "320100") == "320100"
    store.retire("320100", old.kid)
    ctx.verifier.refresh()  # a running verifier re-reads the changed roster file (within 5 s)
    with pytest.raises(Rejected) as caught:
        ctx.verifier.check(TOPIC, VALUE, old.headers(TOPIC, VALUE), "320100")
    assert caught.value.reason is Reason.BAD_SIGNATURE
    assert build_context(settings).verifier.check(TOPIC, VALUE, new.headers(TOPIC, VALUE), "320100") == "320100"
    with pytest.raises(ConfigError, match="only key"):
        store.retire("320100", new.kid)


def test_a_verifier_learns_a_key_added_after_it_started(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    store = KeyStore(settings)
    store.ensure()
    ctx = build_context(settings)
    assert ctx.verifier.kids  # built now, before the rotation
    store.rotate("321100")
    signer = Signer.for_city(settings, store.circle(), "321100")
    assert ctx.verifier.check(TOPIC, VALUE, signer.headers(TOPIC, VALUE), "321100") == "321100"


def test_signer_errors_name_the_fix(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    with pytest.raises(ConfigError, match="tongcheng keys init"):
        Signer.for_city(settings, load_circle(), "320100")
    stray = tmp_path / "stray.pem"
    KeyStore(settings).ensure()
    zhenjiang = KeyStore(settings).circle().keys_of("321100")[0].kid
    stray.write_bytes(private_key_path(tmp_path / "keys", zhenjiang).read_bytes())
    with pytest.raises(ConfigError, match="does not list for city 320100"):
        Signer.for_city(settings_in(tmp_path, signing_key_file=stray), KeyStore(settings).circle(), "320100")
    assert Signer.for_city(settings_in(tmp_path, signing_key_file=stray), KeyStore(settings).circle(), "321100")


def test_enrolling_a_city_made_key_and_the_roster_limits(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    store = KeyStore(settings)
    store.ensure()
    own = Ed25519PrivateKey.generate()  # made by the city; only its public key is given
    kid = store.add("341800", base64.b64encode(raw_public_key(own.public_key())).decode())
    verifier = build_context(settings).verifier
    assert verifier.check(TOPIC, VALUE, Signer("341800", own).headers(TOPIC, VALUE), "341800") == "341800"
    assert kid == Signer("341800", own).kid
    third = base64.b64encode(raw_public_key(Ed25519PrivateKey.generate().public_key())).decode()
    with pytest.raises(ConfigError, match="already has 2 valid keys"):
        store.add("341800", third)
    assert [k.kid for k in store.circle().keys_of("341800")][1] == kid  # the roster is left as it was
    with pytest.raises(ConfigError, match="is 3 bytes"):
        store.add("341800", base64.b64encode(b"abc").decode())
    bad = tmp_path / "bad.json"
    entry = roster_key("320100", own).as_json() | {"kid": "320100:0000000000000000"}
    bad.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(CircleFileError, match="does not match its key"):
        load_circle(keys_file=bad)
    three = [roster_key("320100", Ed25519PrivateKey.generate()).as_json() for _ in range(3)]
    bad.write_text(json.dumps({"keys": three}))
    with pytest.raises(CircleFileError, match="at most 2"):
        load_circle(keys_file=bad)


def test_checks_off_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert build_context(settings_in(tmp_path)).provenance_required is True
    with caplog.at_level("WARNING"):
        assert build_context(settings_in(tmp_path, provenance="off")).provenance_required is False
    assert "NOT checked" in caplog.text


def test_provenance_setting() -> None:
    assert Settings().provenance == "required"
    assert Settings.from_env({"TONGCHENG_PROVENANCE": "off"}).provenance == "off"
    with pytest.raises(ConfigError, match="TONGCHENG_PROVENANCE"):
        Settings(provenance="optional")


def readme_verifier() -> dict[str, object]:
    """The README's "Verifying without Tongcheng's code" example, run as written."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    after = text.split("**Verifying without Tongcheng's code**", 1)[1]
    lines = after.split("\n\n", 1)[1].splitlines()
    code = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        code.append(line[4:])
    namespace: dict[str, object] = {}
    exec(compile("\n".join(code), "README.md", "exec"), namespace)  # noqa: S102 - the documented example
    return namespace


def test_readme_example_verifies_without_our_code(tmp_path: Path) -> None:
    from cryptography.exceptions import InvalidSignature

    settings = settings_in(tmp_path)
    store = KeyStore(settings)
    store.ensure()
    roster = json.loads(settings.roster_keys_path.read_text())
    signing_city = cast(Callable[..., str], readme_verifier()["signing_city"])
    signer = Signer.for_city(settings, store.circle(), "340500")
    headers = dict(signer.headers(TOPIC, VALUE))
    assert signing_city(TOPIC, VALUE, headers, roster) == "340500"
    assert signing_city("njmc.credit.record.accepted.v1", VALUE, headers, roster) == "340500"
    with pytest.raises(InvalidSignature):
        signing_city(TOPIC, VALUE + b"!", headers, roster)
    with pytest.raises(StopIteration):
        signing_city(TOPIC, VALUE, dict(Signer("340500", Ed25519PrivateKey.generate()).headers(TOPIC, VALUE)), roster)


def test_a_publisher_signs_with_the_roster_as_it_is_when_made(tmp_path: Path) -> None:
    from topics.publisher import Publisher

    settings = settings_in(tmp_path)
    kafka_auth.secret_store(settings).ensure(["admin"])  # what the embedded broker's first start writes
    ctx = build_context(settings)  # a process started before the keys were made (e.g. the API)
    with pytest.raises(ConfigError, match="keys init"):
        Publisher(ctx, "320100", "test")
    store = KeyStore(settings)
    store.ensure()
    first = Publisher(ctx, "320100", "test")
    new_kid = store.rotate("320100")
    assert first.signer is not None and first.signer.kid != new_kid
    second = Publisher(ctx, "320100", "test")
    assert second.signer is not None and second.signer.kid == new_kid
    assert Publisher(ctx, "320100", "test", sign=False).signer is None


def test_a_record_the_credit_service_derived_verifies_as_the_service_only_under_its_own_name(
    nanjing: Ed25519PrivateKey,
) -> None:
    """The credit records of a closed enforcement action are signed by `service:credit` and name
    `tongcheng-credit` as their source system; the service's key vouches for nothing else."""
    service = Ed25519PrivateKey.generate()
    verifier = Verifier([roster_key("320100", nanjing), roster_key("service:credit", service)])
    headers = Signer("service:credit", service).headers(TOPIC, VALUE)
    assert verifier.check(TOPIC, VALUE, headers, "320100", "tongcheng-credit") == "service:credit"
    for system in ("", "tongcheng-cli", "tongcheng-sanctions"):
        with pytest.raises(Rejected) as caught:
            verifier.check(TOPIC, VALUE, headers, "320100", system)
        assert caught.value.reason is Reason.SOURCE_MISMATCH
    notice = "njmc.emergency.notice.v1"  # the service derives credit records only
    with pytest.raises(Rejected) as caught:
        verifier.check(
            notice, VALUE, Signer("service:credit", service).headers(notice, VALUE), "320100", "tongcheng-credit"
        )
    assert caught.value.reason is Reason.SOURCE_MISMATCH and "credit.record" in caught.value.detail


def test_key_init_makes_the_signing_services_keys(tmp_path: Path) -> None:
    store = KeyStore(Settings(data_dir=tmp_path))
    made = store.ensure()
    assert len([k for k in made if k.startswith("service:credit:")]) == 1 and len(made) == 11
    signer = Signer.for_city(store.settings, store.circle(), "service:credit")
    assert signer.kid in made and store.ensure() == []
