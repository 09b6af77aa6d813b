"""Render projects from the template and set them up the way a user would."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dev import service_types
from dev.template_repo import GIT_ENV, ROOT, TEMPLATE_PATHS, copy_worktree

from .bytecode import compile_libraries
from .procs import run
from .renders import render

# ROOT, TEMPLATE_PATHS, GIT_ENV and copy_worktree are dev/template_repo.py's: the tests,
# dev/render_diff.py, the docs and the benchmarks copy and render the template the same way.
# render is renders.py's: dev/template_repo.py's, each answer set rendered once per process.
__all__ = [
    "GIT_ENV",
    "ROOT",
    "SERVICE_TYPES",
    "TEMPLATE_PATHS",
    "bootstrap",
    "capabilities",
    "copy_worktree",
    "files_of",
    "first_type_with",
    "git_commit_all",
    "jinja_leftovers",
    "project_env",
    "render",
    "selected_service_types",
    "types_with",
]


def selected_service_types(all_types: list[str], env: Mapping[str, str] = os.environ) -> list[str]:
    """The service types to test: all, or those in PLAYBOOK_SERVICE_TYPES (comma-separated).

    The template's CI splits the slow tests with a `parallel:matrix` over this variable.
    """
    wanted = [name.strip() for name in env.get("PLAYBOOK_SERVICE_TYPES", "").split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(all_types))
    if unknown:
        raise ValueError(
            f"PLAYBOOK_SERVICE_TYPES names unknown service types {unknown}; known: {', '.join(all_types)}"
        )
    return [name for name in all_types if name in wanted] if wanted else list(all_types)


# The service types under test: the rows of service-types.yml, narrowed by PLAYBOOK_SERVICE_TYPES.
SERVICE_TYPES = selected_service_types(service_types.names())


def types_with(capability: str, value: bool = True) -> list[str]:
    """The service types under test whose capability is true (value=False: false)."""
    return [name for name in service_types.having(capability, value) if name in SERVICE_TYPES]


def first_type_with(**wanted: bool) -> str | None:
    """The first service type under test with all these capability values
    (`first_type_with(serves_http=False)`: a batch type), None when PLAYBOOK_SERVICE_TYPES
    leaves none. For a test that needs one type of a kind, not one type by name."""
    matching = [name for name in SERVICE_TYPES if all(name in types_with(cap, value) for cap, value in wanted.items())]
    return matching[0] if matching else None


def capabilities(answers: Mapping[str, Any]) -> service_types.ServiceType:
    """The capabilities an answer set gets (its service_type's row, or the default type's):
    `capabilities(answers).serves_http`."""
    return service_types.of(answers)


LEFTOVER = re.compile(r"\{\{|\{%|%\}|\{#|\[\[ *[\w.]+ *\]\]")
# Lines where such brackets belong to the rendered file itself.
LEGITIMATE = [
    re.compile(r"^\[\[[\w.-]+\]\]$"),  # TOML array of tables: [[tool.mypy.overrides]]
    re.compile(r"\$\{\{"),  # GitHub-style expressions in docs, Helm-style in YAML
]


def jinja_leftovers(path: Path) -> list[str]:
    """Lines of a rendered file that still look like Jinja (or an unrendered `[[ ]]`)."""
    if path.name == "script.py.mako":  # Alembic's own Mako template
        return []
    return [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if LEFTOVER.search(line) and not any(ok.search(line.strip()) for ok in LEGITIMATE)
    ]


def files_of(project: Path) -> set[str]:
    """Every file of a generated project, relative, excluding what tools create."""
    skip = {".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__"}
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and not skip.intersection(path.relative_to(project).parts)
    }


def git_commit_all(project: Path, message: str = "chore: snapshot") -> None:
    if not (project / ".git").exists():
        run(["git", "init", "-q", "-b", "main"], cwd=project, env=GIT_ENV)
    run(["git", "add", "-A"], cwd=project, env=GIT_ENV)
    run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-m", message], cwd=project, env=GIT_ENV)


def bootstrap(project: Path) -> Path:
    """`make bootstrap` as the after-copy message says, then commit so pre-commit sees files."""
    run(["make", "bootstrap"], cwd=project, env=GIT_ENV)
    compile_libraries(project)
    git_commit_all(project, "feat: initial commit from the playbook template")
    return project


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """The environment for running tools of a generated project (its venv first on PATH)."""
    venv = project / ".venv"
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**GIT_ENV, "VIRTUAL_ENV": str(venv), "PATH": path, **extra}
