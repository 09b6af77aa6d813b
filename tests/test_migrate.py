"""hooks/migrate.py on small repositories: the cases the update tests do not reach, and that
running any command twice changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from .support.procs import run
from .support.project import GIT_ENV, ROOT, git_commit_all

MIGRATE = ROOT / "hooks" / "migrate.py"


def migrate(project: Path, *args: str, check: bool = True) -> str:
    return run([sys.executable, str(MIGRATE), *args], cwd=project, env=GIT_ENV, check=check).stdout


def twice(project: Path, *args: str) -> str:
    """Run a migration, then again: the second run must change nothing."""
    output = migrate(project, *args)
    snapshot = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}
    migrate(project, *args)
    again = {p: p.read_bytes() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert again == snapshot, f"`{' '.join(args)}` is not idempotent"
    return output


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A template history: 1.0.0 ships notes.md and owned.md."""
    repo = tmp_path / "template"
    (repo / "template").mkdir(parents=True)
    (repo / "template" / "notes.md").write_text("one\ntwo\nthree\nfour\nfive\n")
    (repo / "template" / "owned.md").write_text("team content seed\n")
    git_commit_all(repo, "release 1.0.0")
    run(["git", "tag", "1.0.0"], cwd=repo, env=GIT_ENV)
    return repo


def project_with(tmp_path: Path, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name, content in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content)
    git_commit_all(project, "feat: our repository")
    return project


def test_rename_file_without_a_known_base_marks_every_difference(tmp_path: Path) -> None:
    """No template clone given: the merge has no base, so differences become conflicts."""
    project = project_with(tmp_path, {"old.md": "mine\n"})
    (project / "old.md").unlink()  # what Copier does to a file the new release does not render
    (project / "new.md").write_text("template\n")
    output = twice(project, "rename-file", "old.md", "new.md")
    text = (project / "new.md").read_text()
    assert "<<<<<<< before updating\nmine\n" in text and "template\n>>>>>>> after updating" in text
    assert "conflict markers" in output


def test_rename_file_when_the_new_release_does_not_render_the_new_name(
    tmp_path: Path, template: Path
) -> None:
    project = project_with(tmp_path, {"notes.md": "one\ntwo\nmine\n"})
    (project / "notes.md").unlink()
    twice(project, "rename-file", f"--template={template}", "--from-ref=1.0.0", "notes.md", "docs/notes.md")
    assert (project / "docs/notes.md").read_text() == "one\ntwo\nmine\n"


def test_remove_file_keeps_changed_and_team_owned_files_only(tmp_path: Path, template: Path) -> None:
    project = project_with(
        tmp_path,
        {"notes.md": "one\ntwo\nthree\nfour\nfive\n", "owned.md": "team content seed\n", "x.md": "x\n"},
    )
    for name in ("notes.md", "owned.md"):
        (project / name).unlink()
    args = (f"--template={template}", "--from-ref=1.0.0")
    assert "had not changed it" in twice(project, "remove-file", *args, "notes.md")
    assert not (project / "notes.md").exists()
    assert "belongs to you" in twice(project, "remove-file", *args, "--keep", "owned.md")
    assert (project / "owned.md").read_text() == "team content seed\n"


ANSWERS = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: 1.0.0
_src_path: https://gitlab.example.com/platform/playbook.git
canary_steps: 5,25,50,100
coverage_threshold: '80'
deploy_mode: kubectl
fast: 'yes'
owners: '@alice @acme/ml-team'
long_text: this answer is long enough that the YAML dumper wraps it onto the
    next line
"""


def test_answer_migrations_rename_map_and_convert(tmp_path: Path) -> None:
    project = project_with(tmp_path, {".copier-answers.yml": ANSWERS})
    twice(project, "rename-answer", "owners", "code_owners")
    twice(project, "rename-answer", "deploy_mode", "delivery", "--value", "kubectl=direct")
    twice(project, "retype-answer", "canary_steps", "list")
    twice(project, "retype-answer", "coverage_threshold", "int")
    twice(project, "retype-answer", "fast", "bool")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["code_owners"] == "@alice @acme/ml-team" and "owners" not in answers
    assert answers["delivery"] == "direct" and "deploy_mode" not in answers
    assert answers["canary_steps"] == [5, 25, 50, 100]
    assert answers["coverage_threshold"] == 80
    assert answers["fast"] is True
    assert answers["long_text"].endswith("onto the next line")  # untouched, still parses


def test_answer_migrations_fail_clearly(tmp_path: Path) -> None:
    project = project_with(tmp_path, {".copier-answers.yml": ANSWERS})
    failed = migrate(project, "retype-answer", "long_text", "int", check=False)
    assert "spans several lines" in failed
    failed = migrate(project, "retype-answer", "deploy_mode", "int", check=False)
    assert "cannot convert the answer deploy_mode='kubectl' to int" in failed
    (project / ".copier-answers.yml").unlink()
    assert "not found" in migrate(project, "rename-answer", "a", "b", check=False)
