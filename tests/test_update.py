"""`copier update` as a tested path: from earlier releases (and to a later one) nothing the
team wrote is lost, conflicts are impossible to miss, migrations run only when needed.

The releases are tags of a repository the tests build (tests/support/versions.py): the
earlier releases of tests/update_baseline.txt, the working tree as the newest version of
CHANGELOG.md ("head"), and synthetic later releases: "next" (no migration) and "later"
(renamed question and dropped files, with migrations).
"""

from __future__ import annotations

import difflib
import gzip
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from copier.errors import UnsafeTemplateError, UserMessageError
from packaging.version import Version

from .support.edits import Edit, conflicting_edit, plan_edits
from .support.procs import run
from .support.project import (
    GIT_ENV,
    ROOT,
    SERVICE_TYPES,
    copy_worktree,
    files_of,
    git_commit_all,
    render,
)
from .support.versions import (
    SYNTHETIC_FILE,
    TemplateRepo,
    changelog_versions,
    commit_archive,
    earlier_releases,
    has_commit,
    head_version,
    migrations_release_change,
    next_version,
    plain_release_change,
    saved_archive,
    tar_contents,
)
from .test_readme import first_code_block

# The update check reads the project's answers file only where it exists: a copy or an update
# that warns "File not found" has read it elsewhere.
pytestmark = pytest.mark.filterwarnings("error::copier.errors.MissingFileWarning")

MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)
ANSWERS = {"project_name": "Fraud Scoring", "owners": "@alice @acme/ml-team"}


@dataclass
class Releases:
    repo: TemplateRepo
    earlier: list[str]
    head: str
    next: str
    later: str
    _fresh: dict[tuple[str, tuple[tuple[str, Any], ...]], Path] = field(default_factory=dict)

    @property
    def src(self) -> str:
        return str(self.repo.path)

    def generate(self, version: str, dest: Path, **answers: Any) -> Path:
        """A team's repository made from `version` and committed."""
        render(self.src, dest, {**ANSWERS, **answers}, vcs_ref=version)
        git_commit_all(dest, f"feat: generated from the template {version}")
        return dest

    def fresh(self, version: str, dest: Path, **answers: Any) -> Path:
        """A fresh render of `version` (cached per answers; a copy the caller may edit)."""
        key = (version, tuple(sorted(answers.items())))
        if key not in self._fresh:
            cache = self.repo.path.parent / f"fresh-{len(self._fresh)}"
            self._fresh[key] = render(self.src, cache, {**ANSWERS, **answers}, vcs_ref=version)
        shutil.copytree(self._fresh[key], dest)
        return dest


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    repo = TemplateRepo(tmp_path_factory.mktemp("releases") / "playbook")
    earlier = [repo.release_from_commit(release) for release in earlier_releases()]
    head = repo.release_from_worktree(head_version())
    following = repo.release_with_change(next_version(head), plain_release_change)
    later = next_version(head, 2)
    repo.release_with_change(later, migrations_release_change(later))
    return Releases(repo, earlier, head, following, later)


def migration_versions() -> list[str]:
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    return [str(migration["version"]) for migration in config.get("_migrations", [])]


def crosses_migration(old: str, new: str) -> bool:
    return any(Version(old) < Version(version) <= Version(new) for version in migration_versions())


def update(project: Path, version: str, *, unsafe: bool, **options: Any) -> None:
    """`copier update --defaults` as a team (or Renovate) runs it."""
    copier.run_update(
        project, vcs_ref=version, defaults=True, overwrite=True, unsafe=unsafe, quiet=True, **options
    )


def check_conflicts(project: Path) -> tuple[int, str]:
    """The generated repository's own conflict check."""
    result = run(["make", "-s", "check-template-conflicts"], cwd=project, env=GIT_ENV, check=False)
    return result.returncode, result.stdout


def tree(project: Path) -> dict[str, bytes]:
    return {name: (project / name).read_bytes() for name in files_of(project)}


