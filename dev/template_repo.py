"""The template as the tools of this repository copy and render it: one place for each.

- TEMPLATE_PATHS: what a copy of the template is made of;
- copy_worktree / archive_at: that copy, from the working tree or from a git ref (a path
  a version does not have is left out: older versions lack newer paths);
- render: `copier copy --defaults` without --trust, what a user runs; used by the tests,
  dev/render_diff.py, the docs and the benchmarks.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import copier

ROOT = Path(__file__).resolve().parents[1]
# The settings and questions, the one list of service types, the rendered tree, the shared
# fragments it includes, and the migration scripts.
TEMPLATE_PATHS = ("copier.yml", "service-types.yml", "template", "includes", "hooks")

# Copies and renders must not depend on the developer's git identity or global hooks.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Playbook Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Playbook Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def present_paths(ref: str | None = None, root: Path = ROOT) -> list[str]:
    """The template's paths that exist in the working tree (ref None) or at a git ref."""
    if ref is None:
        return [name for name in TEMPLATE_PATHS if (root / name).exists()]
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", ref],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [name for name in TEMPLATE_PATHS if name in listed]


def copy_worktree(into: Path, extra: Iterable[str] = (), root: Path = ROOT) -> list[str]:
    """Copy the template's paths (and `extra` ones, e.g. README.md) as they are in the working
    tree, uncommitted edits included, into `into`; returns the paths copied."""
    into.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in (*TEMPLATE_PATHS, *extra):
        source = root / name
        if not source.exists():
            continue
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
        copied.append(name)
    return copied


def archive_at(ref: str, root: Path = ROOT) -> bytes:
    """The template's paths at a git ref, as a tar."""
    return subprocess.run(
        ["git", "archive", "--format=tar", ref, *present_paths(ref, root)],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout


def copy(
    template: Path | str,
    dest: Path,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = "HEAD",
) -> copier.Worker:
    """`copier copy --defaults` without --trust; returns Copier's worker (render() is what
    most callers want: this is for those that read more than the files, e.g. the message)."""
    import copier  # imported here: ~2 s, only when rendering

    return copier.run_copy(
        str(template),
        dest,
        data=dict(data or {}),
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref=vcs_ref,
    )


def render(
    template: Path | str,
    dest: Path,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = "HEAD",
) -> Path:
    """`copier copy --defaults` without --trust: what a user runs. Returns `dest`."""
    copy(template, dest, data, vcs_ref)
    return dest
