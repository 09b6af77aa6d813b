"""The template repository's own pipeline: GitLab's schema, its jobs per source, its shell jobs green.

The whole template suite is not run inside gitlab-ci-local (it would test itself
recursively); its jobs are checked per pipeline source instead, and the jobs that run in a
shell here (the docs build and the release notes) run for real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dev import changelog_section
from dev.docgen import gitlab_ci

from .support import ci_local
from .support.procs import run
from .support.project import ROOT, selected_service_types

CI_FILE = ROOT / ".gitlab-ci.yml"
TAG = "1.2.0"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return run(
        [
            str(CHECK_JSONSCHEMA),
            "--builtin-schema",
            "vendor.gitlab-ci",
            "--data-transform",
            "gitlab-ci",
            str(path),
        ],
        check=False,
    )


def _ci_config() -> dict:
    return yaml.load(CI_FILE.read_text(), Loader=gitlab_ci._Loader)  # noqa: SLF001 (GitLab tags)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's working tree (tracked and new files), as a fresh git repository."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.splitlines()
    files = [name for name in listed if (ROOT / name).is_file() and not (ROOT / name).is_symlink()]
    return ci_local.throwaway_repo(files, ROOT, tmp_path_factory.mktemp("template") / "playbook")


def test_pipeline_validates_against_gitlab_schema(tmp_path: Path) -> None:
    result = _schema_check(CI_FILE)
    assert result.returncode == 0, result.stdout
    typo = tmp_path / ".gitlab-ci.yml"
    typo.write_text(CI_FILE.read_text().replace("  script:\n", "  scriptt:\n", 1))
    assert _schema_check(typo).returncode != 0, "the schema check does not catch an unknown key"


def test_images_are_pinned_and_jobs_use_rules() -> None:
    config = _ci_config()
    for name, job in config.items():
        if not isinstance(job, dict):
            continue
        assert "only" not in job and "except" not in job, f"{name}: use rules:, not only/except"
        image = job.get("image")
        if image:
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), f"{name}: pin {image}"


def test_matrix_covers_every_service_type() -> None:
    copier = yaml.safe_load((ROOT / "copier.yml").read_text())
    choices = copier["service_type"]["choices"]
    types = list(choices.values()) if isinstance(choices, dict) else list(choices)
    matrix = _ci_config()["test:slow"]["parallel"]["matrix"]
    assert [
        value for entry in matrix for value in entry["PLAYBOOK_SERVICE_TYPES"]
    ] == types, "test:slow in .gitlab-ci.yml must have one matrix entry per service type of copier.yml"


def test_service_type_filter_of_the_matrix_jobs() -> None:
    types = ["microservice", "rag", "agent"]
    assert selected_service_types(types, {}) == types
    assert selected_service_types(types, {"PLAYBOOK_SERVICE_TYPES": ""}) == types
    assert selected_service_types(types, {"PLAYBOOK_SERVICE_TYPES": "agent, microservice"}) == ["microservice", "agent"]
    with pytest.raises(ValueError, match=r"unknown service types \['rga'\]; known: microservice, rag, agent"):
        selected_service_types(types, {"PLAYBOOK_SERVICE_TYPES": "rag,rga"})


def _expected(source_key: str, service_types: list[str]) -> set[str]:
    tests = {"test:fast", *(f"test:slow: [{name}]" for name in service_types)}
    return {
        "merge_request": tests | {"docs"},
        "default_branch": tests | {"pages"},
        "tag": {"release-notes", "release"},
        "schedule": tests,
        "schedule_template_update": tests,
    }[source_key]


def test_jobs_per_pipeline_source(repo_copy: Path) -> None:
    pipeline = gitlab_ci.load(repo_copy)
    matrix = _ci_config()["test:slow"]["parallel"]["matrix"]
    service_types = [value for entry in matrix for value in entry["PLAYBOOK_SERVICE_TYPES"]]
    for source in gitlab_ci.sources(tag=TAG):
        expected = _expected(source.key, service_types)
        listed = ci_local.list_jobs(repo_copy, source.variables, source.unset)
        assert set(listed) == expected, source.title
        job_plan = gitlab_ci.plan(pipeline, source)
        assert job_plan.runs and not job_plan.problems, source.title
        assert {n for p in job_plan.jobs for n in gitlab_ci.instance_names(p.job)} == expected, source.title
        if source.key == "tag":
            assert [need["job"] for need in listed["release"]["needs"]] == ["release-notes"]


@pytest.mark.parametrize("ref", ["v1.2.0", "latest", "1.2", "feature-x"])
def test_no_pipeline_for_other_tags_or_plain_branches(ref: str) -> None:
    pipeline = gitlab_ci.load(ROOT)
    if ref.startswith("feature"):
        source = gitlab_ci.Source(
            "branch",
            "Branch",
            {
                "CI_PIPELINE_SOURCE": "push",
                "CI_COMMIT_BRANCH": ref,
                "CI_DEFAULT_BRANCH": "main",
                "CI_OPEN_MERGE_REQUESTS": "group/playbook!1",
            },
        )
        assert not gitlab_ci.plan(pipeline, source).runs
    else:
        source = gitlab_ci.sources(tag=ref)[2]
        assert gitlab_ci.plan(pipeline, source).runs is (ref == "1.2")  # 1.2 is PEP 440 too


def test_release_notes_job_runs_green_and_fails_without_a_section(repo_copy: Path) -> None:
    changelog = repo_copy / "CHANGELOG.md"
    original = changelog.read_text()
    section = "### Changed\n\n- The pipeline runs faster.\n"
    changelog.write_text(original.rstrip("\n") + f"\n\n## [{TAG}] - 2025-06-30\n\n{section}")
    ci_local.commit_all(repo_copy, "docs: changelog for the test release")
    try:
        log = ci_local.run_job(repo_copy, "release-notes", {"CI_COMMIT_TAG": TAG})
        assert "PASS" in log and "release-notes" in log
        assert (repo_copy / "release-notes.md").read_text() == section
        failed = ci_local.run_job(repo_copy, "release-notes", {"CI_COMMIT_TAG": "9.9.9"}, check=False)
        assert "has no section for 9.9.9" in failed and "FAIL" in failed
    finally:
        changelog.write_text(original)
        (repo_copy / "release-notes.md").unlink(missing_ok=True)
        ci_local.commit_all(repo_copy, "chore: restore")


def test_docs_job_builds_the_site_under_gitlab_ci_local(repo_copy: Path) -> None:
    uv_cache = run(["uv", "cache", "dir"]).stdout.strip()
    npm_cache = run(["npm", "config", "get", "cache"]).stdout.strip()
    variables = {
        **gitlab_ci.sources()[0].variables,
        "UV_CACHE_DIR": uv_cache,  # reuse the machine's cache: no downloads
        "UV_PROJECT_ENVIRONMENT": str(ROOT / ".venv"),  # and its synced environment
        "UV_LINK_MODE": "hardlink",
        "npm_config_cache": npm_cache,
        "npm_config_prefer_offline": "true",
    }
    assert not (repo_copy / "node_modules").exists()
    try:
        log = ci_local.run_job(repo_copy, "docs", variables)
        assert "PASS" in log
        site = repo_copy / "public"
        assert (site / "index.html").is_file()
        assert "flowchart LR" in (site / "pipeline-graph" / "index.html").read_text()
        # The job installed only what the site ships, and the site serves its own Mermaid.
        installed = repo_copy / "node_modules"
        assert (installed / "mermaid").is_dir() and not (installed / "gitlab-ci-local").exists()
        assert (site / "assets" / "javascripts" / "mermaid.min.js").stat().st_size > 1_000_000
    finally:
        shutil.rmtree(repo_copy / "node_modules", ignore_errors=True)


# --------------------------------------------------------------------------- changelog_section.py
CHANGELOG = """# Changelog

