"""A project rendered from the template for the docs, and Markdown views of its files."""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dev.template_repo import copy

LANGUAGES = {
    ".yml": "yaml",
    ".yaml": "yaml",
    ".toml": "toml",
    ".json": "json",
    ".py": "python",
    ".sh": "bash",
    ".md": "markdown",
    ".ini": "ini",
    ".cfg": "ini",
    ".txt": "text",
}
NAMED = {"Makefile": "makefile", "Dockerfile": "dockerfile", "CODEOWNERS": "text"}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_RELATIVE_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


@dataclass
class GeneratedProject:
    path: Path
    answers: dict[str, Any]
    after_copy: str


def _is_git_worktree(path: Path) -> bool:
    result = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "true"


def generate(template: Path, dest: Path, data: dict[str, Any] | None = None) -> GeneratedProject:
    """`copier copy --defaults` of the template's working tree (uncommitted edits included)."""
    vcs_ref = "HEAD" if _is_git_worktree(template) else None
    worker = copy(template, dest, data, vcs_ref=vcs_ref)
    # The message as `copier copy` prints it (quiet=True only kept it from stderr).
    message = worker._render_string(worker.template.message_after_copy)
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    # The message names the destination: show it as a user would type it.
    message = message.replace(str(dest), dest.name)
    return GeneratedProject(dest, answers, message.strip("\n"))


def files(project: Path) -> list[str]:
    return sorted(
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(project).parts)
    )


def fence(text: str, language: str = "text", title: str | None = None) -> str:
    longest = max((len(m) for m in re.findall(r"^\s*(`{3,})", text, re.MULTILINE)), default=2)
    ticks = "`" * max(3, longest + 1)
    attributes = f' title="{title}"' if title else ""
    return f"{ticks}{language}{attributes}\n{text.rstrip(chr(10))}\n{ticks}"


def language_of(name: str) -> str:
    path = Path(name)
    return NAMED.get(path.name, LANGUAGES.get(path.suffix, "text"))


def file_block(project: Path, name: str) -> str:
    path = project / name
    if not path.is_file():
        raise FileNotFoundError(f"the generated project has no file {name!r}")
    return fence(path.read_text(encoding="utf-8"), language_of(name), title=name)


def tree(project: Path) -> str:
    """The file tree of the project, like `tree`, directories first."""
    lines = [project.name + "/"]

    def walk(directory: Path, prefix: str) -> None:
        entries = sorted(
            (p for p in directory.iterdir() if p.name not in SKIP_DIRS),
            key=lambda p: (not p.is_dir(), p.name),
        )
        for index, entry in enumerate(entries):
            last = index == len(entries) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{entry.name}{'/' if entry.is_dir() else ''}")
            if entry.is_dir():
                walk(entry, prefix + ("    " if last else "│   "))

    walk(project, "")
    return fence("\n".join(lines))


def embed_markdown(text: str, shift: int = 1, drop_title: bool = True) -> str:
    """Markdown of another file made to sit inside a docs page.

    The first `# title` goes (the page has its own), headings move down `shift` levels, and
    relative links (which point into a repository, not into this site) become plain text.
    """
    out: list[str] = []
    in_fence: str | None = None
    dropped = not drop_title
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if in_fence is None:
                in_fence = marker[0] * 3
            elif marker.startswith(in_fence):
                in_fence = None
            out.append(line)
            continue
        if in_fence is None:
            if not dropped and re.match(r"^# ", line):
                dropped = True
                continue
            if re.match(r"^#{1,6} ", line):
                line = "#" * shift + line
            line = _RELATIVE_LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", line)
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def test_modules(tests_dir: Path) -> str:
    """A table of the template's test modules and what each proves (their docstrings)."""
    rows = ["| module | what it proves |", "|---|---|"]
    for path in sorted(tests_dir.glob("test_*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        summary = " ".join(docstring.split("\n\n")[0].split()) or "*(no docstring)*"
        rows.append(f"| `tests/{path.name}` | {summary.replace('|', '&#124;')} |")
    return "\n".join(rows)
