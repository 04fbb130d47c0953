"""The cities' signing keys held by one installation, and its roster keys file.

Private keys are PEM (PKCS #8, unencrypted) files `<data dir>/keys/<city>-<hex>.pem`, mode 0600 in
a 0700 directory. Public keys go to the roster keys file (TONGCHENG_ROSTER_KEYS_FILE, default
`<data dir>/roster-keys.json`), which the circle loader merges with the keys the circle file lists.
Writers take a lock, so two processes creating missing keys at once make one key per city.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.errors import ConfigError
from topics.circle import (
    MAX_KEYS_PER_CITY,
    Circle,
    CircleFileError,
    RosterKey,
    key_id,
    load_circle,
    parse_keys,
    read_keys_file,
)
from topics.context import Context
from topics.provenance import private_key_path, raw_public_key
from topics.settings import Settings


@dataclass(frozen=True)
class KeyRow:
    city: str
    kid: str
    where: str  # "circle file" or "roster keys file"
    private: bool  # its private key is under the keys directory
    added_at: str


class KeyStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.keys_dir
        self.roster_file = settings.roster_keys_path

    def circle(self) -> Circle:
        s = self.settings
        try:
            return load_circle(s.circle_file, s.circle, self.roster_file)
        except CircleFileError as exc:
            raise ConfigError(str(exc)) from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_roster(self, keys: list[RosterKey]) -> None:
        self.roster_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.roster_file.with_name(self.roster_file.name + ".tmp")
        tmp.write_text(json.dumps({"keys": [k.as_json() for k in keys]}, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.roster_file)

    def _new_key(self, city: str) -> RosterKey:
        """A new key pair: the private key written 0600 before the public key reaches the roster."""
        private = Ed25519PrivateKey.generate()
        raw = raw_public_key(private.public_key())
        kid = key_id(city, raw)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(private_key_path(self.dir, kid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return RosterKey(city, kid, raw, datetime.now(UTC).isoformat(timespec="seconds"))

    def _check_city(self, circle: Circle, city: str) -> None:
        if city not in circle.signers:
            raise ConfigError(
                f"{city} is not a member city of {circle.code} nor a signing service: {', '.join(circle.signers)}"
            )

    def ensure(self) -> list[str]:
        """A key pair for every member city and signing service that has no roster key; returns the new key ids."""
        with self._locked():
            circle = self.circle()
            keys = read_keys_file(self.roster_file)
            made = [self._new_key(city) for city in circle.signers if not circle.keys_of(city)]
            if made:
                self._write_roster(keys + made)
            return [k.kid for k in made]

    def rotate(self, city: str) -> str:
        """A new key for `city`, used for signing from now on; the old one stays valid until retired."""
        with self._locked():
            circle = self.circle()
            self._check_city(circle, city)
            if len(circle.keys_of(city)) >= MAX_KEYS_PER_CITY:
                raise ConfigError(
                    f"city {city} already has {MAX_KEYS_PER_CITY} valid keys "
                    f"({', '.join(k.kid for k in circle.keys_of(city))}); retire the old one first"
                )
            new = self._new_key(city)
            self._write_roster([*read_keys_file(self.roster_file), new])
            return new.kid

    def add(self, city: str, public_key_b64: str) -> str:
        """Enrol a public key a city made itself (its private key never leaves the city)."""
        with self._locked():
            circle = self.circle()
            self._check_city(circle, city)
            try:
                (key,) = parse_keys([{"city": city, "public_key": public_key_b64}], "the key given")
            except CircleFileError as exc:
                raise ConfigError(str(exc)) from exc
            if key.kid in {k.kid for k in circle.keys_of(city)}:
                return key.kid
            if len(circle.keys_of(city)) >= MAX_KEYS_PER_CITY:
                raise ConfigError(
                    f"city {city} already has {MAX_KEYS_PER_CITY} valid keys "
                    f"({', '.join(k.kid for k in circle.keys_of(city))}); retire one first"
                )
            stamped = RosterKey(city, key.kid, key.public_key, datetime.now(UTC).isoformat(timespec="seconds"))
            self._write_roster([*read_keys_file(self.roster_file), stamped])
            return key.kid

    def retire(self, city: str, kid: str) -> None:
        """Remove a key from the roster: records signed with it are refused from now on. Its private
        key file is kept, renamed `.retired`, so that nothing signs with it by mistake."""
        with self._locked():
            keys = read_keys_file(self.roster_file)
            mine = [k for k in keys if k.city == city]
            if kid not in {k.kid for k in mine}:
                inline = {k.kid for k in load_circle(self.settings.circle_file, self.settings.circle).keys_of(city)}
                where = "it is listed in the circle file; edit that file" if kid in inline else "no such key"
                raise ConfigError(f"cannot retire {kid} of city {city} from {self.roster_file}: {where}")
            if len(self.circle().keys_of(city)) < 2:
                raise ConfigError(f"{kid} is the only key of city {city}; first `tongcheng keys rotate {city}`")
            self._write_roster([k for k in keys if k.kid != kid])
            path = private_key_path(self.dir, kid)
            if path.exists():
                path.replace(path.with_suffix(".retired"))

    def rows(self) -> list[KeyRow]:
        in_file = {k.kid for k in read_keys_file(self.roster_file)}
        return [
            KeyRow(
                k.city,
                k.kid,
                "roster keys file" if k.kid in in_file else "circle file",
                private_key_path(self.dir, k.kid).exists(),
                k.added_at,
            )
            for k in self.circle().all_keys()
        ]


def ensure_keys(ctx: Context) -> list[str]:
    """What the embedded setup runs before anything publishes: a key pair for every city that has
    none; `ctx.circle` is reloaded with the new public keys."""
    store = KeyStore(ctx.settings)
    made = store.ensure()
    if made:
        ctx.circle = store.circle()
    return made
