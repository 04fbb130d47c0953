"""The read-model database: engines for SQLite and PostgreSQL, and Alembic migrations run from code.

SQLite is the embedded default (one file under the data directory, WAL so the API can read while
the sink writes). Any SQLAlchemy URL for PostgreSQL works the same way, e.g.
`postgresql+psycopg2://user:password@host/db` (install the `postgres` extra).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from schemas.errors import ConfigError, TongchengError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, **kwargs: object) -> Engine:
    """An engine for `url`; SQLite gets its directory created, WAL and a busy timeout."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} is not a SQLAlchemy URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, **kwargs)
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigError(f"database URL {url!r}: unknown database kind {parsed.drivername!r}") from exc
    except ModuleNotFoundError as exc:
        raise ConfigError(f"no driver for {parsed.drivername}: {exc}; pip install 'tongcheng[postgres]'") from exc


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest migration (idempotent); returns the revision reached."""
    cfg = alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise TongchengError(f"cannot migrate the read model on {where}: {exc.orig}") from exc
    revision = current_revision(engine)
    assert revision is not None
    return revision
