"""How every Kafka client authenticates: settings -> client keyword arguments, in one place.

The broker listens with SASL/SCRAM-SHA-512 (SASL_PLAINTEXT on loopback for the local profile,
SASL_SSL in production). Each process authenticates as one principal: `TONGCHENG_KAFKA_USER` when
set, else the one its command runs as (a worker its service, `publish --city` the city, ops
commands `admin`; ops/cli/ decides). Its secret is `TONGCHENG_KAFKA_PASSWORD` when set,
else the embedded setup's secrets file (`<data dir>/secrets/scram.json`, mode 0600), which
`tongcheng broker start` writes when it first formats the broker.

kafka-python and aiokafka share the keyword names (`security_protocol`, `sasl_mechanism`,
`sasl_plain_username`, `sasl_plain_password`); they differ only in TLS: kafka-python takes
`ssl_cafile`, aiokafka an `ssl_context`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Required, TypedDict

from schemas.errors import ConfigError
from topics.settings import ENV, Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)
# kafka-python warns on every SCRAM login over SASL_PLAINTEXT that credentials are "exchanged in the
# clear"; SCRAM never sends the secret (only proofs), and the local listener is on loopback
logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)

MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"
#: the lag exporter's principal; the service principals are derived from the catalogue (acls.SERVICES)
LAG = "lag"

_warned = False


def city_principal(code: str) -> str:
    return f"city-{code}"


def principal(settings: Settings) -> str:
    """The SCRAM user this process authenticates as."""
    return settings.kafka_user or ADMIN


def new_secret() -> str:
    return secrets.token_urlsafe(24)


class SecretStore:
    """The embedded setup's SCRAM secrets, {user: password} in one JSON file readable only by its owner."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the Kafka secrets file {self.path}: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"the Kafka secrets file {self.path} is not a JSON object of user -> secret")
        return data

    def write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(sorted(data.items())), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, self.path)

    def ensure(self, users: list[str]) -> dict[str, str]:
        """Every user of `users` with a secret (new ones generated and stored); returns them all."""
        data = self.read()
        missing = [u for u in users if u not in data]
        if missing:
            data.update({u: new_secret() for u in missing})
            self.write(data)
        return data

    def rotate(self, user: str) -> str:
        data = self.read()
        data[user] = new_secret()
        self.write(data)
        return data[user]


def secret_store(settings: Settings) -> SecretStore:
    assert settings.secrets_file is not None
    return SecretStore(settings.secrets_file)


def credentials(settings: Settings) -> tuple[str, str]:
    """(user, secret) of this process."""
    user = principal(settings)
    if settings.kafka_password:
        return user, settings.kafka_password
    store = secret_store(settings)
    secret = store.read().get(user)
    if secret is None:
        where = f"{store.path} has no secret for it" if store.path.exists() else f"{store.path} does not exist"
        raise ConfigError(
            f"no Kafka secret for user {user!r}: {where}. Start the embedded broker once "
            f"(`tongcheng broker start` writes the secrets file), point {ENV['secrets_file']} at its file, "
            f"or set {ENV['kafka_user']} and {ENV['kafka_password']}"
        )
    return user, secret


def _warn_insecure() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "Kafka clients connect with PLAINTEXT and no authentication (%s=PLAINTEXT): "
            "anyone who reaches the broker can read and write every topic",
            ENV["security_protocol"],
        )


def cafile(settings: Settings) -> Path:
    assert settings.ssl_cafile is not None
    if not settings.ssl_cafile.exists():
        raise ConfigError(
            f"SASL_SSL needs the CA certificate that signed the broker's: {settings.ssl_cafile} does not exist "
            f"(`tongcheng certs generate` makes a CA and a broker certificate; or set {ENV['ssl_cafile']})"
        )
    return settings.ssl_cafile


class ClientAuth(TypedDict, total=False):
    """The keyword arguments that authenticate a Kafka client; TLS is `ssl_cafile` for kafka-python,
    `ssl_context` for aiokafka."""

    security_protocol: Required[str]
    sasl_mechanism: str
    sasl_plain_username: str
    sasl_plain_password: str
    ssl_cafile: str
    ssl_context: ssl.SSLContext


def client_config(settings: Settings) -> ClientAuth:
    """The keyword arguments that authenticate a kafka-python KafkaProducer, KafkaConsumer or
    KafkaAdminClient (merge them with the client's own)."""
    if settings.insecure:
        _warn_insecure()
        return {"security_protocol": "PLAINTEXT"}
    user, secret = credentials(settings)
    config: ClientAuth = {
        "security_protocol": settings.security_protocol,
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": user,
        "sasl_plain_password": secret,
    }
    if settings.security_protocol == "SASL_SSL":
        config["ssl_cafile"] = str(cafile(settings))
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker's certificate against the CA of `settings` (and its host name)."""
    return ssl.create_default_context(cafile=str(cafile(settings)))


def tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of a raw connection to the broker (None unless SASL_SSL)."""
    return ssl_context(settings) if settings.security_protocol == "SASL_SSL" else None


def aiokafka_config(settings: Settings) -> ClientAuth:
    """As `client_config`, for aiokafka's AIOKafkaProducer and AIOKafkaConsumer."""
    config = client_config(settings)
    if config.pop("ssl_cafile", None) is not None:
        config["ssl_context"] = ssl_context(settings)
    return config


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """faust's `broker_credentials` for a processor's app (None in the insecure mode)."""
    import faust

    if settings.insecure:
        _warn_insecure()
        return None
    user, secret = credentials(settings)
    context = ssl_context(settings) if settings.security_protocol == "SASL_SSL" else None
    return faust.SASLCredentials(username=user, password=secret, ssl_context=context, mechanism=MECHANISM)
