"""How readable the template is, in figures: print them (and check limits with --check).

    uv run python -m dev.template_metrics [--check]

- paths (files and folders) with Jinja in their own names, and those whose real extension hides behind the Jinja
  (`deploy.sh{% endif %}`, no `.jinja` after it): editors and linters cannot tell what such a file is;
- twins: template files that can render the same path (`{% if x %}a{% endif %}` and
  `{% if not x %}a{% endif %}`), each a change made twice;
- the share of template lines that carry Jinja, and of those that carry a tag (`{% if %}`, an
  include: what is not a plain `{{ value }}` substitution), and the deepest `{% if %}`/`{% for %}` nesting
  of a template file.

`--check` exits 1 when a figure passes the limits the capabilities redesign set: at most 12
paths with Jinja in their names, no twins, no hidden extension, at most 5% Jinja lines, no
nesting deeper than 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template"
FRAGMENTS = ROOT / "includes"  # shared fragments the template files include: their lines count too
JINJA = re.compile(r"\{\{|\{%|\{#")
LOGIC = re.compile(r"\{%|\{#")  # a tag or comment: what is not a plain `{{ value }}`
TAG = re.compile(r"\{%-?\s*(\w+)")
CONDITION = re.compile(r"\{%-?\s*if\s.*?%\}(.*?)\{%-?\s*endif\s*-?%\}")
LIMITS = {
    "jinja_paths": 12,
    "hidden_extensions": 0,
    "twins": 0,
    "jinja_line_percent": 5.0,
    "max_nesting": 2,
}


def template_files() -> list[Path]:
    return sorted(p for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def rendered_name(relative: str) -> str:
    """The path a template file renders to, with its conditions taken as true."""
    name = CONDITION.sub(r"\1", relative)
    return name.removesuffix(".jinja")


def jinja_names(paths: list[str]) -> set[str]:
    """The files and folders whose own name carries Jinja: `src/{{package_name}}` counts once,
    not once per file under it."""
    named = set()
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            if JINJA.search(parts[depth - 1]):
                named.add("/".join(parts[:depth]))
    return named


def hides_extension(relative: str) -> bool:
    """`deploy.sh{% endif %}`: the file's name ends in Jinja, so it shows no extension at all."""
    return relative.endswith("%}")


def nesting(text: str) -> int:
    depth = deepest = 0
    for tag in TAG.findall(text):
        if tag in ("if", "for"):
            depth += 1
            deepest = max(deepest, depth)
        elif tag in ("endif", "endfor"):
            depth -= 1
    return deepest


def measure() -> dict[str, float | int]:
    paths = [str(p.relative_to(TEMPLATE)) for p in template_files()]
    by_output: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_output[rendered_name(path)].append(path)
    lines = jinja_lines = logic_lines = deepest = 0
    fragments = sorted(p for p in FRAGMENTS.rglob("*") if p.is_file()) if FRAGMENTS.is_dir() else []
    # a template file without `.jinja` is copied as it is; a fragment is always rendered
    for path in [*template_files(), *fragments]:
        if path.suffix != ".jinja" and path not in fragments:
            continue
        text = path.read_text(encoding="utf-8")
        lines += len(text.splitlines())
        jinja_lines += sum(1 for line in text.splitlines() if JINJA.search(line))
        logic_lines += sum(1 for line in text.splitlines() if LOGIC.search(line))
        deepest = max(deepest, nesting(text))
    for path in template_files():
        if path.suffix != ".jinja":
            lines += len(path.read_text(encoding="utf-8", errors="replace").splitlines())
    return {
        "template_files": len(paths),
        "fragment_files": len(fragments),
        "jinja_paths": len(jinja_names(paths)),
        "hidden_extensions": sum(1 for p in paths if hides_extension(p)),
        "twins": sum(len(group) for group in by_output.values() if len(group) > 1),
        "template_lines": lines,
        "jinja_line_percent": round(100 * jinja_lines / max(lines, 1), 1),
        "logic_line_percent": round(100 * logic_lines / max(lines, 1), 1),
        "max_nesting": deepest,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a figure passes its limit"
    )
    args = parser.parse_args(argv)
    figures = measure()
    over = []
    for name, value in figures.items():
        limit = LIMITS.get(name)
        mark = "" if limit is None else (f"  (limit {limit})" + ("  OVER" if value > limit else ""))
        if limit is not None and value > limit:
            over.append(name)
        print(f"{name:20} {value}{mark}")
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
