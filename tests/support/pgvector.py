"""A throwaway PostgreSQL 16 with pgvector, from the `pgserver` wheel (Debian has no pgvector).

The generated RAG projects' integration tests start one themselves when PGVECTOR_DATABASE_URL
is empty; the template's tests start it here instead and pass its URL. Run as root, pgserver
runs the server as a `pgserver` user, which must traverse the path to the binaries in the
virtualenv: a generated project's virtualenv lies under pytest's private (0700) temporary
directory, which pytest sessions reset, while this repository's virtualenv does not.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class PgvectorServer:
    server: Any  # pgserver.PostgresServer

    def create_database(self, name: str) -> str:
        """A fresh database (`name`: letters, digits, underscores); its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and underscores only")
        self.server.psql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE); CREATE DATABASE "{name}";'
        )
        return self.server.get_uri(name)


@contextmanager
def pgvector_server() -> Iterator[PgvectorServer]:
    try:
        import pgserver
    except ImportError as error:  # no wheel for this Python: fail, never skip
        raise RuntimeError(
            "pgserver is not installed (wheels for Python 3.11 and 3.12): `uv sync` the "
            "template's dev group, or use Python 3.11/3.12"
        ) from error
    server = pgserver.get_server(
        tempfile.mkdtemp(prefix="playbook-pgvector-"), cleanup_mode="delete"
    )
    try:
        yield PgvectorServer(server)
    finally:
        server.cleanup()
