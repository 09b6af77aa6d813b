"""Fixtures of the template's own tests.

The template under test is the working tree (pytest-copier's `copier_template`: the files
below copied into a fresh git repository), so uncommitted edits are tested too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dev.template_repo import present_paths

from .support.postgres import Postgres
from .support.project import ROOT, bootstrap, render


@pytest.fixture(scope="session")
def copier_template_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    return present_paths()


Render = Callable[..., Path]


@pytest.fixture
def render_project(copier_template: Path, tmp_path: Path) -> Render:
    """Render a fresh project with the given answers (defaults for the rest)."""
    counter = iter(range(1000))

    def _render(**data: Any) -> Path:
        return render(copier_template, tmp_path / f"project-{next(counter)}", data)

    return _render


@pytest.fixture(scope="session")
def bootstrapped(
    copier_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """A rendered and bootstrapped project per answer set, shared by the whole session.

    Tests that use it must not change the project's files.
    """
    cache: dict[tuple[tuple[str, Any], ...], Path] = {}

    def _get(**data: Any) -> Path:
        key = tuple(sorted(data.items()))
        if key not in cache:
            dest = tmp_path_factory.mktemp("generated") / "project"
            cache[key] = bootstrap(render(copier_template, dest, data))
        return cache[key]

    return _get


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres.start()
    yield server
    server.stop()
