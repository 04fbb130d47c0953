"""Provenance: each city signs the input records it publishes (Ed25519), so anyone holding the
roster's public keys can check which city sent a record, without trusting the bus.

The signed message of a record published to input topic T with value bytes V (the exact
Confluent-framed Avro value, magic byte and schema id included) is

    b"tongcheng.provenance.v1" || 0x00 || T (ASCII) || 0x00 || V

(a Kafka topic name cannot hold 0x00, so the parts cannot be confused). Two record headers carry
the proof: `tongcheng.signature`, the base64 (RFC 4648, padded) of the 64-byte Ed25519 signature,
and `tongcheng.key_id`, the key id `<city>:<first 16 hex digits of sha256(raw public key)>`, which
the roster maps to the city and its public key. T is always the input topic
(`njmc.credit.record.v1`), also when the record is read from its accepted stream
(`njmc.credit.record.accepted.v1`), to which the owner processor copies it byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.errors import ConfigError, Reason, Rejected
from topics.circle import SIGNING_SERVICES, Circle, RosterKey, key_id
from topics.settings import ENV, Settings

TAG = b"tongcheng.provenance.v1"
SIGNATURE_HEADER = "tongcheng.signature"
KEY_ID_HEADER = "tongcheng.key_id"
ACCEPTED_SUFFIX = ".accepted.v1"
#: how often a Verifier looks whether the roster keys file changed (a retired key stops verifying)
WATCH_SECONDS = 5.0

#: record headers as the Kafka clients give them; a mapping (e.g. a Delivery's) is taken too
Headers = Sequence[tuple[str, bytes | None]] | Mapping[str, bytes]
log = logging.getLogger(__name__)


def signed_topic(topic: str) -> str:
    """The topic a record's signature names: its input topic, also for its accepted stream."""
    if topic.endswith(ACCEPTED_SUFFIX):
        return topic[: -len(ACCEPTED_SUFFIX)] + ".v1"
    return topic


def signed_message(topic: str, value: bytes) -> bytes:
    return b"".join((TAG, b"\x00", signed_topic(topic).encode("ascii"), b"\x00", value))


