"""The catalog files validate with Backstage's own validators; the software template drives Copier as fetch:copier does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
import pytest
import yaml

from dev import service_types

from .conftest import Render
from .support.procs import run
from .support.project import ROOT, SERVICE_TYPES, capabilities

VALIDATOR = ROOT / "dev" / "validate-backstage.mjs"
TEMPLATE = ROOT / "backstage" / "template.yaml"
REPOSITORY_ENTRY = ROOT / "catalog-info.yaml"
COPIER_TYPES = {"str": "string", "bool": "boolean", "int": "integer", "float": "number"}


def _validate(*files: Path) -> tuple[int, str]:
    if not (ROOT / "node_modules" / "@backstage" / "plugin-scaffolder-common").is_dir():
        raise AssertionError("Backstage's validators are not installed: run `make deps` (npm ci)")
    result = run(["node", str(VALIDATOR), *map(str, files)], cwd=ROOT, check=False)
    return result.returncode, result.stdout


def _template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text())


def _questions() -> dict[str, dict[str, Any]]:
    copier = yaml.safe_load((ROOT / "copier.yml").read_text())
    # Computed values (`when: false`) are never asked, so the form has no field for them.
    return {
        name: spec
        for name, spec in copier.items()
        if not name.startswith("_") and spec.get("when") is not False
    }


def _form_properties(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    properties: dict[str, dict[str, Any]] = {}
    for step in template["spec"]["parameters"]:
        properties.update(step.get("properties", {}))
        for dependency in step.get("dependencies", {}).values():
            for branch in dependency.get("oneOf", []):
                properties.update({k: v for k, v in branch.get("properties", {}).items() if "const" not in v})
    return properties


def _fetch_step(template: dict[str, Any]) -> dict[str, Any]:
    return next(step for step in template["spec"]["steps"] if step["action"] == "fetch:copier")


@pytest.mark.npm
def test_template_and_repository_entry_validate() -> None:
    code, output = _validate(TEMPLATE, REPOSITORY_ENTRY)
    assert code == 0, output
    assert "template.yaml#1: Template:default/playbook-ai-service" in output
    assert "Location:default/playbook-template-software-template" in output


@pytest.mark.npm
def test_generated_catalog_info_validates(render_project: Render) -> None:
    projects = [render_project(service_type=kind, use_database=True) for kind in SERVICE_TYPES]
    code, output = _validate(*(project / "catalog-info.yaml" for project in projects))
    assert code == 0, output
    assert output.count("ok   ") >= len(projects)
    for kind, project in zip(SERVICE_TYPES, projects, strict=True):
        component = next(yaml.safe_load_all((project / "catalog-info.yaml").read_text()))
        # A batch (serves_http false) runs as a CronJob: no URL to link, no API to provide;
        # Backstage's component type for it is `data-pipeline`.
        batch = not capabilities({"service_type": kind}).serves_http
        assert component["spec"]["type"] == ("data-pipeline" if batch else "service"), kind
        assert ("providesApis" in component["spec"]) is not batch, kind
        assert ("links" in component["metadata"]) is not batch, kind


INVALID = {
    "no-owner.yaml": (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\n"
        "spec:\n  type: service\n  lifecycle: production\n",
        "must have required property 'owner'",
    ),
    "bad-name.yaml": (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: My Service\n"
        "spec:\n  type: service\n  lifecycle: production\n  owner: team\n",
        '"metadata.name" is not valid',
    ),
    "unknown-kind.yaml": (
        "apiVersion: backstage.io/v1alpha1\nkind: Widget\nmetadata:\n  name: w\nspec: {}\n",
        "no validator for apiVersion 'backstage.io/v1alpha1' kind 'Widget'",
    ),
    "template-steps.yaml": (
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: t\n"
        "spec:\n  owner: team\n  type: service\n  steps: {}\n",
        "/spec/steps must be array",
    ),
    "template-refs.yaml": (
        "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: t\n"
        "spec:\n  owner: team\n  type: service\n  parameters:\n    - properties:\n        name: {type: string}\n"
        "  steps:\n    - id: a\n      action: debug:log\n      input:\n"
        "        message: ${{ parameters.nmae }} ${{ steps['b'].output.x }}\n"
        "    - id: b\n      action: debug:log\n",
        "step a uses parameters.nmae, which no parameter declares; step a uses steps.b, which is not an earlier step",
    ),
    "missing-definition.yaml": (
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: api\nspec:\n  type: openapi\n"
        "  lifecycle: production\n  owner: team\n  definition:\n    $text: ./openapi.json\n",
        "placeholder $text: ./openapi.json does not exist next to the catalog file",
    ),
}


@pytest.mark.npm
def test_invalid_entities_fail_with_the_reason(tmp_path: Path) -> None:
    paths = []
    for name, (text, _) in INVALID.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    code, output = _validate(REPOSITORY_ENTRY, *paths)
    assert code == 1, output
    lines = output.splitlines()
    assert lines[0].startswith("ok   "), output  # the valid file is still reported
    for path, (_, reason) in zip(paths, INVALID.values(), strict=False):
        line = next((line for line in lines if line.startswith(f"FAIL {path}#1")), "")
        assert reason in line, f"{path.name}: expected {reason!r} in:\n{output}"


def test_parameters_mirror_the_copier_questions() -> None:
    template = _template()
    questions = _questions()
    form = _form_properties(template)
    values = _fetch_step(template)["input"]["values"]
    assert set(values) == set(
        questions
    ), "fetch:copier must answer every question (it runs without --defaults)"
    for name, question in questions.items():
        if name not in form:
            assert "parseRepoUrl" in str(
                values[name]
            ), f"{name}: neither asked nor derived from the repository"
            continue
        field = form[name]
        assert f"parameters.{name}" in str(values[name]), name
        assert field["type"] == COPIER_TYPES[question.get("type", "str")], name
        assert field["description"] == question["help"], f"{name}: description must be copier's help"
        default = question.get("default")
        if default is not None and not (isinstance(default, str) and "{{" in default):
            assert field.get("default") == default, f"{name}: default differs from copier.yml"
        choices = question.get("choices")
        if choices:
            expected = list(choices.values()) if isinstance(choices, dict) else list(choices)
            assert field["enum"] == expected, f"{name}: choices differ from copier.yml"
            if isinstance(choices, dict):
                assert field["enumNames"] == list(choices), name
        patterns = re.findall(r"regex_search\('((?:[^'\\]|\\.)*)'\)", question.get("validator", ""))
        if patterns and field["type"] == "string":
            # copier.yml ends its patterns with Python's `\Z`; JavaScript's `$` means the same.
            expected_pattern = patterns[0].replace("\\Z", "$")
            assert field.get("pattern") == expected_pattern, f"{name}: pattern differs from copier's validator"


def test_service_types_are_the_rows_of_service_types_yml() -> None:
    """The form offers every service type of service-types.yml, in its order, each labelled
    with its summary as copier.yml's choice is."""
    field = _form_properties(_template())["service_type"]
    kinds = service_types.load().values()
    assert field["enum"] == [kind.name for kind in kinds]
    assert field["enumNames"] == [f"{kind.name}: {kind.summary}" for kind in kinds]
    assert field["default"] == service_types.default_type()


