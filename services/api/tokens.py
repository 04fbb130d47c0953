"""Bearer tokens of the HTTP API: scoped, expiring, revocable, and stored only as SHA-256 hashes.

A token is `tc_<id>_<secret>`. The id is public (it names the token in `token list`, in the audit
trail and in the logs); the secret is 32 random bytes, so a plain SHA-256 of the whole token is
enough to store it (no KDF is needed for a high-entropy secret). Each token belongs to one member
city, holds scopes and expires.

Scopes:
- `publish`: POST /v1/events/* as the token's city;
- `read`: the read endpoints, with natural persons' names masked;
- `pii`: with `read`, natural persons unmasked, each read audited with its stated purpose;
- `admin`: the token list over HTTP.

The file is written by the `tongcheng token` command (atomically, under a lock) and re-read by the
running API when it changes (`TokenStore.current`: its inode, size and mtime are looked at on each
request), so an issue or a revocation counts from the next request on.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from schemas.errors import ConfigError

SCOPES = ("publish", "read", "pii", "admin")
DEFAULT_SCOPES = ("publish", "read")
DEFAULT_TTL_DAYS = 90
MAX_TTL_DAYS = 397
#: requests per second a token may make, on average, unless it says otherwise; bursts of twice that
DEFAULT_RATE = 20.0
PREFIX = "tc_"
log = logging.getLogger(__name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an ISO-8601 time")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{where}: the time needs a UTC offset")
    return parsed


class TokenDoc(TypedDict):
    """A token as the token file stores it: its hash, never the token."""

    id: str
    city: str
    sha256: str
    scopes: list[str]
    created_at: str
    expires_at: str
    label: str
    revoked_at: str | None
    rate_per_s: float


class PublicToken(TypedDict):
    """A token as `token list` and GET /v1/tokens show it: everything but the hash, and its state."""

    id: str
    city: str
    scopes: list[str]
    created_at: str
    expires_at: str
    label: str
    revoked_at: str | None
    rate_per_s: float
    #: active, expired or revoked
    state: str


@dataclass(frozen=True)
class Token:
    id: str
    city: str
    sha256: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    label: str = ""
    revoked_at: datetime | None = None
    rate_per_s: float = DEFAULT_RATE

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def as_json(self) -> TokenDoc:
        """The stored form (the hash, never the token)."""
        return {
            "id": self.id,
            "city": self.city,
            "sha256": self.sha256,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "label": self.label,
            "revoked_at": _iso(self.revoked_at) if self.revoked_at is not None else None,
            "rate_per_s": self.rate_per_s,
        }

    def public(self, now: datetime) -> PublicToken:
        """What `token list` and GET /v1/tokens show: everything but the hash."""
        return {
            "id": self.id,
            "city": self.city,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "label": self.label,
            "revoked_at": _iso(self.revoked_at) if self.revoked_at is not None else None,
            "rate_per_s": self.rate_per_s,
            "state": self.state(now),
        }

    @classmethod
    def from_json(cls, entry: object, where: str) -> Token:
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        missing = [k for k in ("id", "city", "sha256", "scopes", "created_at", "expires_at") if k not in entry]
        if missing:
            raise ValueError(
                f"{where}: missing {', '.join(missing)}"
                + (
                    " (a token from before scopes and expiry: issue a new one with `tongcheng token issue`)"
                    if "sha256" in entry and "id" not in entry
                    else ""
                )
            )
        scopes = tuple(entry["scopes"])
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"{where}.scopes: unknown scope {unknown[0]!r}; known: {', '.join(SCOPES)}")
        revoked = entry.get("revoked_at")
        return cls(
            id=str(entry["id"]),
            city=str(entry["city"]),
            sha256=str(entry["sha256"]),
            scopes=scopes,
            created_at=_parse_time(entry["created_at"], f"{where}.created_at"),
            expires_at=_parse_time(entry["expires_at"], f"{where}.expires_at"),
            label=str(entry.get("label", "")),
            revoked_at=_parse_time(revoked, f"{where}.revoked_at") if revoked is not None else None,
            rate_per_s=float(entry.get("rate_per_s", DEFAULT_RATE)),
        )


@dataclass(frozen=True)
class Verdict:
    """Why a presented token does or does not count."""

    token: Token | None
    problem: str | None = None


@dataclass
class _Snapshot:
    tokens: dict[str, Token] = field(default_factory=dict)
    legacy: int = 0
    stamp: tuple[int, int, int] | None = None


class TokenStore:
    """The token file. Readers get a snapshot that is re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._snapshot = self._load()

    # --- reading ---------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> _Snapshot:
        stamp = self._stamp()
        if stamp is None:
            return _Snapshot()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: unreadable token file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ConfigError(f'{self.path}: expected {{"tokens": [...]}}')
        snap = _Snapshot(stamp=stamp)
        for i, entry in enumerate(data["tokens"]):
            if isinstance(entry, dict) and "id" not in entry and "sha256" in entry:
                snap.legacy += 1  # never valid: it has neither scopes nor an expiry
                continue
            try:
                token = Token.from_json(entry, f"tokens[{i}]")
            except ValueError as exc:
                raise ConfigError(f"{self.path}: {exc}") from exc
            snap.tokens[token.id] = token
        return snap

    def current(self) -> _Snapshot:
        """The tokens as the file says now: its inode, mtime and size are looked at on each call (a
        stat() costs microseconds) and it is read again when they change. A file that cannot be
        read keeps the last good snapshot (and says so once per change)."""
        stamp = self._stamp()
        if stamp == self._snapshot.stamp:
            return self._snapshot
        with self._lock:
            if stamp != self._snapshot.stamp:
                try:
                    self._snapshot = self._load()
                except ConfigError as exc:
                    log.error("token file not reloaded: %s", exc)
                    self._snapshot = replace(self._snapshot, stamp=stamp)
        return self._snapshot

    def tokens(self) -> list[Token]:
        return sorted(self.current().tokens.values(), key=lambda t: (t.created_at, t.id))

    def check(self, presented: str, now: datetime) -> Verdict:
        """The token a bearer string names, if it is valid now."""
        parts = presented.split("_", 2)
        if len(parts) != 3 or f"{parts[0]}_" != PREFIX:
            return Verdict(None, "the bearer token is not a Tongcheng token (tc_<id>_<secret>)")
        token = self.current().tokens.get(parts[1])
        if token is None or not hmac.compare_digest(token.sha256, _digest(presented)):
            return Verdict(None, "the bearer token is not known")
        state = token.state(now)
        if state != "active":
            return Verdict(None, f"the bearer token {token.id} is {state}")
        return Verdict(token)

    # --- writing (the `tongcheng token` command) -------------------------------------------

    @contextmanager
    def _editing(self) -> Iterator[dict[str, Token]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            snap = self._load()
            tokens = dict(snap.tokens)
            yield tokens
            tmp = self.path.with_suffix(".tmp")
            body = {"tokens": [t.as_json() for t in sorted(tokens.values(), key=lambda t: (t.created_at, t.id))]}
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(body, out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.path)
        self._snapshot = self._load()

    def issue(
        self,
        city: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        ttl: timedelta = timedelta(days=DEFAULT_TTL_DAYS),
        label: str = "",
        rate_per_s: float = DEFAULT_RATE,
        now: datetime | None = None,
    ) -> tuple[Token, str]:
        """Create a token; returns it and the clear token string, which is shown only once."""
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"unknown scope {unknown[0]!r}; known: {', '.join(SCOPES)}")
        if "pii" in scopes and "read" not in scopes:
            raise ValueError("the pii scope widens read: give read too")
        if not timedelta(0) < ttl <= timedelta(days=MAX_TTL_DAYS):
            raise ValueError(f"a token lives between 1 second and {MAX_TTL_DAYS} days")
        if rate_per_s <= 0:
            raise ValueError("the rate limit must be positive")
        now = now or datetime.now(UTC)
        with self._editing() as tokens:
            token_id = secrets.token_hex(4)
            while token_id in tokens:
                token_id = secrets.token_hex(4)
            clear = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            token = Token(
                id=token_id,
                city=city,
                sha256=_digest(clear),
                scopes=tuple(s for s in SCOPES if s in scopes),
                created_at=now.replace(microsecond=0),
                expires_at=(now + ttl).replace(microsecond=0),
                label=label,
                rate_per_s=rate_per_s,
            )
            tokens[token_id] = token
        return token, clear

    def revoke(self, token_id: str, now: datetime | None = None) -> Token:
        """Mark a token revoked (kept, so the audit trail's token ids stay explained)."""
        with self._editing() as tokens:
            token = tokens.get(token_id)
            if token is None:
                raise KeyError(token_id)
            if token.revoked_at is None:
                token = replace(token, revoked_at=(now or datetime.now(UTC)).replace(microsecond=0))
                tokens[token_id] = token
        return token

    @property
    def legacy(self) -> int:
        """Entries from before scopes and expiry, which never authenticate."""
        return self.current().legacy
