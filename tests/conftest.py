"""Fixtures of the template's own tests.

The template under test is the working tree (pytest-copier's `copier_template`: the files
below copied into a fresh git repository), so uncommitted edits are tested too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dev.template_repo import present_paths

from .support import copier_git, jinja_cache
from .support.postgres import Postgres
from .support.project import ROOT, bootstrap, render

# What a test needs beyond a render, told by the fixtures it uses. `make test-fast` runs the
# tests that need none of it: `-m "not slow and not npm"`.
SLOW_FIXTURES = {
    "bootstrapped",  # a generated project after `make bootstrap`
    "postgres",  # a real PostgreSQL server
    "releases",  # renders of earlier releases and `copier update` between them
    "built",  # a container image built with buildah
    "cluster", "batch_cluster",  # scripts-ci scenarios against the fake kubectl
    "quiet", "receiver", "monitoring", "pushed_metrics",  # local servers, Prometheus
}
NPM_FIXTURES = {
    "pipelines", "repo_copy",  # gitlab-ci-local
    "site",  # the docs site: mermaid from node_modules, chromium
}


# Module-scoped fixtures that take seconds to set up (servers that must see traffic before
# the first check, renders with kustomize builds, the docs site). Under `make test` the tests
# of a module that use one run on one worker, which sets it up once instead of twice.
SHARED_IN_MODULE = {
    "test_scripts_ci.py": ("quiet", "monitoring", "pushed_metrics"),
    "test_manifests.py": ("projects",),
    "test_docs.py": ("site",),
}

copier_git.install()  # Copier asks git about core.fileMode once per copy, not once per file
jinja_cache.install()  # Jinja compiles each template source once per test process


# tryfirst: xdist's own hook turns the xdist_group marks into node-id suffixes after this one.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = [item for item in items if not _wanted(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if used & NPM_FIXTURES:
            item.add_marker(pytest.mark.npm)
        for fixture in SHARED_IN_MODULE.get(item.path.name, ()):
            if fixture in used:
                item.add_marker(pytest.mark.xdist_group(f"{item.path.stem}-{fixture}"))


def _wanted(item: pytest.Item) -> bool:
    """False for a test marked `only_params(fixture=[values])` whose parameter is not listed.
    (A test's own parametrization of a module-scoped fixture would set that fixture up again.)"""
    mark = item.get_closest_marker("only_params")
    callspec = getattr(item, "callspec", None)
    if mark is None or callspec is None:
        return True
    return all(callspec.params.get(name) in values for name, values in mark.kwargs.items())


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under `--dist loadgroup` xdist sends a group's tests to one worker by suffixing their
    node ids with `@group`; pytest 9.2 silently ignores that (pytest-xdist issue #1386) and the
    tests that share a built image or a bootstrapped project race on two workers."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid.rpartition("]")[2]]
    if lost:
        message = (f"pytest-xdist's --dist loadgroup lost the xdist_group of {len(lost)} tests ({lost[0]}): "
                   "this pytest drops xdist's node-id suffix; use the pytest pinned in uv.lock (`uv sync`)")
        print(message, file=sys.__stderr__, flush=True)  # a worker's own error reaches the run as a crash only
        raise pytest.UsageError(message)


def on_one_worker(values: list[Any], prefix: str = "") -> list[Any]:
    """Parameters whose tests share an expensive fixture (a bootstrapped project, a built
    image): under `pytest -n --dist loadgroup` (`make test`) the tests of one value run on one
    worker, which sets the fixture up once."""
    return [pytest.param(value, marks=pytest.mark.xdist_group(f"{prefix}{value}")) for value in values]


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


@pytest.fixture(scope="session", autouse=True)
def shared_mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One mypy cache for the generated projects a worker checks one after another, so the
    libraries they share (FastAPI, SQLAlchemy, MLflow...) are analysed once per worker, not
    once per project. mypy checks every entry against its source's hash, so a project's own
    modules, which differ between projects, are always checked afresh. Per worker: two mypy
    runs writing one cache at the same time could mix a module's entries."""
    os.environ["MYPY_CACHE_DIR"] = str(tmp_path_factory.mktemp("mypy-cache"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres.start()
    yield server
    server.stop()
