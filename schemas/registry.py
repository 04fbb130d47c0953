"""A small client for a Confluent-compatible schema registry (Apicurio's /apis/ccompat/v7)."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from services.common.errors import TongchengError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(TongchengError):
    """The registry refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RegistryClient:
    """Registers and looks up schemas; caches ids and schema texts, which never change."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
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
            raise RegistryError(
                f"schema registry at {self.url} is unreachable ({exc}); is it running? try `tongcheng broker start`"
            ) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("message") or body
            except ValueError:
                message = response.text
            raise RegistryError(f"{method} {path}: {response.status_code} {message}", response.status_code)
        return response.json() if response.content else None

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
        with self._lock:
            if schema_id in self._texts:
                return self._texts[schema_id]
        body = self._call("GET", f"/schemas/ids/{schema_id}")
        text = str(body["schema"])
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
