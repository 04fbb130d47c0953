"""One frozen settings object per process, read once at start-up.

Every environment variable Tongcheng reads is named in `ENV` below, and nothing else in the
code base reads `os.environ`. With no variables set, the embedded setup runs: a local broker
and registry on 127.0.0.1 and SQLite under the data directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError

PREFIX = "TONGCHENG_"

#: setting name -> environment variable
ENV: dict[str, str] = {
    "circle": "TONGCHENG_CIRCLE",
    "circle_file": "TONGCHENG_CIRCLE_FILE",
    "topic_prefix": "TONGCHENG_TOPIC_PREFIX",
    "profile": "TONGCHENG_PROFILE",
    "bootstrap": "TONGCHENG_BOOTSTRAP",
    "registry_url": "TONGCHENG_REGISTRY_URL",
    "kafka_port": "TONGCHENG_KAFKA_PORT",
    "controller_port": "TONGCHENG_CONTROLLER_PORT",
    "broker_nodes": "TONGCHENG_BROKER_NODES",
    "registry_port": "TONGCHENG_REGISTRY_PORT",
    "data_dir": "TONGCHENG_DATA_DIR",
    "cache_dir": "TONGCHENG_CACHE_DIR",
    "database_url": "TONGCHENG_DATABASE_URL",
    "api_host": "TONGCHENG_API_HOST",
    "api_port": "TONGCHENG_API_PORT",
    "metrics_port": "TONGCHENG_METRICS_PORT",
    "metrics_host": "TONGCHENG_METRICS_HOST",
    "lag_port": "TONGCHENG_LAG_PORT",
    "tokens_file": "TONGCHENG_TOKENS_FILE",
    "city": "TONGCHENG_CITY",
    "source_system": "TONGCHENG_SOURCE_SYSTEM",
    "person_salt": "TONGCHENG_PERSON_SALT",
    "table_store": "TONGCHENG_TABLE_STORE",
    "rocksdb_store_mb": "TONGCHENG_ROCKSDB_STORE_MB",
    "standby_replicas": "TONGCHENG_STANDBY_REPLICAS",
    "feedback_window_days": "TONGCHENG_FEEDBACK_WINDOW_DAYS",
    "clock_offset_seconds": "TONGCHENG_CLOCK_OFFSET_SECONDS",
    "clock_file": "TONGCHENG_CLOCK_FILE",
    "sweep_seconds": "TONGCHENG_SWEEP_SECONDS",
    "group_tag": "TONGCHENG_GROUP_TAG",
    "roster_keys_file": "TONGCHENG_ROSTER_KEYS_FILE",
    "signing_key_file": "TONGCHENG_SIGNING_KEY_FILE",
    "provenance": "TONGCHENG_PROVENANCE",
    "security_protocol": "TONGCHENG_SECURITY_PROTOCOL",
    "kafka_user": "TONGCHENG_KAFKA_USER",
    "kafka_password": "TONGCHENG_KAFKA_PASSWORD",
    "secrets_file": "TONGCHENG_SECRETS_FILE",
    "ssl_cafile": "TONGCHENG_SSL_CAFILE",
    "lang": "TONGCHENG_LANG",
}
#: the system locale, read only for the language of terminal output when TONGCHENG_LANG is not set
LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")

#: how clients reach the broker: SASL_PLAINTEXT (local, loopback), SASL_SSL (production), or
#: PLAINTEXT, the insecure mode without authentication that has to be asked for by name
SECURITY_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT")

DEV_PERSON_SALT = "tongcheng-development-salt"
#: how many KRaft nodes the local broker runs: one, or a cluster of three on loopback
BROKER_NODES = (1, 3)
#: node i (0, 1, 2) of a local cluster listens on kafka_port + i * NODE_PORT_STEP (clients) and
#: controller_port + i * NODE_PORT_STEP (its controller)
NODE_PORT_STEP = 10
#: derived settings that are paths (None until derived)
_PATHS = ("tokens_file", "secrets_file", "ssl_cafile")


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "tongcheng"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tongcheng"


@dataclass(frozen=True)
class Settings:
    #: the circle's code; derived from the circle file when one is named, else `njmc`
    circle: str = ""
    circle_file: Path | None = None
    topic_prefix: str = ""
    profile: str = "local"
    bootstrap: str = ""
    registry_url: str = ""
    kafka_port: int = 9092
    controller_port: int = 9093
    #: 1: one combined KRaft node (replication 1); 3: a cluster of three (replication 3, min.insync.replicas 2)
    broker_nodes: int = 1
    registry_port: int = 8081
    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    database_url: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_port: int = 9400
    metrics_host: str = "127.0.0.1"
    lag_port: int = 9308
    tokens_file: Path | None = None
    city: str | None = None
    source_system: str = "tongcheng-cli"
    person_salt: str = DEV_PERSON_SALT
    table_store: str = "memory://"
    #: the memory of each RocksDB partition store of a table: half block cache, half write buffers
    rocksdb_store_mb: int = 16
    #: how many other workers of a group keep a warm copy of each table partition
    standby_replicas: int = 1
    #: overrides feedback.window_days of the sanction rules file when set
    feedback_window_days: int | None = None
    clock_offset_seconds: float = 0.0
    clock_file: Path | None = None
    sweep_seconds: float = 30.0
    #: appended to consumer groups and table names: a new tag rebuilds state from offset 0
    group_tag: str = ""
    #: the installation's roster public keys, merged into the circle's (default <data dir>/roster-keys.json)
    roster_keys_file: Path | None = None
    #: a PEM private key the SDK signs with instead of the city's key under <data dir>/keys/
    signing_key_file: Path | None = None
    #: "required": processors refuse unsigned or badly signed inputs; "off": no checks (benchmarks only)
    provenance: str = "required"
    #: SASL_PLAINTEXT by default, SASL_SSL in the production profile; PLAINTEXT only when asked for
    security_protocol: str = ""
    #: the Kafka principal (SCRAM user) of this process; empty: the one its command runs as
    #: (a worker its service, `publish --city` the city, ops commands admin)
    kafka_user: str = ""
    #: the SCRAM secret of kafka_user; empty: read from secrets_file (the embedded setup)
    kafka_password: str = ""
    #: the embedded setup's SCRAM secrets (mode 0600), written when the broker is first formatted
    secrets_file: Path | None = None
    #: the CA certificate that signed the broker's (SASL_SSL); `tongcheng certs generate` makes both
    ssl_cafile: Path | None = None
    #: the language of terminal output (the inbox): zh-CN or en; from the locale (LANG) when not set
    lang: str = "en"
    #: the settings __post_init__ derived from others (not set explicitly)
    _derived: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived defaults: they follow the ports and directories when those are changed. Which ones
        # were derived is remembered, so that `with_` derives them again.
        circle, prefix = self._circle_identity()
        defaults = {
            "circle": circle,
            "topic_prefix": prefix,
            "bootstrap": ",".join(f"127.0.0.1:{port}" for port in self.kafka_ports),
            "registry_url": f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7",
            "database_url": f"sqlite:///{self.data_dir / 'tongcheng.db'}",
            "tokens_file": self.data_dir / "tokens.json",
            "security_protocol": "SASL_SSL" if self.profile == "production" else "SASL_PLAINTEXT",
            "secrets_file": self.data_dir / "secrets" / "scram.json",
            "ssl_cafile": self.data_dir / "certs" / "ca.pem",
        }
        derived = [name for name in defaults if not getattr(self, name)]
        for name in derived:
            object.__setattr__(self, name, defaults[name])
        object.__setattr__(self, "_derived", frozenset(derived))
        if self.table_store not in ("memory://", "rocksdb://"):
            raise ConfigError(
                f"{ENV['table_store']} must be memory:// (tables rebuilt from their changelogs at start) "
                f"or rocksdb:// (tables on disk under the data directory, needs rocksdict), not {self.table_store!r}"
            )
        if self.rocksdb_store_mb < 4:
            raise ConfigError(f"{ENV['rocksdb_store_mb']} must be at least 4 (MB), not {self.rocksdb_store_mb}")
        if self.standby_replicas < 0:
            raise ConfigError(f"{ENV['standby_replicas']} must be 0 or more, not {self.standby_replicas}")
        if self.profile not in ("local", "production"):
            raise ConfigError(f"{ENV['profile']} must be 'local' or 'production', not {self.profile!r}")
        if self.provenance not in ("required", "off"):
            raise ConfigError(
                f"{ENV['provenance']} must be 'required' or 'off' (no signature checks, benchmarks only), "
                f"not {self.provenance!r}"
            )
        if self.lang not in ("zh-CN", "en"):
            raise ConfigError(f"{ENV['lang']} must be zh-CN or en, not {self.lang!r}")
        if self.broker_nodes not in BROKER_NODES:
            raise ConfigError(
                f"{ENV['broker_nodes']} must be 1 (one node) or 3 (a cluster of three), not {self.broker_nodes}"
            )
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"{ENV['security_protocol']} must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"not {self.security_protocol!r}"
            )

    def _circle_identity(self) -> tuple[str, str]:
        """The circle code and topic prefix its file names: TONGCHENG_CIRCLE_FILE, else the shipped
        file of TONGCHENG_CIRCLE (`njmc` by default); a code set that differs from the file's is refused."""
        from topics.circle import CircleFileError, circle_path, identity

        path = self.circle_file or circle_path(self.circle or "njmc")
        if not self.circle_file and not path.exists():
            return self.circle, self.circle  # a circle without a shipped file: the loader says so
        try:
            code, prefix = identity(path)
        except CircleFileError as exc:
            raise ConfigError(str(exc)) from exc
        if self.circle and self.circle != code:
            raise ConfigError(f"{ENV['circle']}={self.circle!r} but the circle file {path} is circle {code!r}")
        return code, prefix

    @property
    def roster_keys_path(self) -> Path:
        return self.roster_keys_file or self.data_dir / "roster-keys.json"

    @property
    def keys_dir(self) -> Path:
        """Where the cities' private keys held by this installation are (mode 0700, files 0600)."""
        return self.data_dir / "keys"

    @property
    def insecure(self) -> bool:
        """Plaintext without authentication: every client is trusted."""
        return self.security_protocol == "PLAINTEXT"

    @property
    def kafka_ports(self) -> list[int]:
        """The client port of each local KRaft node."""
        return [self.kafka_port + i * NODE_PORT_STEP for i in range(self.broker_nodes)]

    @property
    def controller_ports(self) -> list[int]:
        """The controller port of each local KRaft node."""
        return [self.controller_port + i * NODE_PORT_STEP for i in range(self.broker_nodes)]

    @property
    def clustered(self) -> bool:
        """Replicated topics: the production profile, or a local cluster of three nodes."""
        return self.profile == "production" or self.broker_nodes == 3

    @property
    def replication_factor(self) -> int:
        return 3 if self.clustered else 1

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.clustered else 1

    def group_id(self, service: str) -> str:
        """A service's consumer group (and faust app id, which prefixes its table changelogs)."""
        tag = f"-{self.group_tag}" if self.group_tag else ""
        return f"tongcheng-{service}-{self.topic_prefix}{tag}"

    def with_(self, **changes: Any) -> Settings:
        """A copy with `changes`; values derived from others (URLs, the database, the tokens file)
        are derived again unless they were set explicitly."""
        unset = {name: None if name in _PATHS else "" for name in self._derived}
        return replace(self, **{**unset, **changes})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (the process environment when None)."""
        env = os.environ if environ is None else environ
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in ENV.values())
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(ENV.values()))}")
        kwargs: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            kind = str(types[name])
            try:
                if "int" in kind and "Path" not in kind:
                    kwargs[name] = int(raw)
                elif "float" in kind:
                    kwargs[name] = float(raw)
                elif "Path" in kind:
                    kwargs[name] = Path(raw).expanduser()
                else:
                    kwargs[name] = raw
            except ValueError as exc:
                raise ConfigError(f"{var}={raw!r}: {exc}") from exc
        if "lang" not in kwargs:
            from topics.language import from_locale

            kwargs["lang"] = from_locale(next((env[v] for v in LOCALE_VARS if env.get(v)), None))
        return cls(**kwargs)
