"""README's promise: two commands set everything up, and CI runs exactly the second one."""

from __future__ import annotations

import re
import tomllib

import yaml

from .support.project import ROOT


def first_code_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```bash\n(.*?)```", text, re.S)
    assert match, "README.md must open with a bash code block"
    assert text.index("```bash") < text.index("\n## "), "the commands come before any section"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_two_setup_commands() -> None:
    generate, test = first_code_block()
    assert "copier copy --defaults" in generate
    assert "../my-service" in generate
    assert test == "make test"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = first_code_block()
    commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert commands == [test]


def test_readme_copier_matches_the_locked_dev_environment() -> None:
    generate, _ = first_code_block()
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


def test_readme_copy_records_an_absolute_template_source() -> None:
    """`.` would be recorded as `_src_path` and a later `copier update` in ../my-service would
    look for the template in the project itself; "$PWD" is the clone's absolute path."""
    generate, _ = first_code_block()
    assert generate.startswith("pip install uv && uvx --from copier==")
    assert ' copier copy --defaults --vcs-ref HEAD "$PWD" ../my-service' in generate


def test_make_example_runs_the_readme_copy() -> None:
    generate, _ = first_code_block()
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nexample:", 1)[1].splitlines()[1].strip()
    readme_copy = generate.split(" copier ", 1)[1].replace('"$PWD"', '"$(CURDIR)"')
    assert recipe == f"uv run copier {readme_copy}"