def assert_same_tree(actual: Path, expected: Path, ignore: tuple[str, ...] = ()) -> None:
    """`actual` (the updated repository) holds exactly the files and contents of `expected`."""
    got, want = tree(actual), tree(expected)
    problems = []
    if extra := sorted(set(got) - set(want) - set(ignore)):
        problems.append(f"only in the updated repository: {extra}")
    if missing := sorted(set(want) - set(got) - set(ignore)):
        problems.append(f"missing from the updated repository: {missing}")
    for name in sorted(set(got) & set(want) - set(ignore)):
        if got[name] != want[name]:
            diff = difflib.unified_diff(
                want[name].decode(errors="replace").splitlines(),
                got[name].decode(errors="replace").splitlines(),
                f"fresh render + edits: {name}", f"updated: {name}", lineterm="", n=2,
            )
            problems.append("\n".join(list(diff)[:40]))
    assert not problems, "\n\n".join(problems)


def apply_all(edits: list[Edit], project: Path) -> None:
    for edit in edits:
        edit.apply(project)


def routes() -> Iterator[Any]:
    """Every service type: from each earlier release to head, and from head to a later one."""
    for service_type in SERVICE_TYPES:
        for release in earlier_releases():
            yield pytest.param(service_type, release.version, id=f"{service_type}-from-{release.version}")
        yield pytest.param(service_type, "next", id=f"{service_type}-to-next-release")


def pick(releases: Releases, route: str, service_type: str) -> tuple[str, str]:
    """(from, to) of a route ("next" or an earlier version); skips, with the reason asserted,
    a service type that release did not have (its update is tested head -> next)."""
    if route == "next":
        return releases.head, releases.next
    old = releases.earlier[0] if route == "earlier" else route
    if service_type not in releases.repo.service_types(old):
        assert service_type in releases.repo.service_types(releases.head)
        pytest.skip(f"{service_type} did not exist in {old}: its update is tested head -> next")
    return old, releases.head


# ---------------------------------------------------------------- the releases themselves
def test_changelog_lists_pep440_releases_newest_first_with_their_migrations() -> None:
    versions = changelog_versions()
    parsed = [Version(version) for version in versions]  # raises on a non-PEP 440 version
    assert parsed == sorted(parsed, reverse=True), versions
    assert len(set(versions)) == len(versions)
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        assert "### What changes in generated repositories" in section, section[:40]
        assert "### What service teams must do" in section, section[:40]
    for version in migration_versions():
        assert version in versions, f"_migrations version {version} is not in CHANGELOG.md"
        section = text.split(f"## {version}", 1)[1].split("\n## ", 1)[0]
        assert "### Migrations" in section and "--trust" in section, version
    for release in earlier_releases():
        assert release.version in versions[1:], release
        assert Version(release.version) < parsed[0]


def test_earlier_releases_are_commits_of_this_repository_saved_as_archives() -> None:
    """Each earlier release is a commit of main and a saved archive with the same files
    (the archive serves clones that lack the commit)."""
    for release in earlier_releases():
        assert re.fullmatch(r"[0-9a-f]{40}", release.commit), release
        assert saved_archive(release).exists(), f"save {saved_archive(release)} (tests/update_baseline.txt)"
        saved = tar_contents(gzip.decompress(saved_archive(release).read_bytes()))
        assert {"copier.yml", "template/Makefile.jinja"} <= set(saved), sorted(saved)[:5]
        if has_commit(release.commit):
            assert saved == tar_contents(commit_archive(release.commit)), f"{release} archive differs"


# ---------------------------------------------------------------- every service type
@pytest.mark.parametrize(("service_type", "route"), routes())
def test_update_keeps_every_edit_and_equals_a_fresh_render_plus_the_edits(
    releases: Releases, tmp_path: Path, service_type: str, route: str
) -> None:
    old_version, new_version = pick(releases, route, service_type)
    project = releases.generate(old_version, tmp_path / "project", service_type=service_type)
    expected = releases.fresh(new_version, tmp_path / "expected", service_type=service_type)
    edits = plan_edits(project, expected, "fraud_scoring")
    names = {edit.name for edit in edits}
    assert {"edit service code", "add a local CI job and variable", "delete an optional file"} <= names
    if route == "next":  # the synthetic release leaves the pipeline files alone
        assert "change a pipeline setting" in names
    apply_all(edits, project)
    git_commit_all(project, "feat: our changes")

    # Without --trust unless the update crosses a migration: head -> next never does.
    trust = crosses_migration(old_version, new_version)
    assert not trust or route != "next"
    update(project, new_version, unsafe=trust)

    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == new_version
    assert not [edit.name for edit in edits if not edit.present(project)], "edits lost"
    code, output = check_conflicts(project)
    assert code == 0 and "No template update conflicts." in output, output
    assert not list(project.rglob("*.rej"))
    if route == "next":
        assert (project / SYNTHETIC_FILE).exists()
        assert (project / "README.md").read_text().splitlines()[0].endswith("(service)")
    else:
        assert (project / ".gitlab/issue_templates/incident-report.md").exists()
        assert not (project / ".gitlab/issue_templates/Incident.md").exists()
    apply_all(edits, expected)
    assert_same_tree(project, expected)


