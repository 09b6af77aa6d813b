"""The capabilities seam: one list of service types, one table of which files exist.

- every row of service-types.yml has every capability, and copier.yml's capabilities block
  reads each one (a capability no answer carries would be dead);
- every pattern of copier.yml's `_exclude` table names a file or folder the template has
  (a renamed file would otherwise slip back into projects that must not have it);
- the docs page's generated part lists every capability, every type and every pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

import pathspec
import yaml

from dev.docgen import capabilities
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
    rows = capabilities.service_types(ROOT)
    fields = [cap.name for cap in capabilities.capabilities(ROOT)]
    assert "serves_http" in fields and "subpackage" in fields
    for kind, row in rows.items():
        assert sorted(row) == sorted(fields), f"{kind}: {sorted(set(fields) ^ set(row))}"
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    for name in fields:
        if name in ("summary", "subpackage"):
            continue
        assert config[name]["when"] is False, name
        assert config[name]["default"] == f"{{{{ capabilities.{name} }}}}", name


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
