"""Settings -> client credentials (topics/kafka_auth.py), the broker's refusal of a data
directory formatted without SCRAM, the principal each command runs as, and `certs generate`."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from ops import certs
from ops.broker import local
from ops.cli import build_parser, principal_of
from schemas.errors import ConfigError
from topics import kafka_auth
from topics.settings import Settings


def test_secure_by_default_and_sasl_ssl_in_production(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).security_protocol == "SASL_PLAINTEXT"
    production = Settings(data_dir=tmp_path, profile="production")
    assert production.security_protocol == "SASL_SSL"
    assert production.ssl_cafile == tmp_path / "certs" / "ca.pem"
    assert Settings(data_dir=tmp_path).with_(data_dir=tmp_path / "b").secrets_file == tmp_path / "b/secrets/scram.json"
    with pytest.raises(ConfigError, match="TONGCHENG_SECURITY_PROTOCOL must be one of"):
        Settings(security_protocol="SSL")
    env = {"TONGCHENG_SECURITY_PROTOCOL": "PLAINTEXT", "TONGCHENG_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).insecure


def test_client_config_reads_the_principals_secret_from_the_secrets_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka_user="city-320100")
    with pytest.raises(ConfigError, match="no Kafka secret for user 'city-320100'.*does not exist"):
        kafka_auth.client_config(settings)
    store = kafka_auth.secret_store(settings)
    secrets = store.ensure(["admin", "city-320100"])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.ensure(["admin"]) == secrets  # kept, not regenerated
    assert kafka_auth.client_config(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "city-320100",
        "sasl_plain_password": secrets["city-320100"],
    }
    assert kafka_auth.client_config(settings.with_(kafka_user=""))["sasl_plain_username"] == "admin"
    explicit = settings.with_(kafka_user="x", kafka_password="from-env")
    assert kafka_auth.client_config(explicit)["sasl_plain_password"] == "from-env"
    assert kafka_auth.client_config(settings.with_(security_protocol="PLAINTEXT")) == {"security_protocol": "PLAINTEXT"}


def test_each_command_runs_as_its_own_principal(tmp_path: Path) -> None:
    parser = build_parser()
    settings = Settings(data_dir=tmp_path)
    for argv, user in (
        (["worker", "credit"], "credit"),
        (["worker", "readmodel"], "readmodel"),
        (["api"], "api"),
        (["lag-exporter"], "lag"),
        (["publish", "credit.record", "-", "--city", "320100"], "city-320100"),
        (["inbox", "--city", "341800"], "city-341800"),
        (["topics", "apply"], "admin"),
        (["acl", "diff"], "admin"),
        (["simulate"], "admin"),
    ):
        assert principal_of(parser.parse_args(argv), settings) == user, argv
    publish = parser.parse_args(["publish", "credit.record", "-"])
    assert principal_of(publish, settings.with_(city="321100")) == "city-321100"


def test_a_data_directory_formatted_without_scram_is_refused_with_what_to_do(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    p = local.paths(settings)
    (p.kafka_data / "logs").mkdir(parents=True)
    (p.kafka_data / "logs" / "meta.properties").write_text("version=1\n")  # formatted before authentication
    with pytest.raises(local.BrokerError) as info:
        local.start_kafka(settings, p, say=lambda m: None)
    message = str(info.value)
    assert "formatted without SCRAM credentials" in message
    assert "--insecure-plaintext" in message and f"delete {p.kafka_data}" in message


def test_generated_certificates_chain_to_the_ca_and_name_the_hosts(tmp_path: Path) -> None:
    written = certs.generate(tmp_path, ["localhost", "127.0.0.1", "kafka.example"], days=30)
    keystore, ca_path = certs.broker_files(tmp_path)
    assert set(written) == {keystore, ca_path, tmp_path / "certs" / "ca.key"}
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    chain = x509.load_pem_x509_certificates(keystore.read_bytes())
    broker = chain[0]
    broker.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not broker.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "kafka.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert b"PRIVATE KEY" in keystore.read_bytes()
    for private in (keystore, tmp_path / "certs" / "ca.key"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    ssl.create_default_context(cafile=str(ca_path)).load_cert_chain(keystore)  # Python's TLS takes them too
    with pytest.raises(certs.CertError, match="--force"):
        certs.generate(tmp_path, ["localhost"])
    assert certs.generate(tmp_path, ["localhost"], force=True)
