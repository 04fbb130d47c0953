"""Whether the broker answers, for `GET /readyz` and for refusing ingestion at once while it does not."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from kafka.admin import KafkaAdminClient

from topics.kafka_auth import ClientAuth

log = logging.getLogger(__name__)


class BrokerProbe:
    """Asks the broker (DescribeCluster over one kept admin connection) at most once per `ttl`
    seconds; callers in between, or while another caller is asking, get the last answer."""

    def __init__(
        self,
        bootstrap: str,
        ttl: float = 1.0,
        timeout_ms: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
        auth: ClientAuth | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.auth = auth  # topics/kafka_auth.py client_config
        self.ttl = ttl
        self.timeout_ms = timeout_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._checked_at: float | None = None
        self._answer: tuple[bool, str] = (False, "not asked yet")

    def state(self) -> tuple[bool, str]:
        """(ready, why not); blocks only for the first question, and at most about `timeout_ms`."""
        if self._checked_at is not None and self._clock() - self._checked_at < self.ttl:
            return self._answer
        if not self._lock.acquire(blocking=self._checked_at is None):
            return self._answer
        try:
            if self._checked_at is None or self._clock() - self._checked_at >= self.ttl:
                self._answer = self._ask()
                self._checked_at = self._clock()
            return self._answer
        finally:
            self._lock.release()

    def _ask(self) -> tuple[bool, str]:
        try:
            if self._admin is None:
                auth: Mapping[str, object] = self.auth or {}
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap,
                    client_id="tongcheng-api-readiness",
                    request_timeout_ms=self.timeout_ms,
                    bootstrap_timeout_ms=self.timeout_ms,
                    **auth,
                )
            self._admin.describe_cluster()
            return True, ""
        except Exception as exc:  # any failure means "not ready"; the next question starts afresh
            self.close()
            return False, f"the broker at {self.bootstrap} does not answer: {exc!r}"

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception as exc:
                log.debug("closing the readiness admin client: %r", exc)
