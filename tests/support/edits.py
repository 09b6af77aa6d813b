"""Scripted edits a service team makes to its repository, for `copier update` tests.

An edit is planned from two renders with the same answers: the version the team is on
(`old`) and the version it updates to (`new`). A non-overlapping edit is placed on lines
both versions share with more unchanged lines around them than Copier's diff context, so
the test does not depend on what a future template change touches; a conflicting edit is
placed on lines the template changes. The same edit applies to either render, so
"updated project == fresh render of the new version + the same edits" can be checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

CONTEXT = 4  # lines kept clear of template changes: more than Copier's 3 lines of diff context

LOCAL_CI = """\
# Our own pipeline additions: template updates never touch this file.
variables:
  MODEL_REGISTRY_URL: https://mlflow.example.com

model-card-check:
  stage: merge-request
  image: python:3.11-slim
  script:
    - python -c "import pathlib; assert 'Quick start' in pathlib.Path('README.md').read_text()"
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
"""

TEAM_FUNCTION = '''\
def team_risk_band(score: float) -> str:
    """The team's own code inside a template module: kept by every template update."""
    return "high" if score >= 0.8 else "low"


'''

TEAM_MODULE = '''\
"""Feature engineering owned by the team (a file the template does not have)."""


def normalise(values: list[float]) -> list[float]:
    top = max(values, default=0.0)
    return [value / top for value in values] if top else list(values)
'''

TEAM_TEST = '''\
import pytest

from {package}.{module} import team_risk_band
from {package}.team_features import normalise

pytestmark = pytest.mark.unit


def test_team_code_survives_template_updates() -> None:
    assert team_risk_band(0.9) == "high"
    assert team_risk_band(0.1) == "low"
    assert normalise([1.0, 4.0]) == [0.25, 1.0]
    assert normalise([]) == []
