"""The real stack: Apache Kafka (KRaft) and Apicurio from Maven Central, on test ports.

Each test gets its own topic prefix, so its topics, DLQs and consumer groups are its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ops.broker import local
from services.cli import register_schemas
from services.common.context import Context, build_context
from services.common.settings import Settings
from topics import provision

TEST_PORTS = {"kafka_port": 19092, "controller_port": 19093, "registry_port": 18081, "api_port": 18000}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("stack"), **TEST_PORTS)
    local.start(settings, say=lambda m: print(m))
    yield settings
    local.stop(settings, say=lambda m: print(m))


def fresh_settings(stack: Settings, **changes: object) -> Settings:
    return stack.with_(topic_prefix=f"t{uuid.uuid4().hex[:10]}", **changes)


def provisioned(settings: Settings, clock: object | None = None) -> Context:
    ctx = build_context(settings, clock)  # type: ignore[arg-type]
    admin = provision.admin_client(settings.bootstrap)
    try:
        provision.apply(ctx.topics, admin)
    finally:
        admin.close()
    register_schemas(ctx)
    return ctx


@pytest.fixture
def ctx(stack: Settings) -> Context:
    """A context on its own freshly provisioned topics."""
    return provisioned(fresh_settings(stack))