# ---------------------------------------------------------------- conflicts
@pytest.mark.parametrize(
    ("route", "mode"), [("earlier", "inline"), ("next", "inline"), ("next", "rej")]
)
def test_overlapping_edits_are_reported_never_lost(
    releases: Releases, tmp_path: Path, route: str, mode: str
) -> None:
    old_version, new_version = pick(releases, route, "microservice")
    project = releases.generate(old_version, tmp_path / "project")
    expected = releases.fresh(new_version, tmp_path / "expected")
    conflict = conflicting_edit(project, expected)
    incident = project / ".gitlab/issue_templates/Incident.md"
    deleted_before_rename = incident.exists()
    if deleted_before_rename:  # a file the team deleted stays deleted across its rename
        incident.unlink()
    conflict.apply(project)
    git_commit_all(project, "feat: our changes")

    update(project, new_version, unsafe=crosses_migration(old_version, new_version), conflict=mode)

    code, output = check_conflicts(project)
    assert code != 0, output
    if mode == "inline":
        assert conflict.present(project), "the team's line was lost"
        text = (project / conflict.path).read_text()
        assert MARKER.search(text), text
        assert conflict.path in output
        unmerged = run(["git", "diff", "--name-only", "--diff-filter=U"], cwd=project).stdout
        assert conflict.path in unmerged.split()
        assert "rej" not in output
    else:  # the team's change waits in the .rej file, the file has the template's version
        rejected = (project / f"{conflict.path}.rej").read_text()
        assert "(team)" in rejected or "team line" in rejected, rejected
        assert f"{conflict.path}.rej" in output
        assert not MARKER.search((project / conflict.path).read_text())
    if deleted_before_rename:
        assert not (project / ".gitlab/issue_templates/incident-report.md").exists()
        (expected / ".gitlab/issue_templates/incident-report.md").unlink()
    # Everything but the conflicting file is exactly the new version.
    assert_same_tree(project, expected, ignore=(conflict.path, f"{conflict.path}.rej"))


# ---------------------------------------------------------------- trust and migrations
def test_update_across_a_migration_needs_trust_and_does_nothing_without_it(
    releases: Releases, tmp_path: Path
) -> None:
    old_version = releases.earlier[0]
    assert crosses_migration(old_version, releases.head)
    project = releases.generate(old_version, tmp_path / "project")
    with pytest.raises(UnsafeTemplateError, match="migrations"):
        update(project, releases.head, unsafe=False)
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""

    update(project, releases.head, unsafe=True)  # untouched files: plainly the new release
    assert_same_tree(project, releases.fresh(releases.head, tmp_path / "expected"))


