"""schemathesis hooks for the run without a token (tests/integration/test_http_surface.py)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def answers_401(ctx: Any, response: Any, case: Any) -> None:
    """Every operation that declares a security requirement refuses a request without a valid token."""
    if response.status_code != 401:
        raise AssertionError(f"{case.method} {case.path}: {response.status_code} without a valid token, not 401")
