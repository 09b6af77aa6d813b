"""The capabilities reference: what each service type is made of, and every file each switches.

Read from service-types.yml (its rows and the comment that explains each field, through
dev/service_types.py), from copier.yml's `_exclude` table (which files exist) and from the
template files and shared fragments that ask about a capability.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from dev import service_types as types

_TAG = re.compile(r"^\{%-?\s*(if|elif|else|endif)\b\s*(.*?)\s*-?%\}$")
_DEFAULT = re.compile(r"\s*\|\s*default\([^)]*\)")


@dataclass
class Capability:
    name: str
    meaning: str
    types: dict[str, object]


def service_types(root: Path) -> dict[str, dict[str, object]]:
    """The rows of service-types.yml, keyed by service type."""
    return {name: dict(kind.row) for name, kind in types.load(root).items()}


def capabilities(root: Path) -> list[Capability]:
    """Every field of a service type's row, in the order service-types.yml explains them."""
    rows = types.load(root)
    return [
        Capability(name, meaning, {kind: row[name] for kind, row in rows.items()})
        for name, meaning in types.fields(root).items()
    ]


def _negate(condition: str) -> str:
    if condition.startswith("not ") and " " not in condition[4:]:
        return condition[4:]
    return f"not {condition}" if " " not in condition else f"not ({condition})"


def exclusions(root: Path) -> list[tuple[str, list[str]]]:
    """(condition, patterns) for each branch of copier.yml's `_exclude` table; Copier's own
    default patterns (no condition, no answer in them) are left out."""
    config = yaml.safe_load((root / "copier.yml").read_text(encoding="utf-8"))
    table: list[tuple[str, list[str]]] = []
    for entry in config["_exclude"]:
        if inline := re.fullmatch(r"\{%\s*if\s+(.*?)\s*%\}(.*?)\{%\s*endif\s*%\}", str(entry)):
            table.append((inline.group(1), [inline.group(2)]))
            continue
        condition, patterns = "always", []
        taken: list[str] = []
        for line in (line.strip() for line in str(entry).splitlines()):
            tag = _TAG.match(line)
            if tag is None:
                if line:
                    patterns.append(line)
                continue
            if patterns:
                table.append((condition, patterns))
            patterns = []
            keyword, expression = tag.groups()
            expression = _DEFAULT.sub("", expression)  # `| default(...)`: for old versions only
            if keyword == "if":
                taken, condition = [expression], expression
            elif keyword == "elif":
                earlier = [_negate(c) for c in taken if _negate(c) != expression]
                condition = " and ".join([*earlier, expression])
                taken.append(expression)
            elif keyword == "else":
                condition = " and ".join(map(_negate, taken))
            else:
                condition = "always"
        if patterns:
            table.append((condition, patterns))
    return [
        (condition, patterns)
        for condition, patterns in table
        if condition != "always" or any("{{" in p for p in patterns)
    ]


def readers(root: Path, name: str) -> list[str]:
    """The template files and shared fragments that ask about this capability."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    found = []
    for folder in ("template", "includes"):
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and word.search(path.read_text(encoding="utf-8", errors="replace")):
                found.append(str(path.relative_to(root)))
    return found


def _cell(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "—"
    return f"`{value}`" if value else "—"


def markdown(root: Path) -> str:
    """The capabilities page's generated part: the table of types, then which files exist."""
    caps = [cap for cap in capabilities(root) if cap.name != "summary"]
    kinds = list(service_types(root))
    lines = [
        "| Capability | What it means | " + " | ".join(f"`{k}`" for k in kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for cap in caps:
        cells = " | ".join(_cell(cap.types[k]) for k in kinds)
        lines.append(f"| `{cap.name}` | {cap.meaning} | {cells} |")
    lines += ["", "### Which files exist (`_exclude` in copier.yml)", ""]
    lines += ["| When | These files are left out |", "|---|---|"]
    for condition, patterns in exclusions(root):
        listed = ", ".join(f"`{p}`" for p in patterns)
        lines.append(f"| `{condition}` | {listed} |")
    lines += ["", "### The files that ask about each capability", ""]
    for cap in caps:
        if cap.name == "subpackage":
            continue
        files = readers(root, cap.name)
        listed = ", ".join(f"`{f}`" for f in files) if files else "none"
        lines.append(f"- `{cap.name}`: {listed}")
    return "\n".join(lines) + "\n"
