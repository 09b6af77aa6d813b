"""tests/support/bytecode.py on a small uv cache of its own: what is compiled, what is linked
into which environment, and what is left alone."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .support import bytecode

PYC = f"__init__.{sys.implementation.cache_tag}.pyc"


def _entry(archives: Path, name: str) -> Path:
    """A cache entry as uv unpacks a wheel: a package, its .dist-info and a script in .data."""
    entry = archives / f"entry-{name}"
    (entry / name).mkdir(parents=True)
    (entry / name / "__init__.py").write_text("VALUE = 1\n")
    (entry / f"{name}-1.0.dist-info").mkdir()
    (entry / f"{name}-1.0.dist-info" / "METADATA").write_text(f"Name: {name}\n")
    (entry / f"{name}-1.0.data" / "scripts").mkdir(parents=True)
    (entry / f"{name}-1.0.data" / "scripts" / "tool.py").write_text("print('x')\n")
    return entry


def _project(root: Path, entry: Path, name: str) -> Path:
    """An environment linked from `entry` as uv links one (hard links, real directories)."""
    venv = root / ".venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    for path in sorted(entry.rglob("*")):
        if ".data" in path.relative_to(entry).parts[0] or "__pycache__" in path.parts:
            continue
        target = site / path.relative_to(entry)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            os.link(path, target)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "pyvenv.cfg").write_text(f"home = {Path(sys._base_executable).parent}\n")
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))
    monkeypatch.setattr(bytecode, "MARKERS", tmp_path / "markers")
    return tmp_path / "uv" / "archive-v0"


def test_an_entry_is_compiled_once_and_linked_into_the_projects_installed_before(
    cache: Path, tmp_path: Path
) -> None:
    entry = _entry(cache, "lib")
    first = _project(tmp_path / "first", entry, "lib")
    # Installed from the entry before it was compiled (another worker's project, meanwhile).
    second = _project(tmp_path / "second", entry, "lib")

    bytecode.compile_libraries(first)
    compiled = entry / "lib" / "__pycache__" / PYC
    assert compiled.is_file()
    assert not (entry / "lib-1.0.data" / "scripts" / "__pycache__").exists(), "uv refuses this"
    for project in (first, second):
        bytecode.compile_libraries(project)
        linked = project / ".venv/lib/python3.11/site-packages/lib/__pycache__" / PYC
        assert linked.stat().st_ino == compiled.stat().st_ino

    stamp = compiled.stat().st_mtime_ns
    bytecode.compile_libraries(first)  # marked: not compiled again
    assert compiled.stat().st_mtime_ns == stamp
    assert (bytecode.MARKERS / entry.name).exists()


def test_an_entry_the_environment_does_not_link_is_left_alone(cache: Path, tmp_path: Path) -> None:
    entry = _entry(cache, "lib")
    other = _entry(cache, "other")  # same .dist-info name elsewhere would not match: own inode
    project = _project(tmp_path / "project", entry, "lib")
    bytecode.compile_libraries(project)
    assert not (other / "other" / "__pycache__").exists()
    assert not (bytecode.MARKERS / other.name).exists()


def test_an_interpreter_that_compiles_nothing_leaves_the_entry_to_the_next_project(
    cache: Path, tmp_path: Path
) -> None:
    entry = _entry(cache, "lib")
    project = _project(tmp_path / "project", entry, "lib")
    python = project / ".venv" / "bin" / "python"
    python.unlink()
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    bytecode.compile_libraries(project)
    assert not (bytecode.MARKERS / entry.name).exists()
    later = _project(tmp_path / "later", entry, "lib")
    bytecode.compile_libraries(later)
    assert (later / ".venv/lib/python3.11/site-packages/lib/__pycache__" / PYC).is_file()


def test_a_module_that_does_not_compile_leaves_the_others_compiled(
    cache: Path, tmp_path: Path
) -> None:
    entry = _entry(cache, "lib")
    (entry / "lib" / "broken.py").write_text("def (:\n")
    project = _project(tmp_path / "project", entry, "lib")
    bytecode.compile_libraries(project)
    assert (entry / "lib" / "__pycache__" / PYC).is_file()
    assert not list((entry / "lib" / "__pycache__").glob("broken.*"))
    # The project still imports its module from source as before: nothing was linked for it.
    assert not list((project / ".venv/lib/python3.11/site-packages/lib/__pycache__").glob("broken.*"))
