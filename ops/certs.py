"""`tongcheng certs generate`: the CA and broker certificate of the production profile's SASL_SSL.

One self-made CA signs the broker's certificate; clients trust the CA (`TONGCHENG_SSL_CAFILE`,
by default `<data dir>/certs/ca.pem`) and check the broker's host name against the certificate's
subject alternative names. The broker reads its key and chain as one PEM file (Kafka's PEM
keystore). Keys are written readable only by their owner. An organisation with its own CA signs
a broker certificate there instead and points the same settings at it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from schemas.errors import TongchengError

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


class CertError(TongchengError):
    pass


def cert_dir(data_dir: Path) -> Path:
    return data_dir / "certs"


def broker_files(data_dir: Path) -> tuple[Path, Path]:
    """(the broker's key and certificate chain as one PEM file, the CA certificate)."""
    d = cert_dir(data_dir)
    return d / "broker.pem", d / "ca.pem"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tongcheng"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate(data_dir: Path, hosts: list[str], days: int = 825, force: bool = False) -> list[Path]:
    """A CA and a broker certificate for `hosts` (DNS names or IP addresses) under <data_dir>/certs;
    refuses to replace existing ones unless `force`. Returns the files written."""
    if not hosts:
        raise CertError("the broker certificate needs at least one host name or address")
    d = cert_dir(data_dir)
    keystore, ca_path = broker_files(data_dir)
    ca_key_path = d / "ca.key"
    if not force and any(p.exists() for p in (keystore, ca_path, ca_key_path)):
        raise CertError(
            f"certificates already exist in {d}; pass --force to replace them (clients must then trust the new CA)"
        )
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Tongcheng CA"))
        .issuer_name(_name("Tongcheng CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(ca_key_path, _key_pem(ca_key), private=True)
    _write(ca_path, ca.public_bytes(pem), private=False)
    _write(keystore, _key_pem(key) + cert.public_bytes(pem) + ca.public_bytes(pem), private=True)
    return [ca_path, ca_key_path, keystore]