@pytest.mark.parametrize(
    ("anchor", "clean"),
    [("- **Pipeline / deployment**:", True), ("- **Environment**:", False)],
    ids=["next-to-the-template-change", "at-the-template-change"],
)
def test_rename_migration_merges_the_team_edit_with_the_template_change(
    releases: Releases, tmp_path: Path, anchor: str, clean: bool
) -> None:
    """0.2.0 renamed Incident.md and added a line before "Environment": a team line one line
    away merges cleanly, a team line at the same place is a reported conflict."""
    old_version = releases.earlier[0]
    project = releases.generate(old_version, tmp_path / "project")
    old = project / ".gitlab/issue_templates/Incident.md"
    old.write_text(old.read_text().replace(anchor, f"- **Customer impact**: yes / no\n{anchor}"))
    git_commit_all(project, "docs: our incident template")

    update(project, releases.head, unsafe=True)

    new = (project / ".gitlab/issue_templates/incident-report.md").read_text()
    assert "- **Customer impact**: yes / no\n" in new
    assert "- **Incident commander**:" in new
    assert not old.exists()
    code, output = check_conflicts(project)
    if clean:
        assert not MARKER.search(new) and code == 0, output
        expected = releases.fresh(releases.head, tmp_path / "expected")
        moved = expected / ".gitlab/issue_templates/incident-report.md"
        moved.write_text(moved.read_text().replace(anchor, f"- **Customer impact**: yes / no\n{anchor}"))
        assert_same_tree(project, expected)
    else:
        assert MARKER.search(new) and code != 0 and "incident-report.md" in output, output
    snapshot = tree(project)
    rerun_migration(project, releases, old_version, "rename-file",
                    ".gitlab/issue_templates/Incident.md", ".gitlab/issue_templates/incident-report.md")
    assert tree(project) == snapshot, "the migration is not idempotent"


def rerun_migration(project: Path, releases: Releases, from_version: str, *args: str) -> None:
    run([sys.executable, str(ROOT / "hooks" / "migrate.py"), args[0], f"--template={releases.src}",
         f"--from-ref={from_version}", *args[1:]], cwd=project)


def test_renamed_question_and_dropped_files_migrate(releases: Releases, tmp_path: Path) -> None:
    """A release renaming `owners` and dropping two files: the answer and the team's edited
    file survive, the untouched file goes, and only this update needs --trust."""
    project = releases.generate(releases.next, tmp_path / "project")
    postmortem = project / ".gitlab/issue_templates/Postmortem.md"
    postmortem.write_text(postmortem.read_text() + "\n## Our review checklist\n")
    git_commit_all(project, "docs: our postmortem")
    with pytest.raises(UnsafeTemplateError):
        update(project, releases.later, unsafe=False)

    update(project, releases.later, unsafe=True)

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["code_owners"] == ANSWERS["owners"] and "owners" not in answers
    assert f"* {ANSWERS['owners']}" in (project / ".gitlab/CODEOWNERS").read_text()
    assert postmortem.read_text().endswith("## Our review checklist\n")
    assert not (project / ".gitlab/merge_request_templates/Default.md").exists()
    expected = releases.fresh(releases.later, tmp_path / "expected", code_owners=ANSWERS["owners"])
    shutil.copy(postmortem, expected / ".gitlab/issue_templates/Postmortem.md")
    assert_same_tree(project, expected)

    snapshot = tree(project)
    run([sys.executable, str(ROOT / "hooks" / "migrate.py"), "rename-answer", "owners", "code_owners"], cwd=project)
    for path in (".gitlab/issue_templates/Postmortem.md", ".gitlab/merge_request_templates/Default.md"):
        rerun_migration(project, releases, releases.next, "remove-file", path)
    assert tree(project) == snapshot, "a migration is not idempotent"


# ---------------------------------------------------------------- changing an answer later
@pytest.mark.parametrize(
    "change",
    [{"use_database": True}, {"use_ml_tracking": True}, {"deploy_mode": "gitops", "runtime_image": "slim"}],
    ids=lambda change: ",".join(f"{key}={value}" for key, value in change.items()),
)
def test_changing_an_answer_later(releases: Releases, tmp_path: Path, change: dict[str, Any]) -> None:
    """`copier update --data key=value` on the same release: the answer's effect, the team's
    edits kept, and exactly a fresh render with that answer."""
    project = releases.generate(releases.head, tmp_path / "project")
    expected = releases.fresh(releases.head, tmp_path / "expected", **change)
    edits = plan_edits(project, expected, "fraud_scoring")
    apply_all(edits, project)
    git_commit_all(project, "feat: our changes")

    update(project, releases.head, unsafe=False, data=change)

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {key: answers[key] for key in change} == change
    assert not [edit.name for edit in edits if not edit.present(project)]
    if change.get("use_database"):
        assert (project / "src/fraud_scoring/db.py").exists()
        assert (project / "alembic.ini").exists()
    apply_all(edits, expected)
    assert_same_tree(project, expected)


