"""`copier copy`, once per template commit and answer set in a test process.

A render takes about 2 s (Copier compiles every template and every path); hundreds of tests
render a project with answers another test already rendered. The first render of an answer
set is kept; a later one copies its files (~0.05 s) into the test's own directory, which the
test may change freely. Only what Copier would render the same is reused:

- the template is a local git repository, clean, and `vcs_ref` names a commit: the key holds
  the commit and what `git describe` says of it (Copier records it as `_commit`);
- the answers are the same, and so are the user's Copier settings (COPIER_SETTINGS_PATH);
- the destination does not exist or is empty (a render into an existing project is Copier's
  own business: it is always rendered).

A render that fails is never kept, so every error is Copier's, raised by every call.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dev.template_repo import render as copier_render

_KEPT: dict[tuple[str, ...], Path] = {}
_STORE: list[Path] = []  # the directory of the kept renders, made at the first one


def render(
    template: Path | str,
    dest: Path,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = "HEAD",
) -> Path:
    """What dev.template_repo.render does (`copier copy --defaults`, no --trust). Returns `dest`."""
    dest = Path(dest)
    key = _key(template, data, vcs_ref)
    if key is None or (dest.exists() and any(dest.iterdir())):
        return copier_render(template, dest, data, vcs_ref)
    if key not in _KEPT:
        first = Path(tempfile.mkdtemp(prefix="render-", dir=_store())) / "project"
        copier_render(template, first, data, vcs_ref)
        _KEPT[key] = first
    # shutil.copy, not copy2: the files get the time of this copy, as a render's would.
    shutil.copytree(_KEPT[key], dest, symlinks=True, copy_function=shutil.copy, dirs_exist_ok=True)
    return dest


def _key(template: Path | str, data: Mapping[str, Any] | None, vcs_ref: str | None) -> tuple[str, ...] | None:
    """What makes two renders the same, or None when this render must not be shared."""
    if vcs_ref is None or not Path(template).is_dir():
        return None

    def git(*args: str) -> str | None:
        result = subprocess.run(["git", *args], cwd=template, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "--verify", f"{vcs_ref}^{{commit}}")
    described = git("describe", "--tags", "--always", commit) if commit else None
    if commit is None or described is None or git("status", "--porcelain") != "":
        return None  # not a git repository, an unknown ref, or uncommitted changes
    answers = json.dumps(dict(data or {}), sort_keys=True, default=repr)
    settings = os.environ.get("COPIER_SETTINGS_PATH", "")
    return (str(Path(template).resolve()), commit, described, answers, settings)


def _store() -> Path:
    if not _STORE:
        _STORE.append(Path(tempfile.mkdtemp(prefix="playbook-renders-")))
        atexit.register(shutil.rmtree, _STORE[0], ignore_errors=True)
    return _STORE[0]
