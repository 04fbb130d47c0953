"""Who is calling: bearer-token authentication, scopes, per-token rate limits and the stated purpose
of a personal-data read.

Every operation but the public ones (the status page, health, readiness and metrics, which show
aggregates only) depends on `Auth.require(scope)`. The answer to a missing or unknown token is 401,
to a token without the scope 403, to a token over its rate 429 with Retry-After.
"""

from __future__ import annotations

import math
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from fastapi import Header, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.problems import Problem
from services.api.tokens import Token, TokenStore

PURPOSE_HEADER = "X-Tongcheng-Purpose"
PURPOSE_MIN, PURPOSE_MAX = 4, 200

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A token from `tongcheng token issue CITY --scope ...` (tc_<id>_<secret>).",
)


@dataclass(frozen=True)
class Caller:
    token: Token
    #: why personal data is read; only with the `pii` scope, where it is required
    purpose: str | None = None

    @property
    def city(self) -> str:
        return self.token.city

    @property
    def unmasked(self) -> bool:
        """Whether natural persons are shown in full (and each such read audited)."""
        return "pii" in self.token.scopes and self.purpose is not None


class RateLimiter:
    """A token bucket per token: `rate_per_s` on average, bursts of twice that."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, token: Token) -> float | None:
        """None when the request may go; otherwise the seconds until it could."""
        rate, burst = token.rate_per_s, 2 * token.rate_per_s
        now = self.clock()
        with self._lock:
            level, then = self._buckets.get(token.id, (burst, now))
            level = min(burst, level + (now - then) * rate)
            if level >= 1.0:
                self._buckets[token.id] = (level - 1.0, now)
                return None
            self._buckets[token.id] = (level, now)
            return (1.0 - level) / rate


def check_purpose(raw: str) -> str:
    """The stated purpose, percent-decoded (headers are ASCII; Chinese text is sent %-encoded)."""
    try:
        text = unquote(raw, errors="strict").strip() if "%" in raw else raw.strip()
    except UnicodeDecodeError:
        text = ""
    if not PURPOSE_MIN <= len(text) <= PURPOSE_MAX or any(unicodedata.category(c)[0] == "C" for c in text):
        raise Problem(
            400,
            "Invalid purpose",
            f"{PURPOSE_HEADER} states why personal data is read: {PURPOSE_MIN} to {PURPOSE_MAX} printable "
            "characters (percent-encode non-ASCII text)",
            field=PURPOSE_HEADER,
        )
    return text


class Auth:
    def __init__(
        self,
        store: TokenStore,
        limiter: RateLimiter | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.limiter = limiter or RateLimiter()
        self.now = now

    def authenticate(self, credentials: HTTPAuthorizationCredentials | None, scope: str) -> Token:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise Problem(401, "Unauthorized", "a bearer token is required: Authorization: Bearer <token>")
        verdict = self.store.check(credentials.credentials.strip(), self.now())
        if verdict.token is None:
            raise Problem(401, "Unauthorized", verdict.problem or "the bearer token is not valid")
        token = verdict.token
        if scope not in token.scopes:
            raise Problem(
                403,
                "Forbidden",
                f"token {token.id} lacks the {scope!r} scope (it has {', '.join(token.scopes)})",
                reason="missing_scope",
            )
        wait = self.limiter.take(token)
        if wait is not None:
            raise Problem(
                429,
                "Too many requests",
                f"token {token.id} is limited to {token.rate_per_s:g} requests per second",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return token

    def require(self, scope: str) -> Callable[[HTTPAuthorizationCredentials | None], Caller]:
        """A dependency: the caller, with `scope`."""

        def dependency(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Caller:
            return Caller(self.authenticate(credentials, scope))

        return dependency

    def reader_of_subjects(self) -> Callable[[HTTPAuthorizationCredentials | None, str | None], Caller]:
        """A dependency for reads that may show natural persons: `read`, and with `pii` the purpose."""

        def dependency(
            credentials: HTTPAuthorizationCredentials | None = Security(bearer),
            purpose: str | None = Header(
                None,
                alias=PURPOSE_HEADER,
                description="Why natural persons are read in full: required with the pii scope, recorded "
                "in the audit trail. Percent-encode non-ASCII text.",
            ),
        ) -> Caller:
            token = self.authenticate(credentials, "read")
            if "pii" not in token.scopes:
                return Caller(token)
            if purpose is None:
                raise Problem(
                    400,
                    "Purpose required",
                    f"token {token.id} reads personal data in full: state why in {PURPOSE_HEADER}",
                    field=PURPOSE_HEADER,
                )
            return Caller(token, check_purpose(purpose))

        return dependency
