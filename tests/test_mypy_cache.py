"""tests/support/mypy_cache.py: the machine's copy merges the workers' caches, and what a
worker starts from never hides an error of the project it checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import mypy_cache
from .support.procs import run


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The machine's copy, in a directory of this test's own."""
    monkeypatch.setattr(mypy_cache, "KEPT", tmp_path / "machine" / "mypy")
    return mypy_cache.KEPT


def _worker_cache(root: Path, rows: dict[str, bytes]) -> Path:
    shard = root / "3.11" / "cache.0.db"
    shard.parent.mkdir(parents=True)
    with sqlite3.connect(shard) as db:
        db.executescript(mypy_cache.SCHEMA)
        db.executemany("INSERT INTO files2 VALUES (?, 1.0, ?)", rows.items())
    return root


def _rows(cache: Path) -> dict[str, bytes]:
    with sqlite3.connect(cache / "3.11" / "cache.0.db") as db:
        return dict(db.execute("SELECT path, data FROM files2"))


def test_the_workers_caches_merge_and_the_last_one_wins(kept: Path, tmp_path: Path) -> None:
    mypy_cache.save(_worker_cache(tmp_path / "gw0", {"fastapi.data.ff": b"0", "my_service.data.ff": b"0"}))
    mypy_cache.save(_worker_cache(tmp_path / "gw1", {"openai.data.ff": b"1", "my_service.data.ff": b"1"}))
    mypy_cache.save(tmp_path / "gw2-checked-nothing")
    started = tmp_path / "next-run"
    mypy_cache.restore(started)
    assert _rows(started) == {"fastapi.data.ff": b"0", "openai.data.ff": b"1", "my_service.data.ff": b"1"}


@pytest.mark.slow
@pytest.mark.xdist_group("microservice-db-False")
def test_a_kept_entry_of_another_project_never_hides_an_error(
    bootstrapped: Callable[..., Path], kept: Path, tmp_path: Path
) -> None:
    """Two projects with a module of the same name (every generated project's package is
    `my_service`), the second one wrong: the real mypy of a generated project, started from
    the first one's cache, reports the second one's error."""
    mypy = bootstrapped(service_type="microservice", use_database=False) / ".venv" / "bin" / "mypy"

    def check(project: Path, source: str, cache: Path) -> str:
        (project / "my_service").mkdir(parents=True)
        (project / "my_service" / "__init__.py").write_text("")
        (project / "my_service" / "settings.py").write_text(source)
        env = {"MYPY_CACHE_DIR": str(cache)}
        return run([str(mypy), "--strict", "my_service"], cwd=project, env=env, check=False).stdout

    assert "Success" in check(tmp_path / "first", "PORT: int = 8000\n", tmp_path / "cache-1")
    mypy_cache.save(tmp_path / "cache-1")
    mypy_cache.restore(tmp_path / "cache-2")
    assert _rows(tmp_path / "cache-2"), "the second project starts from the first one's cache"
    result = check(tmp_path / "second", 'PORT: int = "8000"\n', tmp_path / "cache-2")
    assert 'settings.py:1: error: Incompatible types in assignment' in result, result
