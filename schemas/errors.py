"""The bounded set of rejection reasons and the exceptions that carry them.

Reasons are metric label values and the `error.reason` DLQ header, so the set is closed.
Two classes of error must never be confused: `Rejected` is bad data (to the DLQ, committed),
`Unavailable` is a transient fault (retried with backoff, nothing committed, nothing rejected).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # wire and schema
    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown_schema"
    SCHEMA_INVALID = "schema_invalid"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    # contract checks
    INVALID_USCC = "invalid_uscc"
    INVALID_ID_NUMBER = "invalid_id_number"
    INVALID_SUBJECT_ID = "invalid_subject_id"
    UNKNOWN_CITY = "unknown_city"
    FUTURE_TIMESTAMP = "future_timestamp"
    WRONG_TOPIC = "wrong_topic"
    SOURCE_CITY_MISMATCH = "source_city_mismatch"
    NULL_VALUE = "null_value"
    # provenance (record headers signed by the sending city)
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    SOURCE_MISMATCH = "source_mismatch"
    # domain rules
    UNKNOWN_RECORD = "unknown_record"
    REPAIR_TOO_EARLY = "repair_too_early"
    UNKNOWN_SUBJECT = "unknown_subject"
    STALE_REVISION = "stale_revision"
    UNKNOWN_MEASURE = "unknown_measure"
    UNKNOWN_INCIDENT = "unknown_incident"
    UNKNOWN_REPORT = "unknown_report"
    REPORT_OUT_OF_ORDER = "report_out_of_order"
    INCIDENT_CLOSED = "incident_closed"
    UNKNOWN_PROJECT = "unknown_project"
    UNKNOWN_MILESTONE = "unknown_milestone"
    #: ownership: only the city that owns a thing may change it (README, refinements)
    NOT_OWNER = "not_owner"
    INTERNAL_ERROR = "internal_error"


class TongchengError(Exception):
    """Base of every error Tongcheng raises on purpose."""


class Rejected(TongchengError):
    """An input that is refused: it goes to the DLQ (or back to the caller) with its reason."""

    def __init__(self, reason: Reason, detail: str, field: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        super().__init__(f"{reason.value}: {detail}")

    def as_dict(self) -> dict[str, str | None]:
        return {"reason": self.reason.value, "detail": self.detail, "field": self.field}


class Unavailable(TongchengError):
    """A dependency (broker, registry) cannot be reached or timed out: retry later; never a reason to
    reject data. The input that met it is still good and is delivered again once the dependency is back."""


class ConfigError(TongchengError):
    """Configuration or a data file (rules, circle, tokens) is unusable."""


class PublishError(TongchengError):
    """The broker did not acknowledge a send."""
