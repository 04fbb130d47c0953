"""A throwaway PostgreSQL cluster from Debian's packages, for tests and benchmarks.

`LocalPostgres(directory, port).start()` runs initdb (trust auth, loopback only) and pg_ctl, and
returns a SQLAlchemy URL. PostgreSQL refuses to run as root, so under root the cluster belongs
to the `postgres` system user and its commands run through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from schemas.errors import TongchengError

#: the major version the tests run: Debian 12's `postgresql` package, which ops/setup.sh installs;
#: docker-compose.yml pins the same major (tests/unit/test_compose.py)
MAJOR = 15


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise TongchengError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); run ops/setup.sh")
    return Path(found[-1]).parent


class LocalPostgres:
    def __init__(self, directory: Path, port: int, database: str = "tongcheng") -> None:
        self.directory = Path(directory)
        self.data = self.directory / "pgdata"
        self.port = port
        self.database = database
        self.bin = pg_bin()
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *argv: str) -> str:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TongchengError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.directory, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"
            )
        opts = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.directory / "postgres.log"), "-w", "start")
        self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            f"CREATE DATABASE {self.database}",
        )
        return self.url

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
