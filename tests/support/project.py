"""Render projects from the template and set them up the way a user would."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier

from .procs import run

ROOT = Path(__file__).resolve().parents[2]
# What a copy of the template is made of: the settings and questions, the one list of service
# types, the rendered tree, the shared fragments it includes, and the migration scripts.
TEMPLATE_PATHS = ("copier.yml", "service-types.yml", "template", "includes", "hooks")
SERVICE_TYPES = ["microservice", "rag", "agent", "data-pipeline"]


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


SERVICE_TYPES = selected_service_types(SERVICE_TYPES)
LEFTOVER = re.compile(r"\{\{|\{%|%\}|\{#|\[\[ *[\w.]+ *\]\]")
# Lines where such brackets belong to the rendered file itself.
LEGITIMATE = [
    re.compile(r"^\[\[[\w.-]+\]\]$"),  # TOML array of tables: [[tool.mypy.overrides]]
    re.compile(r"\$\{\{"),  # GitHub-style expressions in docs, Helm-style in YAML
]

# Tests must not depend on the developer's git identity or global hooks.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Playbook Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Playbook Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def render(
    template: Path | str,
    dest: Path,
    data: Mapping[str, Any] | None = None,
    vcs_ref: str | None = "HEAD",
) -> Path:
    """`copier copy --defaults` without --trust: what a user runs."""
    copier.run_copy(
        str(template),
        dest,
        data=dict(data or {}),
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref=vcs_ref,
    )
    return dest


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
    git_commit_all(project, "feat: initial commit from the playbook template")
    return project


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """The environment for running tools of a generated project (its venv first on PATH)."""
    venv = project / ".venv"
    path = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**GIT_ENV, "VIRTUAL_ENV": str(venv), "PATH": path, **extra}
