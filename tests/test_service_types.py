"""The rag, agent and data-pipeline types pass their own gates for real.

For each type: `make bootstrap` + `make check` green; the evaluation gate passes and fails
above what the offline model scores; the service answers over HTTP; the pipeline runs
`dvc repro` and takes a model through a local MLflow registry; integration tests run
against a real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import Render, on_one_worker
from .support.oidc import shared_issuer
from .support.pgvector import PgvectorServer, pgvector_server
from .support.postgres import Postgres
from .support.procs import free_port, run
from .support.project import GIT_ENV, capabilities, project_env
from .support.prometheus import Prometheus
from .support.pushgateway import pushgateway

Bootstrapped = Callable[..., Path]

# The variants whose generated project runs `make check`: every type's database and ML
# tracking code (the agent's both in one project), and a type without them where that changes
# its code (the pipeline's runs without MLflow; rag's: tests/test_hostile_answers.py).
VARIANTS = {
    "rag-db-tracking": {"service_type": "rag", "use_database": True, "use_ml_tracking": True},
    "rag": {"service_type": "rag"},
    "agent-db-tracking": {"service_type": "agent", "use_database": True, "use_ml_tracking": True},
    "pipeline-db": {"service_type": "data-pipeline", "use_database": True},
    "pipeline-no-tracking": {"service_type": "data-pipeline", "use_ml_tracking": False},
    "serving": {"service_type": "model-serving"},  # its rollout: tests/test_model_serving.py
}
WITH_DATABASE = [name for name, answers in VARIANTS.items() if answers.get("use_database")]


def _project(bootstrapped: Bootstrapped, variant: str) -> Path:
    return bootstrapped(**VARIANTS[variant])


# ---------------------------------------------------------------- answers and rendering


def test_ml_tracking_defaults_on_for_the_pipeline_only(render_project: Render) -> None:
    for kind, tracking in [("data-pipeline", True), ("rag", False), ("agent", False)]:
        project = render_project(service_type=kind)
        answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
        assert answers["use_ml_tracking"] is tracking, kind
        assert ("eval_threshold" in answers) is (kind != "data-pipeline")


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_eval_threshold_must_be_a_fraction(
    copier_template: Path, tmp_path: Path, value: float
) -> None:
    import copier

    with pytest.raises(ValueError, match="eval_threshold must be a number from 0 to 1"):
        copier.run_copy(
            str(copier_template),
            tmp_path / "p",
            data={"service_type": "rag", "eval_threshold": value},
            defaults=True,
            unsafe=False,
            quiet=True,
            vcs_ref="HEAD",
        )


def test_the_threshold_reaches_the_makefile(render_project: Render) -> None:
    project = render_project(service_type="agent", eval_threshold=0.65)
    makefile = (project / "Makefile").read_text()
    assert "EVAL_THRESHOLD ?= 0.65" in makefile
    assert "--threshold $(EVAL_THRESHOLD)" in makefile


def test_the_pipeline_is_a_batch_without_http(render_project: Render) -> None:
    project = render_project(service_type="data-pipeline", use_database=True)
    pyproject = (project / "pyproject.toml").read_text()
    assert "fastapi" not in pyproject
    assert "uvicorn" not in pyproject
    main = (project / "src" / "my_service" / "__main__.py").read_text()
    assert "from .pipeline.cli import main" in main
    assert "providesApis" not in (project / "catalog-info.yaml").read_text()
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "train", "evaluate"]
    assert stages["prepare"]["always_changed"] is True  # the source is a database table


def test_dvc_hooks_come_with_ml_tracking(render_project: Render) -> None:
    tracked = render_project(service_type="rag", use_ml_tracking=True)
    hooks = yaml.safe_load((tracked / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"]: hook for hook in hooks["repos"][0]["hooks"]}
    assert ids["dvc-pre-push"]["entry"] == "uv run --no-sync dvc git-hook pre-push"
    assert ids["dvc-post-checkout"]["stages"] == ["post-checkout"]
    assert {"pre-push", "post-checkout"} <= set(hooks["default_install_hook_types"])
    untracked = render_project(service_type="rag")
    without = yaml.safe_load((untracked / ".pre-commit-config.yaml").read_text())
    assert not [hook for hook in without["repos"][0]["hooks"] if hook["id"].startswith("dvc")]


# ---------------------------------------------------------------- the generated projects' gates


# "rag" (no database, no tracking) is left out: the hostile rag of test_hostile_answers.py has
# the same answers, hostile values only, and runs `make check`.
@pytest.mark.slow
@pytest.mark.parametrize("variant", on_one_worker([name for name in VARIANTS if name != "rag"]))
def test_make_check_is_green(bootstrapped: Bootstrapped, variant: str) -> None:
    project = _project(bootstrapped, variant)
    result = run(["make", "check"], cwd=project, env=GIT_ENV)
    assert "Required test coverage of 70" in result.stdout
    assert " passed" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("variant", on_one_worker(["rag-db-tracking", "pipeline-db"]))
def test_the_first_commit_passes_the_git_hooks(
    bootstrapped: Bootstrapped, variant: str, tmp_path: Path
) -> None:
    """The after-copy message's `git add -A && git commit`, in a fresh repository, with the hooks
    `make bootstrap` installs. Their uv.lock passes 1 MB (MLflow); rag's ExternalSecret names
    the LLM key, the pipeline's e2e test gives its S3 server a secret key, and the pipeline has
    DVC's hooks. The hooks `make check` runs on the same files (the unit tests, mypy,
    shellcheck) are skipped: test_make_check_is_green runs them."""
    project = _project(bootstrapped, variant)
    fresh = tmp_path / "project"
    shutil.copytree(project, fresh, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv"))
    env = project_env(
        project, UV_PROJECT_ENVIRONMENT=str(project / ".venv"), SKIP="fast-tests,mypy,shellcheck"
    )
    run(["git", "init", "-q", "-b", "main"], cwd=fresh, env=env)
    run(["uv", "run", "--no-sync", "pre-commit", "install", "--install-hooks"], cwd=fresh, env=env)
    run(["git", "add", "-A"], cwd=fresh, env=env)
    result = run(
        ["git", "commit", "-m", "feat: initial my-service from the playbook template"],
        cwd=fresh,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    for hook in ("check for added large files", "detect secrets", "ruff", "dvc status"):
        assert re.search(rf"^{re.escape(hook)}\.+Passed$", result.stdout, re.M), hook
    assert (fresh / "uv.lock").stat().st_size > 1024 * 1024, "pick a variant whose lock passes 1 MB"


@pytest.mark.slow
@pytest.mark.parametrize("variant", on_one_worker(["rag-db-tracking", "agent-db-tracking"]))
def test_eval_gate_passes_and_fails_above_the_offline_score(
    bootstrapped: Bootstrapped, variant: str, tmp_path: Path
) -> None:
    project = _project(bootstrapped, variant)
    env = project_env(project, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    passed = run(["make", "eval"], cwd=project, env=env)
    assert "PASSED" in passed.stdout
    report = json.loads((project / "eval-report.json").read_text())
    assert report["passed"] is True
    metrics = report["metrics"]
    gated = ["hit_rate", "recall_at_k", "groundedness"] if "hit_rate" in metrics else ["pass_rate"]
    score = min(metrics[name] for name in gated)
    assert 0.8 <= score < 1, "the sample evaluation set must leave the offline model room to fail"

    above = f"EVAL_THRESHOLD={score + 0.01:.3f}"
    failed = run(["make", "eval", above], cwd=project, env=env, check=False)
    assert failed.returncode != 0
    assert "FAILED" in failed.stdout
    if VARIANTS[variant].get("use_ml_tracking"):
        with sqlite3.connect(tmp_path / "mlflow.db") as db:
            params = dict(db.execute("SELECT key, value FROM params").fetchall())
        assert len(params["prompt_version"]) == 12  # the prompt version reaches MLflow


@pytest.mark.slow
@pytest.mark.parametrize("variant", on_one_worker(WITH_DATABASE))
def test_integration_contract_and_e2e_against_postgres(
    bootstrapped: Bootstrapped, postgres: Postgres, variant: str, request: pytest.FixtureRequest
) -> None:
    project = _project(bootstrapped, variant)
    name = variant.replace("-", "_")
    vector_store = capabilities(VARIANTS[variant]).has_vector_store
    # Debian's PostgreSQL has no pgvector: the vector store's HNSW path runs on a pgserver
    # (PostgreSQL 16 + pgvector) started from this repository's virtualenv.
    pgvector_url = (
        request.getfixturevalue("pgvector").create_database(f"vec_{name}") if vector_store else ""
    )
    outputs = []
    for targets, database in (
        (["test-integration"], f"it_{name}"),
        (["test-contract", "test-e2e"], f"e2e_{name}"),
    ):
        url = postgres.create_database(database)
        env = project_env(
            project,
            DATABASE_URL=url,
            PGVECTOR_DATABASE_URL=pgvector_url,
            CI="true",
            PYTEST_ADDOPTS="-v",
        )
        result = run(["make", *targets], cwd=project, env=env)
        assert " passed" in result.stdout
        assert "skipped" not in result.stdout
        assert " failed" not in result.stdout
        outputs.append(result.stdout)
    if vector_store:
        for test in (
            "test_plain_postgresql_falls_back_to_exact_search PASSED",
            "test_the_migration_creates_the_hnsw_index PASSED",
            "test_the_search_goes_through_the_hnsw_index PASSED",
            "test_the_service_answers_from_postgres[pgvector] PASSED",
            "test_the_service_answers_from_postgres[plain] PASSED",
        ):
            assert test in outputs[0], test
    if variant.startswith("pipeline"):
        # The data pipeline's e2e: dvc repro, the MLflow registry flow and the DVC remote.
        for test in (
            "test_dvc_repro_runs_the_stages_and_reruns_only_what_changed PASSED",
            "test_the_model_is_registered_promoted_and_smoke_tested PASSED",
            "test_a_second_run_pulls_from_the_s3_remote_instead_of_retraining PASSED",
            "test_the_dvc_sync_says_what_is_wrong PASSED",
            "test_warehouse.py::test_the_batch_trains_on_the_table PASSED",
        ):
            assert test in "".join(outputs), test


@pytest.fixture(scope="module")
def pgvector() -> Iterator[PgvectorServer]:
    with pgvector_server() as server:
        yield server


@pytest.fixture
def service(bootstrapped: Bootstrapped, request: pytest.FixtureRequest) -> Iterator[str]:
    """The generated service, started as the container starts it, on a free port."""
    project = _project(bootstrapped, request.param)
    port = free_port()
    env = {**os.environ, **project_env(project, HOST="127.0.0.1", PORT=str(port)),
           **shared_issuer().service_env()}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [str(project / ".venv" / "bin" / "python"), "-m", "my_service"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the service did not start:\n{process.communicate()[0]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("service", on_one_worker(["rag"]), indirect=True)
def test_rag_service_ingests_then_answers_with_a_citation(service: str) -> None:
    auth = {"Authorization": f"Bearer {shared_issuer().token()}"}
    document = {"id": "badges", "text": "Lost badges are replaced at the front desk on floor 2."}
    assert httpx.post(f"{service}/documents", json={"documents": [document]}).status_code == 401
    assert httpx.post(f"{service}/documents", json={"documents": [document]},
                      headers=auth).status_code == 201
    question = {"question": "Where are lost badges replaced?"}
    answer = httpx.post(f"{service}/query", json=question, headers=auth).json()
    assert answer["citations"][0]["document_id"] == "badges"
    assert "front desk" in answer["answer"]
    question = {"question": "How often must secrets be rotated?"}
    corpus = httpx.post(f"{service}/query", json=question, headers=auth).json()
    assert corpus["citations"][0]["document_id"] == "secrets"  # the sample corpus, at start-up
    metrics = httpx.get(f"{service}/metrics").text
    assert 'llm_tokens_total{direction="input",model="offline-extractive"' in metrics


@pytest.mark.slow
@pytest.mark.parametrize("service", on_one_worker(["agent-db-tracking"]), indirect=True)
def test_agent_scenario_calls_a_tool_and_returns_its_result(service: str) -> None:
    auth = {"Authorization": f"Bearer {shared_issuer().token()}"}
    run_ = httpx.post(f"{service}/agent/runs", json={"question": "What is 19 * 21?"},
                      headers=auth).json()
    assert run_["tool_calls"] == ["calculator"]
    assert "399" in run_["answer"]
    tool_result = [event for event in run_["transcript"] if event["kind"] == "tool_result"]
    assert tool_result[0]["content"] == "399"
    assert httpx.get(f"{service}/agent/runs/{run_['run_id']}", headers=auth).json()["run_id"] == run_["run_id"]
    metrics = httpx.get(f"{service}/metrics").text
    assert 'llm_step_duration_seconds_count{kind="tool",name="calculator"} 1.0' in metrics


@pytest.mark.slow
def test_pipeline_job_entry_point_runs_the_batch(
    bootstrapped: Bootstrapped, tmp_path: Path
) -> None:
    """`python -m <package>` is the Job's command: the whole batch, exit 1 on failed checks."""
    project = _project(bootstrapped, "pipeline-no-tracking")
    env = project_env(project, PIPELINE_WORKDIR=str(tmp_path / "work"))
    python = str(project / ".venv" / "bin" / "python")
    result = run([python, "-m", "my_service"], cwd=project, env=env)
    assert "checks passed" in result.stdout
    strict = tmp_path / "params.yaml"
    params = (project / "params.yaml").read_text()
    strict.write_text(params.replace("min_roc_auc: 0.95", "min_roc_auc: 0.9999"))
    failed = run(
        [python, "-m", "my_service", "run", "--share", "0.25"],
        cwd=project,
        env={**env, "PIPELINE_PARAMS": str(strict)},
        check=False,
    )
    assert failed.returncode == 1
    assert "roc_auc" in failed.stdout
    assert "below the minimum 0.9999" in failed.stdout


