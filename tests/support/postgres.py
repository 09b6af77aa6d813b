"""A throwaway PostgreSQL cluster for the tests: real server, started in about a second."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .procs import free_port, run


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if Path(directory, "initdb").exists():
            return Path(directory)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: install them (`apt-get install postgresql`) "
        "or run `make test`, which installs what the tests need"
    )


@dataclass
class Postgres:
    bindir: Path
    datadir: Path
    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return run(
            [str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql]
        ).stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"])
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    @staticmethod
    def _as_owner(cmd: list[str]) -> None:
        # initdb and postgres refuse to run as root: use the postgres system user then.
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        run(cmd)

    @classmethod
    def start(cls) -> Postgres:
        bindir = _bindir()
        base = Path(tempfile.mkdtemp(prefix="playbook-pg-"))
        datadir = base / "data"
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(base, owner.pw_uid, owner.pw_gid)
        port = free_port()
        cls._as_owner([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                       "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        cls._as_owner([str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options,
                       "-l", str(base / "server.log"), "-w", "start"])
        return cls(bindir=bindir, datadir=datadir, port=port)
