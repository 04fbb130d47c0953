"""A small client for a Confluent-compatible schema registry (Apicurio's /apis/ccompat/v7).

Its failures come in three kinds, because callers must treat them differently:

- `SchemaNotFound`: the registry answered that the schema, subject or version does not exist
  (404 with Confluent error code 40401, 40402 or 40403). A record naming such an id is bad data.
- `RegistryUnavailable`: the registry could not be asked (connection refused, timeout, 5xx, 429,
  or an answer that is not the registry's JSON). Retry later; it says nothing about the data.
- `RegistryError`: any other refusal (an incompatible or invalid schema, ...), with its status.

Both special kinds are `RegistryError`s, so `except RegistryError` still catches everything.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from schemas.errors import TongchengError, Unavailable

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: a worker must not hang on a registry that does not answer
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
#: Confluent error codes of "does not exist": subject, version, schema (Apicurio's ccompat uses them too)
NOT_FOUND_CODES = frozenset({40401, 40402, 40403})
#: answers that say the registry is busy or broken, not that the request was wrong
UNAVAILABLE_STATUSES = frozenset({408, 429})


class RegistryError(TongchengError):
    """The registry refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None, error_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class RegistryUnavailable(RegistryError, Unavailable):
    """The registry could not be reached, timed out or answered 5xx/429: retry later."""


class SchemaNotFound(RegistryError, LookupError):
    """The registry answered that the schema (or subject, or version) does not exist."""


class RegistryClient:
    """Registers and looks up schemas; caches ids and schema texts, which never change."""

    def __init__(self, url: str, timeout: float | httpx.Timeout = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout, headers={"Content-Type": CONTENT_TYPE})
        self._ids: dict[tuple[str, str], int] = {}
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "is unreachable"
            raise RegistryUnavailable(
                f"schema registry at {self.url} {kind} ({type(exc).__name__}: {exc}); "
                "is it running? try `tongcheng broker start`"
            ) from exc
        status = response.status_code
        if status >= 400:
            code, message = _error_of(response)
            text = f"{method} {path}: {status} {message}"
            if status >= 500 or status in UNAVAILABLE_STATUSES:
                raise RegistryUnavailable(f"schema registry at {self.url}: {text}", status, code)
            if status == 404 and code in NOT_FOUND_CODES:
                raise SchemaNotFound(text, status, code)
            raise RegistryError(text, status, code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:  # e.g. a proxy's HTML page: not the registry speaking
            raise RegistryUnavailable(
                f"schema registry at {self.url}: {method} {path} answered {status} with something that is not "
                f"JSON ({response.text[:80]!r}); is {self.url} the registry's ccompat URL?",
                status,
            ) from exc

    def register(self, subject: str, schema_text: str) -> int:
        """Register (or find) a schema under `subject` and return its global id."""
        key = (subject, schema_text)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        body = self._call("POST", f"/subjects/{subject}/versions", json={"schema": schema_text})
        schema_id = int(body["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._texts[schema_id] = schema_text
        return schema_id

    def schema_text(self, schema_id: int) -> str:
        """The schema `schema_id` names. Raises `SchemaNotFound` only when the registry answers that the
        id does not exist; any other failure to get an answer is `RegistryUnavailable`."""
        with self._lock:
            if schema_id in self._texts:
                return self._texts[schema_id]
        try:
            body = self._call("GET", f"/schemas/ids/{schema_id}")
        except (RegistryUnavailable, SchemaNotFound):
            raise
        except RegistryError as exc:
            # A lookup by id has nothing in it to refuse: any other answer (a bare 404 of a wrong URL,
            # 401/403 of a proxy) means the registry cannot be asked, not that the record is bad.
            raise RegistryUnavailable(f"schema registry at {self.url}: {exc}", exc.status, exc.error_code) from exc
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise RegistryUnavailable(f"schema registry at {self.url}: GET /schemas/ids/{schema_id} has no schema")
        text: str = body["schema"]
        with self._lock:
            self._texts[schema_id] = text
        return text

    def set_compatibility(self, subject: str, level: str) -> None:
        self._call("PUT", f"/config/{subject}", json={"compatibility": level})

    def compatibility(self, subject: str) -> str:
        body = self._call("GET", f"/config/{subject}")
        return str(body.get("compatibilityLevel") or body.get("compatibility"))

    def compatibility_or_none(self, subject: str) -> str | None:
        try:
            return self.compatibility(subject)
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise

    def subjects(self) -> list[str]:
        return list(self._call("GET", "/subjects"))

    def versions(self, subject: str) -> list[int]:
        try:
            return [int(v) for v in self._call("GET", f"/subjects/{subject}/versions")]
        except RegistryError as exc:
            if exc.status == 404:
                return []
            raise


def _error_of(response: httpx.Response) -> tuple[int | None, Any]:
    """The Confluent `error_code` and message of an error answer (either may be missing)."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if not isinstance(body, dict):
        return None, body
    code = body.get("error_code")
    return (code if isinstance(code, int) else None), body.get("message") or body