# ---------------------------------------------------------------- the updated project works
@pytest.mark.slow
def test_updated_project_passes_its_own_checks(releases: Releases, tmp_path: Path) -> None:
    """One smoke: an old microservice with the team's code, updated to head, is green."""
    old_version = releases.earlier[0]
    project = releases.generate(old_version, tmp_path / "project")
    expected = releases.fresh(releases.head, tmp_path / "expected")
    edits = [e for e in plan_edits(project, expected, "fraud_scoring") if "pipeline" not in e.name]
    apply_all(edits, project)
    git_commit_all(project, "feat: our changes")
    update(project, releases.head, unsafe=True)
    git_commit_all(project, "chore(template): update to the newest release")
    run(["make", "bootstrap", "check"], cwd=project, env=GIT_ENV)
    result = run(
        [".venv/bin/pytest", "-q", "-p", "no:cacheprovider", "--no-cov", "tests/unit/test_team_edits.py"],
        cwd=project, env=GIT_ENV,
    )
    assert "1 passed" in result.stdout


# ---------------------------------------------------------------- untagged template versions
INCIDENT = ".gitlab/issue_templates/Incident.md"
INCIDENT_REPORT = ".gitlab/issue_templates/incident-report.md"
TEAM_LINE = "- **Customer impact**: yes / no\n"


def copier_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`copier ...` on the command line, as a team runs it (copier 9.19.1 of the lock file)."""
    return run([sys.executable, "-m", "copier", *args], cwd=project, env=GIT_ENV, check=False)


def refusal_commands(output: str) -> tuple[str, list[str]]:
    """The refusal's `--data` update and the commands it says to run after it."""
    override = re.search(r"`(copier update [^`]*migrations_check=by-hand)`", output)
    after = re.search(r"\), then: (.*?) ; make check-template-conflicts", output)
    assert override and after, output
    return override.group(1), after.group(1).split(" ; ")


@pytest.mark.slow
def test_update_between_untagged_template_commits_is_refused_and_loses_no_edit(
    tmp_path: Path,
) -> None:
    """A template clone without release tags: Copier sees 0.0.0.postN on both sides and would
    skip the 0.2.0 rename, deleting the team's edited Incident.md. The update is refused,
    the repository untouched; the by-hand route the message gives keeps the edit."""
    repo = TemplateRepo(tmp_path / "untagged" / "playbook")
    repo.release_from_commit(earlier_releases()[0])
    repo.release_from_worktree(head_version())
    run(["git", "tag", "-d", *repo.versions], cwd=repo.path)
    old = run(["git", "rev-parse", "--short", "HEAD~1"], cwd=repo.path).stdout.strip()
    project = render(repo.path, tmp_path / "project", ANSWERS, vcs_ref=old)
    git_commit_all(project, "feat: generated from an untagged template commit")
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == old
    incident = project / INCIDENT
    anchor = "- **Pipeline / deployment**:"  # a line the 0.2.0 change leaves alone: a clean merge
    incident.write_text(incident.read_text().replace(anchor, f"{TEAM_LINE}{anchor}"))
    git_commit_all(project, "docs: our incident template")
    before = tree(project)

    for trust in ((), ("--trust",)):
        result = copier_cli(project, "update", "--defaults", *trust)
        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stdout, result.stdout
        assert "Playbook: update refused. From template version" in result.stdout
        assert f"From template version {old} to " in result.stdout
        assert "needs the migration(s) 0.2.0" in result.stdout
        assert "--vcs-ref X.Y.Z` with X.Y.Z >= 0.2.0" in result.stdout
        assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""
        assert tree(project) == before

    override, commands = refusal_commands(result.stdout)
    assert commands == [
        f"python3 {repo.path}/hooks/migrate.py rename-file --template={repo.path} "
        f"--from-ref={old} {INCIDENT} {INCIDENT_REPORT}"
    ]
    # What the refusal prevents: Copier alone deletes the edited file...
    updated = copier_cli(project, *shlex.split(override)[1:])
    assert updated.returncode == 0, updated.stdout
    assert not incident.exists()
    assert TEAM_LINE not in (project / INCIDENT_REPORT).read_text()
    # ...and the migration the message gives, run before committing, brings the edit over.
    for command in commands:
        run(command, cwd=project, env=GIT_ENV)
    assert TEAM_LINE in (project / INCIDENT_REPORT).read_text()
    assert "- **Incident commander**:" in (project / INCIDENT_REPORT).read_text()
    code, output = check_conflicts(project)
    assert code == 0 and "No template update conflicts." in output, output