def raw_public_key(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_key_path(keys_dir: Path, kid: str) -> Path:
    """`<keys dir>/<city>-<hex>.pem` for key id `<city>:<hex>`."""
    return keys_dir / f"{kid.replace(':', '-')}.pem"


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 private key ({type(key).__name__})")
    return key


class Signer:
    """Signs the records one city publishes."""

    def __init__(self, city: str, private_key: Ed25519PrivateKey) -> None:
        self.city = city
        self._key = private_key
        self.kid = key_id(city, raw_public_key(private_key.public_key()))
        self._kid = self.kid.encode("ascii")

    def sign(self, topic: str, value: bytes) -> bytes:
        return self._key.sign(signed_message(topic, value))

    def headers(self, topic: str, value: bytes) -> list[tuple[str, bytes]]:
        return [(SIGNATURE_HEADER, base64.b64encode(self.sign(topic, value))), (KEY_ID_HEADER, self._kid)]

    @classmethod
    def for_city(cls, settings: Settings, circle: Circle, city: str) -> Signer:
        """The signer of `city`: the key file of TONGCHENG_SIGNING_KEY_FILE if set, else the newest
        roster key of the city whose private key is under <data dir>/keys/. Its key must be in the
        roster, or every record it signs would be refused."""
        if settings.signing_key_file is not None:
            signer = cls(city, load_private_key(settings.signing_key_file))
            if signer.kid not in {k.kid for k in circle.keys_of(city)}:
                raise ConfigError(
                    f"{settings.signing_key_file} ({ENV['signing_key_file']}) holds key {signer.kid}, which the "
                    f"roster does not list for city {city}: add its public key (`tongcheng keys add {city} ...`)"
                )
            return signer
        for k in reversed(circle.keys_of(city)):
            path = private_key_path(settings.keys_dir, k.kid)
            if path.exists():
                return cls(city, load_private_key(path))
        listed = ", ".join(k.kid for k in circle.keys_of(city)) or "none"
        raise ConfigError(
            f"no private key of city {city} in {settings.keys_dir} (roster keys: {listed}): run "
            f"`tongcheng keys init`, or set {ENV['signing_key_file']}; to publish unsigned, pass sign=False"
        )


class Verifier:
    """Checks record signatures against the roster's public keys (at most two valid per city).

    Keys are parsed once; `reload` (with the file `watch`) re-reads the roster when the file changes:
    at once when a key id is unknown, otherwise at most every WATCH_SECONDS.
    """

    def __init__(
        self,
        keys: Iterable[RosterKey],
        reload: Callable[[], Iterable[RosterKey]] | None = None,
        watch: Path | None = None,
    ) -> None:
        self._reload = reload
        self._watch = watch
        self._stamp = self._stat()
        self._next_look = time.monotonic() + WATCH_SECONDS
        self._keys = self._index(keys)

    @staticmethod
    def _index(keys: Iterable[RosterKey]) -> dict[bytes, tuple[str, Ed25519PublicKey]]:
        return {k.kid.encode("ascii"): (k.city, Ed25519PublicKey.from_public_bytes(k.public_key)) for k in keys}

    @property
    def kids(self) -> list[str]:
        return sorted(k.decode() for k in self._keys)

    def _stat(self) -> tuple[int, int] | None:
        if self._watch is None:
            return None
        try:
            st = os.stat(self._watch)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def refresh(self) -> bool:
        """Re-read the roster if its file changed; True if it did."""
        self._next_look = time.monotonic() + WATCH_SECONDS
        if self._reload is None:
            return False
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        try:
            keys = self._index(self._reload())
        except (ConfigError, ValueError) as exc:  # CircleFileError is a ValueError
            log.error("roster keys not reloaded, the previous ones stay in use: %s", exc)
            return False
        self._stamp = stamp
        self._keys = keys
        log.info("roster keys reloaded from %s: %d keys", self._watch, len(keys))
        return True

    def origin(self, topic: str, value: bytes | None, headers: Headers | None) -> str:
        """The city whose roster key signed (topic, value); raises Rejected UNSIGNED or BAD_SIGNATURE."""
        sig = kid = None
        items = headers.items() if isinstance(headers, Mapping) else headers or ()
        for name, data in items:
            if name == SIGNATURE_HEADER:
                if sig is not None:
                    raise Rejected(Reason.BAD_SIGNATURE, f"two {SIGNATURE_HEADER} headers", SIGNATURE_HEADER)
                sig = data
            elif name == KEY_ID_HEADER:
                if kid is not None:
                    raise Rejected(Reason.BAD_SIGNATURE, f"two {KEY_ID_HEADER} headers", KEY_ID_HEADER)
                kid = data
        if sig is None or kid is None:
            missing = SIGNATURE_HEADER if sig is None else KEY_ID_HEADER
            raise Rejected(Reason.UNSIGNED, f"no {missing} header: the record is not signed by a city", missing)
        if time.monotonic() >= self._next_look:
            self.refresh()
        found = self._keys.get(kid)
        if found is None and self.refresh():
            found = self._keys.get(kid)
        if found is None:
            shown = kid.decode("utf-8", "replace")[:64]
            raise Rejected(Reason.BAD_SIGNATURE, f"key id {shown!r} is not a valid key of the roster", KEY_ID_HEADER)
        if value is None:
            raise Rejected(Reason.BAD_SIGNATURE, "a signed record without a value", SIGNATURE_HEADER)
        try:
            signature = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Rejected(Reason.BAD_SIGNATURE, f"{SIGNATURE_HEADER} is not base64: {exc}", SIGNATURE_HEADER) from exc
        city, public = found
        try:
            public.verify(signature, signed_message(topic, value))
        except InvalidSignature as exc:
            raise Rejected(
                Reason.BAD_SIGNATURE,
                f"the signature of key {kid.decode()} does not verify over topic {signed_topic(topic)} and this value",
                SIGNATURE_HEADER,
            ) from exc
        return city

    def check(
        self, topic: str, value: bytes | None, headers: Headers | None, source_city: str, source_system: str = ""
    ) -> str:
        """The verified signer, which must be `source_city` (meta.source_city); raises Rejected
        with UNSIGNED, BAD_SIGNATURE, or SOURCE_MISMATCH (a valid signature of another city).

        A record a bus service derived (the credit records of a closed enforcement action) is signed
        by that service (`service:credit`) and names it as `source_system` (`tongcheng-credit`): it
        verifies as `service:credit`, and counts under its `source_city`, the city of the event it
        was derived from (its `causation_id`)."""
        city = self.origin(topic, value, headers)
        service = city.removeprefix("service:")
        if service != city and source_system == f"tongcheng-{service}":
            types = SIGNING_SERVICES.get(service, ())
            if any(signed_topic(topic).endswith(f".{t}.v1") for t in types):
                return city
            raise Rejected(
                Reason.SOURCE_MISMATCH,
                f"{signed_topic(topic)} is not a topic {city} derives records for ({', '.join(types) or 'none'})",
                "meta.source_system",
            )
        if city != source_city:
            raise Rejected(
                Reason.SOURCE_MISMATCH,
                f"meta.source_city is {source_city!r} but the record is signed by city {city}",
                "meta.source_city",
            )
        return city
