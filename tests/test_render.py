"""Every service type and main option renders: exact file set, no Jinja left, files parse."""

from __future__ import annotations

import json
import tomllib
from itertools import product
from pathlib import Path

import pytest
import yaml

from .conftest import Render
from .expected_files import expected_files
from .support.project import SERVICE_TYPES, files_of, jinja_leftovers, render

COMBINATIONS = [
    {"service_type": service_type, "use_database": database, "use_ml_tracking": tracking}
    for service_type, database, tracking in product(SERVICE_TYPES, [False, True], [False, True])
] + [
    {"service_type": "microservice", "deploy_mode": "gitops", "runtime_image": "slim"},
    {"service_type": "microservice", "python_version": "3.13", "coverage_threshold": 85},
]


class _GitLabLoader(yaml.SafeLoader):
    """YAML loader that accepts GitLab's `!reference [job, key]` tags."""


_GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def _id(answers: dict[str, object]) -> str:
    return "-".join(f"{key}={value}" for key, value in answers.items())


@pytest.mark.parametrize("answers", COMBINATIONS, ids=_id)
def test_renders_exact_files_that_parse(render_project: Render, answers: dict[str, object]) -> None:
    project = render_project(project_name="Fraud Scoring", **answers)
    stored = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert stored["package_name"] == "fraud_scoring"
    assert files_of(project) == expected_files(stored)

    for path in sorted(project.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        assert not jinja_leftovers(path), path.relative_to(project)
        if path.suffix in {".yml", ".yaml"}:
            list(yaml.load_all(text, Loader=_GitLabLoader))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)


def test_answers_file_holds_no_secrets_and_every_answer(render_project: Render) -> None:
    project = render_project()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "My Service"
    assert answers["project_slug"] == "my-service"
    assert answers["service_type"] == "microservice"
    assert not [key for key in answers if any(s in key for s in ("password", "token", "secret", "key"))]


def test_codeowners_lists_the_owners(render_project: Render) -> None:
    project = render_project(owners="@alice @acme/ml-team")
    codeowners = (project / ".gitlab" / "CODEOWNERS").read_text()
    assert "* @alice @acme/ml-team" in codeowners


def test_coverage_gate_follows_the_answer(render_project: Render) -> None:
    project = render_project(coverage_threshold=85)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["tool"]["coverage"]["report"]["fail_under"] == 85


def test_python_version_reaches_every_tool(render_project: Render) -> None:
    project = render_project(python_version="3.13")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.13"
    assert pyproject["tool"]["mypy"]["python_version"] == "3.13"
    assert pyproject["tool"]["ruff"]["target-version"] == "py313"
    assert (project / ".python-version").read_text().strip() == "3.13"
    assert "ARG PYTHON_VERSION=3.13" in (project / "Dockerfile").read_text()


def test_copy_needs_no_trust_and_leaves_nothing_on_error(
    copier_template: Path, tmp_path: Path
) -> None:
    """A copy that fails validation writes no half project."""
    dest = tmp_path / "broken"
    with pytest.raises(ValueError, match="project_slug"):
        render(copier_template, dest, {"project_slug": "Bad Slug"})
    assert not dest.exists()
