"""README's promise: two commands set everything up, and CI runs exactly the second one."""

from __future__ import annotations

import re
import tomllib

import yaml

from .support.project import ROOT


def _first_code_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```bash\n(.*?)```", text, re.S)
    assert match, "README.md must open with a bash code block"
    assert text.index("```bash") < text.index("\n## "), "the commands come before any section"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_two_setup_commands() -> None:
    generate, test = _first_code_block()
    assert "copier copy --defaults" in generate
    assert "../my-service" in generate
    assert test == "make test"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = _first_code_block()
    commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert commands == [test]


def test_readme_copier_matches_the_locked_dev_environment() -> None:
    generate, _ = _first_code_block()
    pinned = re.search(r"copier==([\d.]+)", generate)
    assert pinned
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {package["name"]: package["version"] for package in lock["package"]}
    assert locked["copier"] == pinned.group(1)


def test_after_copy_message_gives_the_commands_the_tests_run() -> None:
    message = yaml.safe_load((ROOT / "copier.yml").read_text())["_message_after_copy"]
    assert "make bootstrap" in message
    assert "make check" in message
    assert message.index("make bootstrap") < message.index("make check")
