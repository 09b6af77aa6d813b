"""Copier's executable-bit sync, asking git once per copy instead of once per file.

Copier (9.19) runs `git config --get core.fileMode` in the destination for every file it
renders (`Worker._sync_git_index_executable_bit`), and only where that says `false` does it
touch git's index. That is about 130 git processes a render, 21,600 of the 37,000 git
processes of a `make test` (tests/test_render.py: 59 s before, 41 s after). The setting
cannot change while one Worker copies or updates, so the tests' Copier asks once per Worker;
where it is `false`, Copier's own code runs for every file, as before.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from copier._main import Worker

_ORIGINAL = Worker._sync_git_index_executable_bit
_ANSWER = "_playbook_file_mode_is_false"  # kept in the Worker's own __dict__, dies with it


def file_mode_is_false(root: Path) -> bool:
    """What Copier asks first: is `core.fileMode` false where it renders? (Unset means true.)"""
    result = subprocess.run(
        ["git", "config", "--type=bool", "--get", "core.fileMode"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "false"


def _sync_git_index_executable_bit(self: Worker, dst_relpath: Path, src_mode: int) -> None:
    state = vars(self)
    if _ANSWER not in state:
        state[_ANSWER] = file_mode_is_false(Path(self.subproject.local_abspath))
    if state[_ANSWER]:
        _ORIGINAL(self, dst_relpath, src_mode)


def install() -> None:
    Worker._sync_git_index_executable_bit = _sync_git_index_executable_bit  # type: ignore[method-assign]
