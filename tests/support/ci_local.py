"""gitlab-ci-local on throwaway git repositories: job lists per pipeline source, shell runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from .procs import run
from .project import GIT_ENV, ROOT

GITLAB_CI_LOCAL = ROOT / "node_modules" / ".bin" / "gitlab-ci-local"


# gitlab-ci-local 4.73 (the newest that runs on Node 20) validates against a GitLab CI schema
# older than GitLab 18.4, which added `artifacts:access: maintainer` (private database backups).
# The generated pipelines are validated against GitLab's current schema by check-jsonschema.
SCHEMA_ARGS = ["--ignore-schema-paths", "#/properties/access/enum"]


def binary() -> Path:
    if not GITLAB_CI_LOCAL.exists():
        raise AssertionError(
            f"{GITLAB_CI_LOCAL} is missing: run `make deps` (npm ci installs gitlab-ci-local)"
        )
    return GITLAB_CI_LOCAL


def throwaway_repo(files: Iterable[str], source: Path, dest: Path) -> Path:
    """A git repository at `dest` holding `files` (relative to `source`), committed."""
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    commit_all(dest)
    return dest


def commit_all(repo: Path, message: str = "chore: snapshot") -> None:
    if not (repo / ".git").exists():
        run(["git", "init", "-q", "-b", "main"], cwd=repo, env=GIT_ENV)
    run(["git", "add", "-A"], cwd=repo, env=GIT_ENV)
    run(["git", "commit", "-q", "--no-verify", "--allow-empty", "-m", message], cwd=repo, env=GIT_ENV)


def _variable_args(variables: Mapping[str, str], unset: Iterable[str] = ()) -> list[str]:
    args = []
    if variables:
        args += ["--ignore-predefined-vars", ",".join(variables)]
    for key, value in variables.items():
        args += ["--variable", f"{key}={value}"]
    for key in unset:
        args += ["--unset-variable", key]
    return args


def list_jobs(repo: Path, variables: Mapping[str, str], unset: Iterable[str] = ()) -> dict[str, dict]:
    """`gitlab-ci-local --list-json`: the jobs that are not `when: never`, by name.

    `rules:changes` counts as matching (as GitLab does for new branches, tags and schedules).
    Its schema validation is off: the tests validate with check-jsonschema.
    """
    args = ["--list-json", "--no-evaluate-rule-changes", "--no-json-schema-validation"]
    args += _variable_args(variables, unset)
    result = run([str(binary()), *args], cwd=repo)
    lines = result.stdout.splitlines()  # the JSON, between log lines (stderr is merged)
    if "[]" in lines:
        return {}
    if "[" not in lines or "]" not in lines:
        raise AssertionError(f"gitlab-ci-local printed no job list:\n{result.stdout[-4000:]}")
    start, end = lines.index("["), len(lines) - lines[::-1].index("]")
    jobs = json.loads("\n".join(lines[start:end]))
    return {job["name"]: job for job in jobs if job.get("when") != "never"}


def run_job(repo: Path, job: str, variables: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Run one job in the shell (images ignored); its whole log on failure."""
    result = run(
        [str(binary()), *SCHEMA_ARGS, "--force-shell-executor", "--no-color", *_variable_args(variables or {}), job],
        cwd=repo,
        check=check,
        timeout=600,
    )
    return result.stdout
