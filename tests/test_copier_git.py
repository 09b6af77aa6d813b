"""tests/support/copier_git.py: the tests' Copier asks git about `core.fileMode` once per
Worker, and where it is false still brings a file's executable bit into git's index."""

from __future__ import annotations

from pathlib import Path

import pytest
from copier._main import Worker

from .support import copier_git
from .support.procs import run
from .support.project import git_commit_all


def _repository(root: Path, file_mode: str | None) -> Path:
    """A repository with a tracked, not executable script (mode 100644 in the index)."""
    root.mkdir()
    (root / "run.sh").write_text("#!/bin/sh\n")
    git_commit_all(root, "a script")
    if file_mode is not None:
        run(["git", "config", "core.fileMode", file_mode], cwd=root)
    return root


def _index_mode(root: Path) -> str:
    return run(["git", "ls-files", "--stage", "run.sh"], cwd=root).stdout.split()[0]


def test_where_file_mode_is_false_the_executable_bit_reaches_the_index(tmp_path: Path) -> None:
    repository = _repository(tmp_path / "project", file_mode="false")
    worker = Worker(src_path=str(tmp_path), dst_path=repository)
    worker._sync_git_index_executable_bit(Path("run.sh"), 0o100755)
    assert _index_mode(repository) == "100755"


def test_git_is_asked_once_per_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repository = _repository(tmp_path / "project", file_mode=None)
    asked: list[Path] = []
    original = copier_git.file_mode_is_false

    def counted(root: Path) -> bool:
        asked.append(root)
        return original(root)

    monkeypatch.setattr(copier_git, "file_mode_is_false", counted)
    for _ in range(2):
        worker = Worker(src_path=str(tmp_path), dst_path=repository)
        for _ in range(50):
            worker._sync_git_index_executable_bit(Path("run.sh"), 0o100755)
    assert asked == [repository, repository]
    assert _index_mode(repository) == "100644", "core.fileMode is true: git sees the chmod itself"
