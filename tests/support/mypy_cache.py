"""mypy's cache, kept on the machine from one run of the suite to the next.

A generated project's `mypy --strict` spends most of its first minute on the libraries
(FastAPI, SQLAlchemy, MLflow, the OpenAI SDK...), and each test worker starts with an empty
cache. Now a worker starts from the machine's copy and merges its own back when its session
ends, as the uv cache and the bytecode are kept. Nothing in it is trusted blindly: every
project lives at a new path, so mypy checks each entry against the hash of its source, and
an entry of another library version, or of another project's own module, is checked again.

mypy 2 keeps the cache in SQLite shards (`<python version>/cache.<n>.db`, table `files2`,
a row per module and file kind, the shard chosen by the module's name). Starting copies the
shard files, under a shared lock; merging copies rows, under an exclusive one, so two runs on
one machine never read a half-merged copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
KEPT = CACHE_HOME / "playbook-test" / "mypy"
SCHEMA = """
CREATE TABLE IF NOT EXISTS files2 (path TEXT UNIQUE NOT NULL, mtime REAL, data BLOB);
CREATE INDEX IF NOT EXISTS path_idx on files2(path);
"""  # mypy/metastore.py's


@contextlib.contextmanager
def _locked(mode: int) -> Iterator[None]:
    KEPT.parent.mkdir(parents=True, exist_ok=True)
    with open(KEPT.parent / "mypy.lock", "w") as lock:
        fcntl.flock(lock, mode)
        yield


def restore(cache: Path) -> None:
    """Start `cache` (a worker's MYPY_CACHE_DIR) from the machine's copy, if there is one."""
    with _locked(fcntl.LOCK_SH):
        if KEPT.is_dir():
            shutil.copytree(KEPT, cache, dirs_exist_ok=True)


def save(cache: Path) -> None:
    """Merge the rows of `cache` into the machine's copy: this worker's entries win."""
    shards = sorted(cache.glob("*/cache*.db"))
    if not shards:
        return
    with _locked(fcntl.LOCK_EX):
        for shard in shards:
            kept = KEPT / shard.relative_to(cache)
            kept.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(kept)) as db, db:
                db.executescript(SCHEMA)
                db.execute("ATTACH DATABASE ? AS worker", (str(shard),))
                db.execute("INSERT OR REPLACE INTO files2 (path, mtime, data) SELECT path, mtime, data FROM worker.files2")
