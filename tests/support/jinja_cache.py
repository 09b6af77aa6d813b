"""Jinja's compiled templates, kept for the test process.

Copier makes a new Jinja environment for every copy and compiles every file and every path
name of the template in it: about 1,900 compiles a render, almost half of its time, and the
same path names (and answers-file name) again in the next render. A file's compile is kept
per render only: Copier clones the template into a new directory for each copy, and the
file name is part of the key. A compiled template depends only on its source and
on what the environment parses and generates it with, so the tests keep each compiled code
object under that key, as Jinja's own bytecode cache does for the templates it loads. An
environment whose autoescape or finalize is a function compiles as before; so does a
template that does not compile, which raises its error every time.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jinja2

_ORIGINAL = jinja2.Environment.compile
_COMPILED: dict[Hashable, Any] = {}


def _settings(env: jinja2.Environment) -> Hashable | None:
    """What the compiled code depends on besides the source, or None if it can't be told."""
    if callable(env.autoescape) or env.finalize is not None:
        return None
    return (
        type(env), env.code_generator_class, env.policies.get("compiler.ascii_str"),
        env.block_start_string, env.block_end_string,
        env.variable_start_string, env.variable_end_string,
        env.comment_start_string, env.comment_end_string,
        env.line_statement_prefix, env.line_comment_prefix,
        env.trim_blocks, env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline,
        tuple(sorted((name, type(extension)) for name, extension in env.extensions.items())),
        env.optimized, env.autoescape, env.is_async,
        frozenset(env.filters), frozenset(env.tests),  # an unknown one fails at compile time
    )


def _compile(
    self: jinja2.Environment,
    source: Any,
    name: str | None = None,
    filename: str | None = None,
    raw: bool = False,
    defer_init: bool = False,
) -> Any:
    settings = _settings(self) if isinstance(source, str) else None
    if settings is None:
        return _ORIGINAL(self, source, name, filename, raw, defer_init)
    key = (settings, source, name, filename, raw, defer_init)
    if key not in _COMPILED:
        _COMPILED[key] = _ORIGINAL(self, source, name, filename, raw, defer_init)
    return _COMPILED[key]


def install() -> None:
    jinja2.Environment.compile = _compile  # type: ignore[assignment,method-assign]
