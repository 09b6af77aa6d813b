"""The capabilities seam: one list of service types, one table of which files exist.

- every row of service-types.yml has every capability, and copier.yml's capabilities block
  reads each one (a capability no answer carries would be dead);
- copier.yml's service_type choices and the template's CI matrix are the rows of
  service-types.yml (Backstage's form: tests/test_backstage.py);
- every pattern of copier.yml's `_exclude` table names a file or folder the template has
  (a renamed file would otherwise slip back into projects that must not have it);
- the docs page's generated part lists every capability, every type and every pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

import pathspec
import pytest
import yaml

from dev import service_types
from dev.docgen import capabilities, gitlab_ci
from dev.template_metrics import rendered_name

ROOT = Path(__file__).resolve().parents[1]
COPIER_DEFAULTS = {"~*", "*.py[co]", "__pycache__", ".git", ".DS_Store", ".svn"}


def _rendered_paths() -> list[str]:
    """Every path the template can render (files and their folders, conditions in a name taken
    as true), `{{package_name}}` as `pkg`."""
    paths = set()
    for path in (ROOT / "template").rglob("*"):
        if "__pycache__" in path.parts:
            continue
        relative = str(path.relative_to(ROOT / "template")).replace("{{package_name}}", "pkg")
        paths.add(rendered_name(relative))
    return sorted(paths)


def test_every_service_type_has_every_capability() -> None:
    fields = list(service_types.fields())
    assert "serves_http" in fields and "subpackage" in fields
    for kind in service_types.load().values():
        assert sorted(kind.row) == sorted(fields), f"{kind.name}: {sorted(set(fields) ^ set(kind.row))}"
        for name in service_types.capability_names():
            assert isinstance(kind[name], bool), f"{kind.name}: {name} must be true or false"
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    for name in service_types.capability_names():
        assert config[name]["when"] is False, name
        assert config[name]["default"] == f"{{{{ capabilities.{name} }}}}", name


def test_copier_choices_are_the_rows_of_service_types_yml() -> None:
    """copier.yml asks for a type of service-types.yml, in its order, each labelled with its
    summary; the default is one of them."""
    question = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))["service_type"]
    kinds = service_types.load().values()
    assert question["choices"] == {f"{kind.name}: {kind.summary}": kind.name for kind in kinds}
    assert list(question["choices"].values()) == service_types.names()
    assert question["default"] in service_types.names()


def test_the_reader_answers_by_capability() -> None:
    """dev/service_types.py: what the tools ask of service-types.yml."""
    http = service_types.having("serves_http")
    batch = service_types.having("serves_http", False)
    assert sorted(http + batch) == sorted(service_types.names()) and http and batch
    assert all(service_types.get(name).serves_http for name in http)
    assert service_types.of({}).name == service_types.default_type()
    assert service_types.of({"service_type": batch[0]}).has("serves_http") is False
    with pytest.raises(KeyError, match="unknown service type 'no-such-type'"):
        service_types.get("no-such-type")
    with pytest.raises(KeyError, match="'serves_grpc' is not a field"):
        service_types.get(http[0]).has("serves_grpc")


def test_ci_matrix_runs_the_slow_tests_of_every_service_type() -> None:
    """The template's own CI splits the slow tests by PLAYBOOK_SERVICE_TYPES, one job per row
    of service-types.yml (GitLab's matrix is static: this test keeps it in step)."""
    matrix = gitlab_ci.load(ROOT).jobs["test:slow"].config["parallel"]["matrix"]
    assert [kind for entry in matrix for kind in entry["PLAYBOOK_SERVICE_TYPES"]] == service_types.names()


def test_every_exclude_pattern_names_a_template_path() -> None:
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    paths = _rendered_paths()
    dead = []
    for entry in config["_exclude"]:
        for line in str(entry).splitlines():
            line = re.sub(r"\{%.*?%\}", "", line).strip()
            if not line or line in COPIER_DEFAULTS:
                continue
            pattern = line.lstrip("!").replace("{{ service_type }}", "*")
            spec = pathspec.PathSpec.from_lines("gitwildmatch", [pattern])
            if not any(spec.match_file(path) for path in paths):
                dead.append(line)
    assert not dead, f"_exclude patterns that match no template path: {dead}"


def test_docs_list_every_capability_type_and_pattern() -> None:
    page = capabilities.markdown(ROOT)
    for kind in capabilities.service_types(ROOT):
        assert f"`{kind}`" in page
    for cap in capabilities.capabilities(ROOT):
        if cap.name != "summary":
            assert f"`{cap.name}`" in page
    for condition, patterns in capabilities.exclusions(ROOT):
        assert all(f"`{pattern}`" in page for pattern in patterns), condition
    assert "| `not has_vector_store` |" in page
    assert "`use_ml_tracking and not (uses_llm or trains_model)`" in page


def test_exclude_blocks_leave_an_older_template_version_alone() -> None:
    """`copier update` renders the project's old template version with the new `_exclude`
    patterns; a capability that version lacked must exclude nothing there (else its files
    vanish from the old render and the update takes the team's files for new ones)."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    names = [cap.name for cap in capabilities.capabilities(ROOT) if cap.name != "summary"]
    unguarded = []
    for entry in config["_exclude"]:
        for tag in re.findall(r"\{%-?\s*(?:if|elif)\s(.*?)%\}", str(entry)):
            for name in names:
                for use in re.finditer(rf"\b{name}\b(\s*\|\s*default\()?", tag):
                    if use.group(1) is None:
                        unguarded.append(f"{name} in {{% {tag.strip()} %}}")
    assert not unguarded, f"capabilities in _exclude without `| default(...)`: {unguarded}"