## Unreleased

- Coming.

## [1.2.0] - 2025-06-30

### Added

- RAG service type.

```text
## not a heading: inside a code block
```

## v1.1.0 (2025-05-01)

- Fixes.

## 1.0.0

"""


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (
            "1.2.0",
            "### Added\n\n- RAG service type.\n\n```text\n## not a heading: inside a code block\n```\n",
        ),
        ("1.1.0", "- Fixes.\n"),
    ],
)
def test_changelog_section_of_a_release(version: str, expected: str) -> None:
    assert changelog_section.section(CHANGELOG, version) == expected


def test_changelog_section_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "CHANGELOG.md"
    path.write_text(CHANGELOG)
    assert changelog_section.main(["1.3.0", "--changelog", str(path)]) == 1
    assert "no section for 1.3.0 (sections: Unreleased, 1.2.0, 1.1.0, 1.0.0)" in capsys.readouterr().err
    assert changelog_section.main(["1.0.0", "--changelog", str(path)]) == 1
    assert "'## 1.0.0' is empty" in capsys.readouterr().err
    assert changelog_section.main(["v1.2.0", "--changelog", str(path)]) == 2
    assert "not a PEP 440 release version" in capsys.readouterr().err
    assert changelog_section.main(["1.2.0", "--changelog", str(tmp_path / "nope.md")]) == 2


def test_repository_changelog_has_an_unreleased_section() -> None:
    """The newest section collects what is not released yet: `## 0.3.0 (unreleased)`."""
    text = (ROOT / "CHANGELOG.md").read_text()
    newest = next(line for line in text.splitlines() if line.startswith("## "))
    assert "unreleased" in newest.lower(), newest
    assert changelog_section.sections(text), "no version sections"
