"""Per-city bearer tokens, stored only as SHA-256 hashes. A token fixes its holder's city."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from services.common.errors import ConfigError


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[dict[str, str]] = []
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self._entries = [
                    {"city": str(e["city"]), "sha256": str(e["sha256"]), "label": str(e.get("label", ""))}
                    for e in data["tokens"]
                ]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f'{path}: unreadable token file ({exc!r}); expected {{"tokens": [{{"city", "sha256"}}]}}'
                ) from exc

    def issue(self, city: str, label: str = "") -> str:
        """Create a token for `city`, store its hash, and return the clear token (shown once)."""
        token = f"tc_{city}_{secrets.token_urlsafe(24)}"
        self._entries.append({"city": city, "sha256": _digest(token), "label": label})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tokens": self._entries}, indent=2), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.path)
        return token

    def city_of(self, token: str) -> str | None:
        digest = _digest(token)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry["sha256"], digest):
                found = entry["city"]
        return found

    def cities(self) -> list[str]:
        return sorted({e["city"] for e in self._entries})