@pytest.mark.slow
def test_batch_runs_reach_prometheus_through_a_real_pushgateway(
    bootstrapped: Bootstrapped, tmp_path: Path
) -> None:
    """The batch's monitoring contract end to end, with the real Pushgateway and Prometheus:
    runs push their outcome, Prometheus scrapes it (honor_labels, as deploy/monitoring does),
    and the pipeline's freshness check reads what the alerts read. A failed canary run never
    counts against stable; a failed stable run after the last success does."""
    project = _project(bootstrapped, "pipeline-no-tracking")
    python = str(project / ".venv" / "bin" / "python")
    strict = tmp_path / "params.yaml"
    strict.write_text((project / "params.yaml").read_text().replace("min_roc_auc: 0.95", "min_roc_auc: 0.9999"))
    with pushgateway() as gateway:
        prometheus = Prometheus.start([(gateway.removeprefix("http://"), {})], honor_labels=True)
        try:
            env = project_env(project, PIPELINE_WORKDIR=str(tmp_path / "work"),
                              PUSHGATEWAY_URL=gateway, ENVIRONMENT="staging")

            def batch(*extra: str, **variables: str) -> int:
                command = [python, "-m", "my_service", "run", "--share", "0.25", *extra]
                return run(command, cwd=project, env={**env, **variables}, check=False).returncode

            def scraped(metric: str, track: str) -> None:
                """Wait until Prometheus holds a value of the series pushed since `since`."""
                series = f'{metric}{{job="my-service",environment="staging",track="{track}"}} > {since}'
                deadline = time.monotonic() + 30
                while not prometheus.query(series):
                    assert time.monotonic() < deadline, f"Prometheus never scraped {series}"
                    time.sleep(0.5)

            def freshness() -> subprocess.CompletedProcess[str]:
                script = project / "scripts-ci" / "monitoring" / "check-pipeline-freshness.sh"
                return run([str(script), "--env", "staging", "--max-age", "15m"], cwd=project,
                           env={**env, "PROMETHEUS_URL": prometheus.url}, check=False)

            since = time.time()
            assert batch() == 0
            assert batch(TRACK="canary", PIPELINE_PARAMS=str(strict)) == 1
            scraped("pipeline_last_success_timestamp_seconds", "stable")
            scraped("pipeline_last_failure_timestamp_seconds", "canary")
            fresh = freshness()
            assert fresh.returncode == 0, fresh.stdout

            since = time.time()
            assert batch(PIPELINE_PARAMS=str(strict)) == 1
            scraped("pipeline_last_failure_timestamp_seconds", "stable")
            failed = freshness()
            assert failed.returncode == 1, failed.stdout
            assert "after the last success" in failed.stdout
            # The failure kept the last success (the push adds to its group).
            assert prometheus.query(
                'pipeline_last_success_timestamp_seconds{job="my-service",track="stable"}')
        finally:
            prometheus.stop()


@pytest.mark.slow
def test_pre_commit_runs_dvc_hooks_on_a_tracked_project(bootstrapped: Bootstrapped) -> None:
    project = _project(bootstrapped, "rag-db-tracking")
    assert (project / ".git" / "hooks" / "pre-push").exists()
    assert (project / ".git" / "hooks" / "post-checkout").exists()
    hook = ["uv", "run", "--no-sync", "pre-commit", "run", "dvc-pre-commit", "--all-files"]
    assert "dvc status" in run(hook, cwd=project, env=GIT_ENV).stdout