'''

INCIDENT_LINE = "- **Team runbook**: https://wiki.example.com/runbooks/fraud-scoring\n"
TOP_LEVEL = re.compile(r"^(def |class |async def |@)")
VARIABLE = re.compile(r"^(?P<indent>\s+)(?P<name>[A-Z][A-Z0-9_]*): \S")
IMAGE = re.compile(r"^(?P<indent>\s*)image: (?P<image>\S+)")


@dataclass
class Edit:
    """One change of the team: `apply` makes it, `present` says whether it is still there."""

    name: str
    apply: Callable[[Path], None]
    present: Callable[[Path], bool]
    path: str  # where the change lives after the update


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def existing(project: Path, *candidates: str) -> Path:
    for candidate in candidates:
        if (project / candidate).exists():
            return project / candidate
    raise AssertionError(f"none of {candidates} in {project}")


def stable_indexes(old: list[str], new: list[str], context: int = CONTEXT) -> Iterator[int]:
    """Indexes of `old` lines that `new` keeps with `context` unchanged lines on each side
    (the start and end of the file count as unchanged)."""
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        if not size:
            continue
        low = 0 if a == 0 and b == 0 else context
        high = size if a + size == len(old) and b + size == len(new) else size - context
        yield from range(a + low, a + max(low, high))


def unique(lines: list[str], line: str) -> int:
    found = [index for index, candidate in enumerate(lines) if candidate == line]
    assert len(found) == 1, f"line {line!r} is not unique"
    return found[0]


def insert_before(name: str, paths: tuple[str, ...], anchor: str, text: str) -> Edit:
    def apply(project: Path) -> None:
        target = existing(project, *paths)
        lines = read_lines(target)
        index = unique(lines, anchor)
        target.write_text("".join(lines[:index]) + text + "".join(lines[index:]), encoding="utf-8")

    def present(project: Path) -> bool:
        target = project / paths[-1]
        if not target.exists():
            return False
        content = target.read_text(encoding="utf-8")
        # Merged cleanly: before its anchor. In a conflict: the team's side of the block.
        return text + anchor in content or text + "=======\n" in content

    return Edit(name, apply, present, paths[-1])


def replace_line(name: str, path: str, old_line: str, new_line: str) -> Edit:
    def apply(project: Path) -> None:
        target = project / path
        lines = read_lines(target)
        lines[unique(lines, old_line)] = new_line
        target.write_text("".join(lines), encoding="utf-8")

    def present(project: Path) -> bool:
        return new_line in read_lines(project / path)

    return Edit(name, apply, present, path)


def write_file(name: str, path: str, content: str) -> Edit:
    def apply(project: Path) -> None:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(content, encoding="utf-8")

    def present(project: Path) -> bool:
        target = project / path
        return target.exists() and target.read_text(encoding="utf-8") == content

    return Edit(name, apply, present, path)


def delete_file(name: str, path: str) -> Edit:
    def apply(project: Path) -> None:
        (project / path).unlink()

    return Edit(name, apply, lambda project: not (project / path).exists(), path)


# ---------------------------------------------------------------- planning
def service_code_edits(old: Path, new: Path, package: str) -> list[Edit]:
    """A function added to a template module, a module and a test of the team's own."""
    source = Path("src", package)
    modules = sorted(p.name for p in (old / source).glob("*.py") if (new / source / p.name).exists())
    modules.sort(key=lambda name: name != "app.py")
    for module in modules:
        old_lines, new_lines = read_lines(old / source / module), read_lines(new / source / module)
        for index in stable_indexes(old_lines, new_lines):
            line = old_lines[index]
            if (
                index >= 2
                and TOP_LEVEL.match(line)
                and old_lines[index - 1] == old_lines[index - 2] == "\n"
                and old_lines.count(line) == 1
                and new_lines.count(line) == 1
            ):
                path = str(source / module)
                return [
                    insert_before("edit service code", (path,), line, TEAM_FUNCTION),
                    write_file("add a service module", str(source / "team_features.py"), TEAM_MODULE),
                    write_file(
                        "add a unit test",
                        "tests/unit/test_team_edits.py",
                        TEAM_TEST.format(package=package, module=module.removesuffix(".py")),
                    ),
                ]
    raise AssertionError(f"no module of {source} has a top-level definition both versions keep")


def pipeline_setting_edit(old: Path, new: Path) -> Edit | None:
    """A pipeline variable (or, failing that, an image) changed in a template-owned file,
    on a line the template does not change between the two versions."""
    files = [".gitlab-ci.yml"] + sorted(
        str(path.relative_to(old)) for path in (old / ".gitlab" / "ci").glob("*.yml") if path.name != "local.yml"
    )
    for pattern, replacement in (
        (VARIABLE, lambda m: f'{m["indent"]}{m["name"]}: "team-value"\n'),
        (IMAGE, lambda m: f'{m["indent"]}image: registry.example.com/mirror/{m["image"].split("/")[-1]}\n'),
    ):
        for name in files:
            if not (new / name).exists():
                continue
            old_lines, new_lines = read_lines(old / name), read_lines(new / name)
            for index in stable_indexes(old_lines, new_lines):
                match = pattern.match(old_lines[index])
                line = old_lines[index]
                if match and old_lines.count(line) == 1 and new_lines.count(line) == 1:
                    return replace_line("change a pipeline setting", name, line, replacement(match))
    return None


def incident_template_edit(old: Path, new: Path) -> Edit | None:
    """A line added to the incident issue template (renamed in 0.2.0: a migration carries it)."""
    names = (".gitlab/issue_templates/Incident.md", ".gitlab/issue_templates/incident-report.md")
    old_path = next((name for name in names if (old / name).exists()), None)
    if old_path is None or not (new / names[1]).exists():
        return None
    old_lines, new_lines = read_lines(old / old_path), read_lines(new / names[1])
    for index in stable_indexes(old_lines, new_lines):
        line = old_lines[index]
        if line.startswith("- **") and old_lines.count(line) == 1 and new_lines.count(line) == 1:
            return insert_before("edit the incident template", (old_path, names[1]), line, INCIDENT_LINE)
    return None


def plan_edits(old: Path, new: Path, package: str) -> list[Edit]:
    """Every non-overlapping team edit that applies between these two versions."""
    edits = service_code_edits(old, new, package)
    edits.append(write_file("add a local CI job and variable", ".gitlab/ci/local.yml", LOCAL_CI))
    if (old / "catalog-info.yaml").exists():
        edits.append(delete_file("delete an optional file", "catalog-info.yaml"))
    for optional in (pipeline_setting_edit(old, new), incident_template_edit(old, new)):
        if optional is not None:
            edits.append(optional)
    return edits


CONFLICT_CANDIDATES = (".gitignore", "README.md", "renovate.json", ".dockerignore")


def conflicting_edit(old: Path, new: Path) -> Edit:
    """A change of a template-owned file on lines the template also changes."""
    for name in CONFLICT_CANDIDATES:
        if not ((old / name).exists() and (new / name).exists()):
            continue
        old_lines, new_lines = read_lines(old / name), read_lines(new / name)
        for tag, i1, _i2, _, _ in SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            if tag == "insert":
                anchor = old_lines[i1] if i1 < len(old_lines) else None
                if anchor is None or old_lines.count(anchor) != 1:
                    continue
                return insert_before("edit a template-owned file where the template changes it",
                                     (name,), anchor, "team line where the template adds its own\n")
            line = old_lines[i1]
            if old_lines.count(line) == 1:
                return replace_line("edit a template-owned file where the template changes it",
                                    name, line, line.rstrip("\n") + " (team)\n")
    raise AssertionError(f"the template changes none of {CONFLICT_CANDIDATES} between these versions")
