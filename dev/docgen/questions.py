"""The questions reference, read from copier.yml (and the template files that use each answer)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_TAG = re.compile(r"\{%.*?%\}", re.DOTALL)
_EXPR = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_REGEX = re.compile(r"regex_search\('((?:[^'\\]|\\.)*)'\)")
_GOT = re.compile(r"[;,]?\s*\(?got '?…'?\)?\s*$")


@dataclass
class Question:
    name: str
    type: str
    help: str
    default: Any
    choices: list[tuple[str, Any]] = field(default_factory=list)
    when: str | None = None
    validator: str | None = None
    secret: bool = False

    @property
    def rules(self) -> list[str]:
        """What the validator demands, from its own error messages."""
        if not self.validator:
            return []
        messages = []
        for chunk in _TAG.split(self.validator):
            text = " ".join(chunk.split())
            if not text:
                continue
            text = _EXPR.sub("…", text)
            messages.append(_GOT.sub("", text))
        return messages

    @property
    def patterns(self) -> list[str]:
        return _REGEX.findall(self.validator or "")


def read(copier_yml: Path) -> list[Question]:
    data = yaml.safe_load(copier_yml.read_text(encoding="utf-8"))
    questions = []
    for name, spec in data.items():
        if name.startswith("_"):
            continue
        if not isinstance(spec, dict):  # `name: default` shorthand
            spec = {"default": spec}
        choices = spec.get("choices") or []
        pairs = list(choices.items()) if isinstance(choices, dict) else [(str(c), c) for c in choices]
        when = spec.get("when")
        questions.append(
            Question(
                name=name,
                type=str(spec.get("type", "yaml")),
                help=str(spec.get("help", "")).strip(),
                default=spec.get("default"),
                choices=pairs,
                when=None if when is None else str(when),
                validator=spec.get("validator"),
                secret=bool(spec.get("secret", False)),
            )
        )
    return questions


def usage(template_dir: Path, names: list[str]) -> dict[str, list[str]]:
    """For each question, the template files whose name or Jinja uses the answer."""
    found: dict[str, list[str]] = {name: [] for name in names}
    patterns = {name: re.compile(rf"(?<![\w.]){re.escape(name)}\b") for name in names}
    for path in sorted(template_dir.rglob("*")):
        if not path.is_file():
            continue
        relative = str(path.relative_to(template_dir))
        try:
            text = path.read_text(encoding="utf-8") if path.suffix == ".jinja" else ""
        except UnicodeDecodeError:
            text = ""
        jinja = " ".join(_JINJA_BLOCK.findall(relative + "\n" + text))
        shown = relative.removesuffix(".jinja")
        for name, pattern in patterns.items():
            if pattern.search(jinja):
                found[name].append(shown)
    return found


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    text = text.removesuffix("\n...").strip() if not isinstance(value, str) else text
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0) + 1
    fence = "`" * ticks
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "&#124;")


def render(copier_yml: Path, template_dir: Path, answers: dict[str, Any]) -> str:
    """Markdown: a summary table, then one section per question."""
    questions = read(copier_yml)
    used = usage(template_dir, [q.name for q in questions])
    intro = (
        "Generated at build time from `copier.yml`: the questions, in the order Copier asks them. "
        "*With the defaults* is what `copier copy --defaults` answers for a project named "
        f"`{answers.get('project_name', '')}`."
    )
    rows = ["| question | type | with the defaults | what it is |", "|---|---|---|---|"]
    for q in questions:
        shown = _code(answers[q.name]) if q.name in answers else "*(not asked)*"
        rows.append(f"| [`{q.name}`](#{q.name}) | {q.type} | {_cell(shown)} | {_cell(q.help)} |")
    out = [intro, "\n".join(rows)]

    for q in questions:
        section = [f"## `{q.name}` {{ #{q.name} }}", q.help or "*(no help text)*"]
        facts = [
            f"- **Type:** `{q.type}`" + (" (secret: never stored in the answers file)" if q.secret else "")
        ]
        if q.when == "False" and len(_code(q.default)) > 160:  # internal machinery of copier.yml
            facts.append("- **Default:** computed in `copier.yml` (see the comment above it there)")
        elif isinstance(q.default, str) and ("{{" in q.default or "{%" in q.default):
            facts.append(f"- **Default:** computed: {_code(q.default)}")
        else:
            facts.append(f"- **Default:** {_code(q.default)}")
        if q.name in answers:
            facts.append(f"- **With the defaults:** {_code(answers[q.name])}")
        if q.choices:
            facts.append("- **Choices:**")
            facts.extend(f"    - {_code(value)}: {label}" for label, value in q.choices)
        if q.when is not None:
            facts.append(f"- **Asked only when:** {_code(q.when)}")
        if q.patterns:
            facts.append("- **Must match:** " + ", ".join(_code(p) for p in q.patterns))
        if q.rules:
            facts.append("- **Validation:**")
            facts.extend(f"    - {rule}" for rule in q.rules)
        files = used[q.name]
        if files:
            facts.append("- **Used in:** " + ", ".join(_code(f) for f in files))
        else:
            facts.append("- **Used in:** other questions' defaults and validators only")
        section.append("\n".join(facts))
        out.append("\n\n".join(section))
    return "\n\n".join(out) + "\n"
