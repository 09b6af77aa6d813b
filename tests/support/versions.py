"""Releases of the template as tags of a git repository of their own, for update tests.

The tags of this repository may be missing where the tests run (CI clones main), so the
tests build the versions they update across:
- each earlier release from its commit, listed in tests/update_baseline.txt (`git archive`);
- the working tree, tagged as the newest version of CHANGELOG.md;
- synthetic later releases, made by applying a scripted change to the working tree.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.version import Version

from dev.template_repo import archive_at

from .procs import run
from .project import GIT_ENV, ROOT, TEMPLATE_PATHS, copy_worktree

BASELINE_FILE = ROOT / "tests" / "update_baseline.txt"
CHANGELOG = ROOT / "CHANGELOG.md"
VERSION_HEADING = re.compile(r"^## \[?(?P<version>[0-9][^\]\s]*)", re.MULTILINE)
JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


def earlier_releases() -> list[Release]:
    """The releases listed in tests/update_baseline.txt ("<version> <commit>" lines)."""
    releases = []
    for line in BASELINE_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            version, commit = line.split()
            releases.append(Release(version, commit))
    return releases


def changelog_versions() -> list[str]:
    """Versions of CHANGELOG.md, newest first."""
    return VERSION_HEADING.findall(CHANGELOG.read_text(encoding="utf-8"))


def head_version() -> str:
    return changelog_versions()[0]


def next_version(version: str, step: int = 1) -> str:
    """A later release number than `version` (patch + step)."""
    parsed = Version(version)
    return f"{parsed.major}.{parsed.minor}.{parsed.micro + step}"


RELEASES_DIR = ROOT / "tests" / "releases"


def saved_archive(release: Release) -> Path:
    """The release's files saved as tests/releases/<version>.tar.gz (a fallback for clones
    without that commit: shallow, or with rewritten history)."""
    return RELEASES_DIR / f"{release.version}.tar.gz"


def has_commit(commit: str) -> bool:
    return run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, check=False).returncode == 0


def commit_archive(commit: str) -> bytes:
    """The template's paths at this commit (older releases have fewer), as a tar."""
    return archive_at(commit)


def archive(release: Release) -> bytes:
    """The template's files of an earlier release, as a tar: from its commit when this clone
    has it, else from its saved archive; fails loudly when neither is there."""
    if has_commit(release.commit):
        return commit_archive(release.commit)
    saved = saved_archive(release)
    if saved.exists():
        return gzip.decompress(saved.read_bytes())
    raise AssertionError(
        f"release {release.version}: commit {release.commit} (tests/update_baseline.txt) is not "
        f"in this clone and {saved.relative_to(ROOT)} does not exist. Fetch the full history "
        "(`git fetch --unshallow`) or save the archive (see tests/update_baseline.txt)."
    )


def tar_contents(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }


class TemplateRepo:
    """A git repository whose tags are releases of the template."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        run(["git", "init", "-q", "-b", "main"], cwd=path, env=GIT_ENV)
        self.versions: list[str] = []

    def _clear(self) -> None:
        for name in TEMPLATE_PATHS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def _commit(self, version: str) -> str:
        run(["git", "add", "-A"], cwd=self.path, env=GIT_ENV)
        run(["git", "commit", "-q", "--allow-empty", "-m", f"release {version}"], cwd=self.path, env=GIT_ENV)
        run(["git", "tag", version], cwd=self.path, env=GIT_ENV)
        self.versions.append(version)
        return version

    def release_from_commit(self, release: Release) -> str:
        self._clear()
        with tarfile.open(fileobj=io.BytesIO(archive(release))) as tar:
            tar.extractall(self.path, filter="data")
        return self._commit(release.version)

    def release_from_worktree(self, version: str) -> str:
        self._clear()
        copy_worktree(self.path)
        return self._commit(version)

    def release_with_change(self, version: str, change: Callable[[Path], None]) -> str:
        """The last release plus `change(repo_path)`."""
        change(self.path)
        return self._commit(version)

    def service_types(self, version: str) -> list[str]:
        config = yaml.safe_load(
            run(["git", "show", f"{version}:copier.yml"], cwd=self.path).stdout
        )
        choices = config["service_type"]["choices"]
        return list(choices.values()) if isinstance(choices, dict) else list(choices)


# ---------------------------------------------------------------- synthetic releases
SYNTHETIC_FILE = ".synthetic-release-notes.md"


def plain_release_change(repo: Path) -> None:
    """A release with no migration: a changed line, an added line, a new file."""
    readme = repo / "template" / "README.md.jinja"
    lines = readme.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].rstrip("\n") + " (service)\n"
    readme.write_text("".join(lines), encoding="utf-8")
    with (repo / "template" / ".gitignore").open("a", encoding="utf-8") as gitignore:
        gitignore.write("\n# synthetic release\n.synthetic-cache/\n")
    (repo / "template" / SYNTHETIC_FILE).write_text(
        "# Notes of a synthetic template release\n\nAdded by tests/support/versions.py.\n",
        encoding="utf-8",
    )


def rename_jinja_variable(text: str, old: str, new: str) -> str:
    word = re.compile(rf"(?<![\w.]){re.escape(old)}\b")
    return JINJA_BLOCK.sub(lambda block: word.sub(new, block.group(0)), text)


def migrations_release_change(version: str) -> Callable[[Path], None]:
    """A release that renames the `owners` question and drops two files, with migrations."""

    def change(repo: Path) -> None:
        config = repo / "copier.yml"
        text = rename_jinja_variable(config.read_text(encoding="utf-8"), "owners", "code_owners")
        text = re.sub(r"^owners:", "code_owners:", text, flags=re.MULTILINE)
        script = ['"{{ _copier_python }}"', '"{{ _copier_conf.src_path }}/hooks/migrate.py"']
        migrations = f"""_migrations:
  - version: "{version}"
    when: "{{{{ _stage == 'before' }}}}"
    command: [{", ".join(script)}, rename-answer, owners, code_owners]
  - version: "{version}"
    command: [{", ".join(script)}, remove-file, "--template={{{{ _copier_conf.src_path }}}}",
              "--from-ref={{{{ _version_from }}}}", .gitlab/issue_templates/Postmortem.md]
  - version: "{version}"
    command: [{", ".join(script)}, remove-file, "--template={{{{ _copier_conf.src_path }}}}",
              "--from-ref={{{{ _version_from }}}}", .gitlab/merge_request_templates/Default.md]
"""
        heading = re.search(r"^_migrations:.*\n", text, flags=re.MULTILINE)
        assert heading, "copier.yml has no _migrations list to extend"
        # Keep the heading's YAML anchor (`_migrations: &migrations`): the update check uses it.
        text = text.replace(heading.group(0), heading.group(0) + migrations.split("\n", 1)[1], 1)
        config.write_text(text, encoding="utf-8")
        for path in (repo / "template").rglob("*.jinja"):
            source = path.read_text(encoding="utf-8")
            renamed = rename_jinja_variable(source, "owners", "code_owners")
            if renamed != source:
                path.write_text(renamed, encoding="utf-8")
        (repo / "template" / ".gitlab" / "issue_templates" / "Postmortem.md").unlink()
        (repo / "template" / ".gitlab" / "merge_request_templates" / "Default.md").unlink()

    return change
