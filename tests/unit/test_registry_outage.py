"""A registry that cannot be asked is a transient fault, never a reason to dead-letter good records.

Workers started while the registry was unreachable once sent 200 of 200 valid records to the DLQ
as `unknown_schema`. Only the registry's own answer "this id does not exist" rejects a record.
"""

from __future__ import annotations

import time

import pytest

from schemas.catalogue import SchemaCatalogue
from schemas.codec import Codec, encode_payload, frame
from schemas.errors import Reason, Rejected, TongchengError, Unavailable
from schemas.registry import RegistryClient, RegistryError, RegistryUnavailable, SchemaNotFound
from tests.unit.stub_http import Answer, closed_port, serve
from tests.unit.test_codec import ALERT


@pytest.fixture(scope="module")
def catalogue() -> SchemaCatalogue:
    return SchemaCatalogue()


@pytest.fixture(scope="module")
def record(catalogue: SchemaCatalogue) -> bytes:
    """A valid, well-framed record (schema id 7)."""
    return frame(7, encode_payload(catalogue.parsed("SupervisionAlert"), ALERT))


def codec_at(catalogue: SchemaCatalogue, url: str) -> Codec:
    return Codec(catalogue, RegistryClient(url))


def test_unreachable_registry_is_unavailable_not_rejected(catalogue: SchemaCatalogue, record: bytes) -> None:
    codec = codec_at(catalogue, f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7")
    with pytest.raises(Unavailable) as info:
        codec.decode(record, "SupervisionAlert")
    assert not isinstance(info.value, Rejected)
    # the CLI and other callers catch these as before
    assert isinstance(info.value, RegistryError) and isinstance(info.value, TongchengError)
    with pytest.raises(Unavailable):  # encoding registers the schema: unavailable likewise
        codec.encode("njmc.supervision.alert.v1-value", "SupervisionAlert", ALERT)


def test_unknown_id_is_rejected(catalogue: SchemaCatalogue, record: bytes) -> None:
    answer = Answer(404, {"error_code": 40403, "message": "No content with id 7"})
    with serve(answer) as url, pytest.raises(Rejected) as info:
        codec_at(catalogue, url).decode(record, "SupervisionAlert")
    assert info.value.reason is Reason.UNKNOWN_SCHEMA
    assert answer.paths == ["/schemas/ids/7"]


@pytest.mark.parametrize(
    "status, body",
    [
        (503, {"error_code": 50301, "message": "storage not ready"}),
        (500, {"error_code": 50001, "message": "Error in the backend datastore"}),
        (429, {"message": "slow down"}),
        (404, None),  # a 404 without the registry's error code: a wrong URL, not an unknown id
        (403, {"message": "forbidden by the proxy"}),
    ],
)
def test_registry_that_cannot_answer_is_unavailable(
    catalogue: SchemaCatalogue, record: bytes, status: int, body: object
) -> None:
    with serve(Answer(status, body)) as url, pytest.raises(Unavailable) as info:
        codec_at(catalogue, url).decode(record, "SupervisionAlert")
    assert getattr(info.value, "status", None) == status


@pytest.mark.parametrize("body", [b"<html><body>502 Bad Gateway</body></html>", {"unexpected": "shape"}])
def test_answer_that_is_not_the_registrys_is_unavailable(
    record: bytes, catalogue: SchemaCatalogue, body: object
) -> None:
    """A proxy's page under 200 is not the registry saying anything about the record."""
    with serve(Answer(200, body)) as url, pytest.raises(Unavailable):
        codec_at(catalogue, url).decode(record, "SupervisionAlert")


def test_encode_against_a_failing_registry_is_unavailable(catalogue: SchemaCatalogue) -> None:
    with serve(Answer(503, {"error_code": 50001, "message": "down"})) as url, pytest.raises(RegistryUnavailable):
        codec_at(catalogue, url).encode("njmc.supervision.alert.v1-value", "SupervisionAlert", ALERT)


def test_refused_schema_stays_a_plain_registry_error(catalogue: SchemaCatalogue) -> None:
    """An incompatible schema is the registry's verdict on what we sent, not an outage."""
    answer = Answer(409, {"error_code": 409, "message": "incompatible"})
    with serve(answer) as url, pytest.raises(RegistryError) as info:
        RegistryClient(url).register("s-value", catalogue.text("SupervisionAlert"))
    assert info.value.status == 409 and not isinstance(info.value, Unavailable)


def test_missing_subject_is_still_none(catalogue: SchemaCatalogue) -> None:
    with serve(Answer(404, {"error_code": 40401, "message": "Subject not found"})) as url:
        client = RegistryClient(url)
        assert client.versions("nope-value") == []
        assert client.compatibility_or_none("nope-value") is None
        with pytest.raises(SchemaNotFound):
            client.schema_text(7)


def test_timeouts_are_short_enough_for_a_worker() -> None:
    timeout = RegistryClient("http://127.0.0.1:1")._http.timeout
    assert timeout.connect is not None and timeout.connect <= 3.0
    assert timeout.read is not None and timeout.read <= 10.0


def test_a_registry_that_never_answers_times_out(catalogue: SchemaCatalogue, record: bytes) -> None:
    import socket

    with socket.socket() as listener:  # accepts the connection, never answers
        listener.bind(("127.0.0.1", closed_port(28998)))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        codec = Codec(catalogue, RegistryClient(url, timeout=0.3))
        started = time.monotonic()
        with pytest.raises(Unavailable) as info:
            codec.decode(record, "SupervisionAlert")
    assert time.monotonic() - started < 5
    assert "timed out" in str(info.value)


def test_the_same_record_decodes_once_the_registry_is_back(catalogue: SchemaCatalogue, record: bytes) -> None:
    answer = Answer(503, {"error_code": 50301, "message": "starting"})
    with serve(answer) as url:
        codec = codec_at(catalogue, url)
        with pytest.raises(Unavailable):
            codec.decode(record, "SupervisionAlert")
        answer.status, answer.body = 200, {"schema": catalogue.text("SupervisionAlert")}
        assert codec.decode(record, "SupervisionAlert") == ALERT
