"""A generated microservice passes its own gates for real: bootstrap, check, every test marker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import on_one_worker
from .support.postgres import Postgres
from .support.procs import run
from .support.project import GIT_ENV, project_env

pytestmark = pytest.mark.slow

Bootstrapped = Callable[..., Path]


@pytest.fixture(scope="module", params=on_one_worker([False, True], "microservice-db-"), ids=["no-db", "db"])
def project(request: pytest.FixtureRequest, bootstrapped: Bootstrapped) -> Path:
    return bootstrapped(service_type="microservice", use_database=request.param)


@pytest.mark.xdist_group("microservice-db-False")
def test_make_check_is_green(bootstrapped: Bootstrapped) -> None:
    """Without a database. With one, the hostile microservice of test_hostile_answers.py runs
    `make check`: the same answers, hostile values only."""
    project = bootstrapped(service_type="microservice", use_database=False)
    result = run(["make", "check"], cwd=project, env=GIT_ENV)
    assert "Required test coverage of 70" in result.stdout


# With a database, the merge request pipeline's own jobs run these under gitlab-ci-local
# (pre-commit, contract-tests, e2e-tests): tests/test_pipeline.py,
# test_pre_commit_feature_and_merge_request_jobs_run_green_in_the_shell.
@pytest.mark.xdist_group("microservice-db-False")
def test_pre_commit_hooks_pass_on_the_fresh_repository(bootstrapped: Bootstrapped) -> None:
    project = bootstrapped(service_type="microservice", use_database=False)
    run(["uv", "run", "--no-sync", "pre-commit", "run", "--all-files"], cwd=project, env=GIT_ENV)


@pytest.mark.xdist_group("microservice-db-False")
def test_the_libraries_bytecode_is_linked_from_uvs_cache(bootstrapped: Bootstrapped) -> None:
    """tests/support/bytecode.py: the bytecode of FastAPI came with its files (hard links to uv's
    cache), not compiled by this project's Python at its first import."""
    project = bootstrapped(service_type="microservice", use_database=False)
    site = next(project.glob(".venv/lib/python3*/site-packages"))
    compiled = list((site / "fastapi").glob("__pycache__/*.cpython-*.pyc"))
    assert len(compiled) >= 10, "no bytecode in the project's environment after bootstrap"
    assert all(pyc.stat().st_nlink >= 2 for pyc in compiled)


@pytest.mark.xdist_group("microservice-db-False")
def test_contract_and_e2e_tests_pass(bootstrapped: Bootstrapped) -> None:
    project = bootstrapped(service_type="microservice", use_database=False)
    result = run(["make", "test-contract", "test-e2e"], cwd=project, env=project_env(project))
    assert " passed" in result.stdout
    assert "failed" not in result.stdout


def test_integration_tests_pass_against_real_postgres(project: Path, postgres: Postgres) -> None:
    database = f"it_{project.parent.name.replace('-', '_')}"
    url = postgres.create_database(database)
    env = project_env(project, DATABASE_URL=url, CI="true")
    result = run(["make", "test-integration"], cwd=project, env=env)
    assert "skipped" not in result.stdout
    if (project / "alembic.ini").exists():
        assert "test_downgrade_then_upgrade_again PASSED" in result.stdout or "passed" in result.stdout
        # The migrations leave a clean database behind them (downgrade base ran).
        assert postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'items'", database) == "0"


def test_alembic_upgrade_and_downgrade_on_postgres(
    bootstrapped: Bootstrapped, postgres: Postgres
) -> None:
    project = bootstrapped(service_type="microservice", use_database=True)
    url = postgres.create_database("alembic_cli")
    env = project_env(project, DATABASE_URL=url)
    run(["uv", "run", "--no-sync", "alembic", "upgrade", "head"], cwd=project, env=env)
    assert postgres.psql("SELECT version_num FROM alembic_version", "alembic_cli") == "0001"
    run(["uv", "run", "--no-sync", "alembic", "downgrade", "base"], cwd=project, env=env)
    assert postgres.psql("SELECT count(*) FROM alembic_version", "alembic_cli") == "0"


def test_commit_messages_must_be_conventional(project: Path, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("feat(api): add scoring endpoint\n")
    bad = tmp_path / "bad"
    bad.write_text("added some stuff\n")
    hook = ["uv", "run", "--no-sync", "pre-commit", "run", "conventional-commit",
            "--hook-stage", "commit-msg", "--commit-msg-filename"]
    run([*hook, str(good)], cwd=project, env=GIT_ENV)
    rejected = run([*hook, str(bad)], cwd=project, env=GIT_ENV, check=False)
    assert rejected.returncode != 0


def test_check_fails_when_coverage_drops_below_the_gate(
    copier_template: Path, tmp_path: Path
) -> None:
    from .support.project import bootstrap, render

    project = bootstrap(render(copier_template, tmp_path / "p", {"coverage_threshold": 100}))
    failed = run(["make", "test-unit"], cwd=project, env=GIT_ENV, check=False)
    assert failed.returncode != 0
    assert "FAIL Required test coverage of 100" in failed.stdout