def test_update_to_a_commit_after_the_last_release_with_a_new_migration_is_refused(
    releases: Releases, tmp_path: Path
) -> None:
    """Release tags exist, but the target commit's migrations are not released yet: Copier
    would place the commit at next.post1, below their version, and skip them."""
    clone = tmp_path / "playbook"
    run(["git", "clone", "-q", releases.src, str(clone)])
    run(["git", "tag", "-d", releases.later], cwd=clone)
    project = render(clone, tmp_path / "project", ANSWERS, vcs_ref=releases.next)
    git_commit_all(project, f"feat: generated from the template {releases.next}")

    with pytest.raises(UserMessageError) as refused:
        update(project, "HEAD", unsafe=True)

    message = str(refused.value)
    assert f"From template version {releases.next} to {releases.next}-1-g" in message
    assert f"needs the migration(s) {releases.later}" in message
    assert f"BEFORE the update: python3 {clone}/hooks/migrate.py rename-answer owners code_owners" in message
    assert run(["git", "status", "--porcelain"], cwd=project).stdout == ""
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["owners"] == ANSWERS["owners"]


def test_update_to_an_untagged_commit_that_needs_no_migration_goes_through(
    releases: Releases, tmp_path: Path
) -> None:
    """From a release to a later untagged commit without a new migration: nothing to skip,
    so no refusal and no --trust."""
    clone = tmp_path / "playbook"
    run(["git", "clone", "-q", releases.src, str(clone)])
    run(["git", "tag", "-d", releases.next, releases.later], cwd=clone)
    project = render(clone, tmp_path / "project", ANSWERS, vcs_ref=releases.head)
    git_commit_all(project, f"feat: generated from the template {releases.head}")
    untagged = run(["git", "rev-parse", "HEAD~1"], cwd=clone).stdout.strip()

    update(project, untagged, unsafe=False)

    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"].startswith(f"{releases.head}-1-g")
    assert (project / SYNTHETIC_FILE).exists()


def test_every_generated_repository_records_the_migrations_it_has(releases: Releases, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    assert config["template_migrations"]["default"] == config["_migrations"], "must be the same YAML node"
    project = releases.fresh(releases.head, tmp_path / "project")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_playbook_migrations"] == migration_versions()
    assert "template_migrations" not in answers and "migrations_check" not in answers


# ---------------------------------------------------------------- the README's project
@pytest.mark.slow
def test_the_readme_project_updates_from_its_template_clone(tmp_path: Path) -> None:
    """README's first command, run literally in a clone without tags, records a template
    source that a later `copier update` in ../my-service uses; the update takes the
    clone's new commit, warns of nothing and needs no --trust."""
    clone = tmp_path / "playbook"
    copy_worktree(clone, extra=["README.md"])
    git_commit_all(clone, "the template's main branch")
    command = first_code_block()[0]

    copied = run(["bash", "-c", command], cwd=clone, env=GIT_ENV)

    assert "Warning" not in copied.stdout, copied.stdout
    service = tmp_path / "my-service"
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(clone)
    assert answers["_commit"] == run(["git", "rev-parse", "--short", "HEAD"], cwd=clone).stdout.strip()
    git_commit_all(service, "feat: initial my-service from the playbook template")
    plain_release_change(clone)
    git_commit_all(clone, "fix: a change after the copy")
    new = run(["git", "rev-parse", "--short", "HEAD"], cwd=clone).stdout.strip()

    updated = run(["uvx", "--from", "copier==9.19.1", "copier", "update", "--defaults"], cwd=service, env=GIT_ENV)

    assert "Warning" not in updated.stdout, updated.stdout
    assert yaml.safe_load((service / ".copier-answers.yml").read_text())["_commit"] == new
    assert (service / "README.md").read_text().splitlines()[0].endswith("(service)")
    assert (service / SYNTHETIC_FILE).exists()
    code, output = check_conflicts(service)
    assert code == 0, output
