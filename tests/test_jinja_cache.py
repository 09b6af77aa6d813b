"""tests/support/jinja_cache.py: a template is compiled once per source and syntax, renders
as it would without the cache, and one that doesn't compile raises every time."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment

from dev.template_repo import render as copier_render

from .support import jinja_cache
from .support.project import files_of


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources Jinja really compiles from now on, on an empty cache."""
    monkeypatch.setattr(jinja_cache, "_COMPILED", {})
    compiled: list[str] = []
    original = jinja_cache._ORIGINAL

    def counted(self: jinja2.Environment, source: object, *args: object) -> object:
        compiled.append(str(source))
        return original(self, source, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja_cache, "_ORIGINAL", counted)
    return compiled


def test_a_source_is_compiled_once_per_syntax(compiles: list[str]) -> None:
    source = "{% if x %}\n  {{ x | upper }}\n{% endif %}\n"
    plain = [SandboxedEnvironment(keep_trailing_newline=True) for _ in range(2)]
    trimmed = SandboxedEnvironment(keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    assert {env.from_string(source).render(x="a") for env in plain} == {"\n  A\n\n"}
    assert trimmed.from_string(source).render(x="a") == "  A\n"
    assert compiles == [source, source], "one compile per syntax, none for the second plain env"
    other = SandboxedEnvironment(keep_trailing_newline=True, variable_start_string="[[", variable_end_string="]]")
    assert other.from_string("[[ x ]] {{ x }}").render(x="a") == "a {{ x }}"


def test_a_filter_the_environment_lacks_still_fails(compiles: list[str]) -> None:
    with_filter = SandboxedEnvironment()
    with_filter.filters["shout"] = str.upper
    assert with_filter.from_string("{{ 'a' | shout }}").render() == "A"
    for _ in range(2):
        with pytest.raises(jinja2.TemplateAssertionError, match="shout"):
            SandboxedEnvironment().from_string("{{ 'a' | shout }}")


def test_a_source_that_does_not_compile_raises_every_time(compiles: list[str]) -> None:
    for _ in range(2):
        with pytest.raises(jinja2.TemplateSyntaxError):
            SandboxedEnvironment().from_string("{% if x %}")
    assert len(compiles) == 2


def test_the_template_renders_the_same_with_and_without_the_cache(
    copier_template: Path, tmp_path: Path, compiles: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"service_type": "rag", "use_database": True}
    cached = copier_render(copier_template, tmp_path / "cached", answers)
    assert compiles, "the render went through the cache"
    monkeypatch.setattr(jinja2.Environment, "compile", jinja_cache._ORIGINAL)
    plain = copier_render(copier_template, tmp_path / "plain", answers)
    assert files_of(cached) == files_of(plain)
    for name in sorted(files_of(plain)):
        assert (cached / name).read_bytes() == (plain / name).read_bytes(), name