def test_template_url_is_the_repository_in_the_catalog_entry() -> None:
    url = _fetch_step(_template())["input"]["url"]
    component = next(yaml.safe_load_all(REPOSITORY_ENTRY.read_text()))
    source = component["metadata"]["annotations"]["backstage.io/source-location"]
    assert url == source.removeprefix("url:").rstrip("/") + ".git"
    slug = component["metadata"]["annotations"]["gitlab.com/project-slug"]
    assert url.endswith(f"/{slug}.git")


# --------------------------------------------------------------------------- fetch:copier, simulated
def _parse_repo_url(value: str) -> dict[str, str]:
    """Backstage's parseRepoUrl for RepoUrlPicker values: 'host?owner=group&repo=name'."""
    host, _, query = value.partition("?")
    fields = {key: values[0] for key, values in parse_qs(query).items()}
    return {"host": host, **fields}


def _js_string(value: Any) -> str:
    """What the action's `key + "=" + value` makes of a templated value."""
    if isinstance(value, jinja2.Undefined) or value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _render_values(values: dict[str, str], parameters: dict[str, Any]) -> dict[str, str]:
    """Evaluate `${{ expression }}` values (nunjucks, Jinja-compatible here) as the scaffolder does."""
    env = jinja2.Environment(undefined=jinja2.Undefined)
    env.filters["parseRepoUrl"] = _parse_repo_url
    rendered = {}
    for key, text in values.items():
        match = re.fullmatch(r"\$\{\{(.*)\}\}", str(text).strip(), re.DOTALL)
        assert match, f"{key}: expected a single ${{{{ }}}} expression"
        rendered[key] = _js_string(env.compile_expression(match.group(1))(parameters=parameters))
    return rendered


def _form_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: field["default"] for name, field in _form_properties(template).items() if "default" in field
    }


@pytest.mark.npm
@pytest.mark.parametrize("deploy_mode", ["direct", "gitops"])
def test_fetch_copier_generates_the_repository_without_prompts(
    copier_template: Path, tmp_path: Path, deploy_mode: str
) -> None:
    template = _template()
    parameters: dict[str, Any] = {
        **_form_defaults(template),
        "project_name": "Fraud Scoring",
        "description": "Scores card transactions for fraud",
        "repoUrl": "gitlab.com?owner=acme%2Fai-services&repo=fraud-scoring",
        "owners": "@acme/ml-team",
        "use_database": True,
        "deploy_mode": deploy_mode,
        "staging_url": "https://fraud-scoring.staging.acme.example",
        "production_url": "https://fraud-scoring.acme.example",
    }
    if deploy_mode == "gitops":
        parameters["gitops_repo"] = "acme/platform-manifests"
    values = _render_values(_fetch_step(template)["input"]["values"], parameters)
    dest = tmp_path / "result"
    data = [arg for key, value in values.items() for arg in ("--data", f"{key}={value}")]
    # Exactly the action's command line; stdin is not a terminal, so a missing answer fails.
    run(["copier", "copy", *data, str(copier_template), str(dest), "--trust"], cwd=tmp_path, input="")
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "fraud-scoring"
    assert answers["package_name"] == "fraud_scoring"
    assert (answers["gitlab_host"], answers["gitlab_group"]) == ("gitlab.com", "acme/ai-services")
    assert answers["use_database"] is True
    assert answers.get("gitops_repo") == ("acme/platform-manifests" if deploy_mode == "gitops" else None)
    code, output = _validate(dest / "catalog-info.yaml")
    assert code == 0, output
    assert "Component:default/fraud-scoring" in output
