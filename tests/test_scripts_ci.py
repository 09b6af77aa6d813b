"""scripts-ci/ does its job against real things.

- smoke, sanity and performance tests against the generated service running on 127.0.0.1;
- golden-signal and canary checks against a real Prometheus scraping real exporters;
- backup -> failed migration -> restore against a real PostgreSQL;
- notify-oncall against a local webhook receiver;
- deploy, canary and rollback against a recording `kubectl` (no cluster can run here),
  with manifests rendered by the real Kustomize and validated offline;
- the batch variants (a service type that does not serve HTTP): CronJob deploys and the Jobs
  run from them against the same recording `kubectl`, and the pipeline freshness check
  against a real Prometheus.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dev.docgen import capabilities

from .conftest import Render
from .support.fake_kubectl import FakeKubectl
from .support.gitops import TOKEN as ARGOCD_TOKEN
from .support.gitops import (
    FakeArgoCD,
    Sync,
    degraded_when,
    fake_argocd,
    gitops_repository,
    never_synced,
    sync_fails_when,
)
from .support.gitops import rendered as rendered_gitops
from .support.gitops import running as running_gitops
from .support.json_api import JsonHandler, start_serving
from .support.postgres import Postgres
from .support.procs import free_port, run
from .support.project import GIT_ENV, SERVICE_TYPES, git_commit_all, project_env, render
from .support.prometheus import Prometheus
from .support.service import api_token, running_service

Bootstrapped = Callable[..., Path]
HERE = Path(__file__).parent
VENV_BIN = Path(sys.executable).parent

SCRIPTS = [
    "deploy/deploy-to-staging.sh",
    "deploy/canary-deploy.sh",
    "deploy/rollback-deployment.sh",
    "test/smoke-test.sh",
    "test/sanity-test.sh",
    "test/performance-test.sh",
    "monitoring/check-canary-health.sh",
    "monitoring/check-golden-signals.sh",
    "db/backup-db.sh",
    "db/restore-db.sh",
    "alerts/notify-oncall.sh",
    "deploy/stop-staging.sh",
    "gitlab/apply-retention.py",
]
# What a batch (serves_http false) gets instead: no HTTP test nor golden signals.
BATCH_SCRIPTS = [
    "deploy/deploy-to-staging.sh",
    "deploy/canary-deploy.sh",
    "deploy/rollback-deployment.sh",
    "deploy/run-batch-job.sh",
    "monitoring/check-pipeline-freshness.sh",
    "db/backup-db.sh",
    "db/restore-db.sh",
    "alerts/notify-oncall.sh",
    "deploy/stop-staging.sh",
    "gitlab/apply-retention.py",
]


# The deploy scripts every service has: one file each, whose steps are in lib/http.sh or lib/batch.sh.
DEPLOY_SCRIPTS = ["deploy/deploy-to-staging.sh", "deploy/canary-deploy.sh", "deploy/rollback-deployment.sh"]
SERVES_HTTP = {kind: bool(row["serves_http"]) for kind, row in capabilities.service_types(HERE.parent).items()}
# The service type the batch tests render: the first one that does not serve HTTP.
BATCH_TYPE = next(kind for kind, serves_http in SERVES_HTTP.items() if not serves_http)


def scripts_of(service_type: str) -> list[str]:
    return SCRIPTS if SERVES_HTTP[service_type] else BATCH_SCRIPTS


# Variables a developer's shell or a CI runner (GitLab's CI_*) may carry that would change
# what the scripts do: blanked for every run (the scripts treat empty as unset).
SCRIPT_VARIABLES = {
    "IMAGE", "SERVICE_URL", "STAGING_URL", "PRODUCTION_URL", "SMOKE_PATH", "K8S_NAMESPACE",
    "KUBE_CONTEXT", "DATABASE_URL", "STAGING_DATABASE_URL", "PRODUCTION_DATABASE_URL",
    "BACKUP_DIR", "RUNBOOK_URL", "DRY_RUN", "AUTO_ROLLBACK", "DEPLOY_DIR", "PORT", "IMAGE_DIGEST",
}
SCRIPT_PREFIXES = ("CI_", "GITLAB_", "GS_", "PERF_", "CANARY_", "PROM", "ONCALL_", "PAGERDUTY_",
                   "JOB_", "FRESHNESS_", "FAKE_KUBECTL_", "OIDC_")


def script(
    project: Path, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run scripts-ci/<name> from the project root as CI does; never raises on failure.

    API_TOKEN is a valid token of the services `running_service` starts, unless `env` says otherwise.
    """
    clean = {key: "" for key in SCRIPT_VARIABLES} | {"API_TOKEN": api_token()}
    clean |= {key: "" for key in os.environ if key.startswith(SCRIPT_PREFIXES)}
    return run(
        [str(project / "scripts-ci" / name), *args],
        cwd=project, env={**clean, **(env or {})}, check=False, timeout=timeout,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}:\n{result.stdout[-6000:]}"


@pytest.fixture(scope="module")
def rendered(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered microservice (defaults), enough for scripts that need no virtualenv."""
    return render(copier_template, tmp_path_factory.mktemp("rendered") / "project", {})


@pytest.fixture(scope="module")
def batch(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered batch (a type that does not serve HTTP, defaults): the batch variants of the scripts."""
    return render(copier_template, tmp_path_factory.mktemp("batch") / "project",
                  {"service_type": BATCH_TYPE})


@pytest.fixture(scope="module")
def plain(bootstrapped: Bootstrapped) -> Path:
    """A bootstrapped microservice without a database."""
    return bootstrapped(service_type="microservice", use_database=False)


@pytest.fixture(scope="module")
def with_db(bootstrapped: Bootstrapped) -> Path:
    """A bootstrapped microservice with PostgreSQL and the /items resource."""
    return bootstrapped(service_type="microservice", use_database=True)


def migrated_database(postgres: Postgres, project: Path, name: str) -> str:
    url = postgres.create_database(name)
    run([str(project / ".venv" / "bin" / "alembic"), "upgrade", "head"], cwd=project,
        env=project_env(project, DATABASE_URL=url))
    return url


@pytest.fixture(scope="module")
def plain_service(plain: Path) -> Iterator[str]:
    with running_service(plain) as url:
        yield url


@pytest.fixture(scope="module")
def db_service(with_db: Path, postgres: Postgres) -> Iterator[str]:
    url = migrated_database(postgres, with_db, "scripts_ci_service")
    with running_service(with_db, DATABASE_URL=url) as base_url:
        yield base_url


# ----------------------------------------------------------------- every script, every type


@pytest.mark.parametrize("service_type", SERVICE_TYPES)
def test_scripts_are_shellcheck_clean_and_executable(render_project: Render, service_type: str) -> None:
    project = render_project(service_type=service_type, use_database=True)
    shell_files = sorted(str(path) for path in project.glob("scripts-ci/**/*.sh"))
    names = scripts_of(service_type)
    assert len(shell_files) >= len(names)
    # The generated Makefile's command, with the template's own shellcheck binary.
    run([str(VENV_BIN / "shellcheck"), "--external-sources", *shell_files], cwd=project)
    for name in names:
        assert os.access(project / "scripts-ci" / name, os.X_OK), f"{name} is not executable"
    # Only one variant of each script, and none of the other kind's.
    other = set(BATCH_SCRIPTS if SERVES_HTTP[service_type] else SCRIPTS) - set(names)
    assert not [name for name in other if (project / "scripts-ci" / name).exists()]
    assert (project / "scripts-ci" / "lib" / "http.sh").exists() == SERVES_HTTP[service_type]
    assert (project / "scripts-ci" / "lib" / "batch.sh").exists() == (not SERVES_HTTP[service_type])


@pytest.mark.parametrize("kind", ["http", "batch"])
def test_every_script_has_help_and_a_readme_section(rendered: Path, batch: Path, kind: str) -> None:
    project, names = (rendered, SCRIPTS) if kind == "http" else (batch, BATCH_SCRIPTS)
    readme = (project / "scripts-ci" / "README.md").read_text()
    for name in names:
        result = script(project, name, "--help")
        assert result.returncode == 0, explain(result)
        help_text = result.stdout
        assert help_text.startswith(f"Usage: scripts-ci/{name}"), help_text[:200]
        for part in ("Exit codes:", "Example:"):
            assert part in help_text, f"{name} --help lacks {part!r}"
        assert f"\n## {name}\n" in readme, f"README.md has no section for {name}"
        assert f"`{name}" in readme, f"README.md's table does not list {name}"
    for name in DEPLOY_SCRIPTS:  # the help of the workload's step, from its library
        help_text = script(project, name, "--help").stdout
        assert ("CronJob" in help_text) == (kind == "batch"), f"{name} --help: {help_text[:300]}"
    mentioned = set(re.findall(r"`((?:deploy|test|monitoring|db|alerts)/[a-z-]+\.sh)", readme))
    extra = mentioned - set(names) - ({"deploy/gitops-promote.sh"} if kind == "http" else set())
    assert not extra, f"README.md describes scripts this service lacks: {extra}"


def test_the_deploy_scripts_are_one_file_for_every_workload(rendered: Path, batch: Path) -> None:
    """The same entry script in both; the workload's library (WORKLOAD in lib/project.sh) differs."""
    for name in DEPLOY_SCRIPTS:
        assert (rendered / "scripts-ci" / name).read_bytes() == (batch / "scripts-ci" / name).read_bytes(), name
    for project, workload in ((rendered, "http"), (batch, "batch")):
        assert f'\nWORKLOAD="{workload}"\n' in (project / "scripts-ci" / "lib" / "project.sh").read_text()


@pytest.mark.parametrize(
    ("name", "args", "env", "message"),
    [
        ("deploy/run-batch-job.sh", [], {}, "--env is required"),
        ("deploy/run-batch-job.sh", ["--env", "production", "promote"], {}, "unknown argument 'promote' (the pipeline command goes after --"),
        ("deploy/run-batch-job.sh", ["--env", "local"], {}, "a Job runs in a cluster"),
        ("deploy/run-batch-job.sh", ["--env", "staging", "--share", "1.5"], {}, "invalid share '1.5'"),
        ("deploy/run-batch-job.sh", ["--env", "staging", "--timeout", "soon"], {}, "invalid duration 'soon'"),
        ("deploy/canary-deploy.sh", ["--percent", "101"], {}, "--percent must be a whole number from 1 to 100"),
        ("deploy/deploy-to-staging.sh", [], {}, "no image to deploy"),
        ("deploy/rollback-deployment.sh", ["--env", "qa"], {}, "unknown environment 'qa'"),
        ("monitoring/check-pipeline-freshness.sh", [], {}, "--env is required"),
        ("monitoring/check-pipeline-freshness.sh", ["--env", "production"], {}, "PROMETHEUS_URL is not set"),
        ("monitoring/check-pipeline-freshness.sh", ["--env", "production", "--max-age", "1d"],
         {"PROMETHEUS_URL": "http://127.0.0.1:9"}, "invalid duration '1d'"),
    ],
)
def test_batch_scripts_refuse_wrong_usage_with_exit_2(
    batch: Path, name: str, args: list[str], env: dict[str, str], message: str
) -> None:
    result = script(batch, name, *args, env=env)
    assert result.returncode == 2, explain(result)
    assert message in result.stdout, explain(result)


@pytest.mark.parametrize(
    ("name", "args", "env", "message"),
    [
        ("test/smoke-test.sh", ["--bogus"], {}, "unknown argument '--bogus'"),
        ("test/smoke-test.sh", ["--env", "qa"], {}, "unknown environment 'qa'"),
        ("test/performance-test.sh", ["--duration", "5x"], {}, "invalid duration '5x'"),
        ("deploy/canary-deploy.sh", ["--percent", "0"], {}, "--percent must be a whole number from 1 to 100"),
        ("deploy/canary-deploy.sh", [], {}, "--percent is required"),
        ("deploy/deploy-to-staging.sh", [], {}, "no image to deploy"),
        ("monitoring/check-golden-signals.sh", [], {}, "PROMETHEUS_URL is not set"),
        ("monitoring/check-canary-health.sh", [], {"PROMETHEUS_URL": "ftp://x"}, "must be an http(s) URL"),
        ("db/backup-db.sh", ["staging"], {}, "set STAGING_DATABASE_URL (or DATABASE_URL)"),
        ("db/restore-db.sh", [], {}, "which environment?"),
        ("alerts/notify-oncall.sh", [], {}, "ONCALL_WEBHOOK_URL is not set"),
        ("alerts/notify-oncall.sh", ["--format", "fax"], {}, "unknown format 'fax'"),
    ],
)
def test_wrong_usage_or_missing_configuration_exits_2_and_says_why(
    rendered: Path, name: str, args: list[str], env: dict[str, str], message: str
) -> None:
    result = script(rendered, name, *args, env=env)
    assert result.returncode == 2, explain(result)
    assert message in result.stdout


@pytest.mark.slow
def test_golden_signals_module_is_typed_and_linted_by_the_project(plain: Path) -> None:
    module = "scripts-ci/monitoring/golden_signals.py"
    env = project_env(plain)
    run(["uv", "run", "--no-sync", "mypy", "--strict", module], cwd=plain, env=env)
    run(["uv", "run", "--no-sync", "ruff", "check", module], cwd=plain, env=env)
    run(["uv", "run", "--no-sync", "black", "--check", module], cwd=plain, env=env)


# ----------------------------------------------------------------- smoke, sanity, performance


@pytest.mark.slow
def test_smoke_passes_against_the_running_service(
    plain: Path, plain_service: str, with_db: Path, db_service: str
) -> None:
    for project, url in ((plain, plain_service), (with_db, db_service)):
        result = script(project, "test/smoke-test.sh", "--env", "staging", "--timeout", "20",
                        env={"SERVICE_URL": url})
        assert result.returncode == 0, explain(result)
        for check in ("ok   liveness: GET /healthz -> 200", "ok   readiness: GET /readyz -> 200",
                      "ok   endpoint: GET "):
            assert check in result.stdout
    assert "GET /items?limit=1 -> 200" in result.stdout  # the database-backed endpoint


@pytest.mark.slow
def test_smoke_fails_when_the_service_is_down(plain: Path) -> None:
    start = time.monotonic()
    result = script(plain, "test/smoke-test.sh", "--timeout", "3",
                    env={"SERVICE_URL": f"http://127.0.0.1:{free_port()}", "SMOKE_INTERVAL": "1"})
    assert result.returncode == 1, explain(result)
    assert "FAIL liveness: GET /healthz did not pass within 3s" in result.stdout
    assert "HTTP 000 curl: (7)" in result.stdout  # curl's own reason: connection refused
    assert time.monotonic() - start < 15


@pytest.mark.slow
def test_smoke_fails_when_the_service_is_unhealthy(with_db: Path) -> None:
    """Up but not ready: its database is unreachable, /readyz answers 503."""
    dead_database = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    with running_service(with_db, DATABASE_URL=dead_database) as url:
        result = script(with_db, "test/smoke-test.sh", "--env", "production", "--timeout", "3",
                        env={"SERVICE_URL": url, "SMOKE_INTERVAL": "1"})
    assert result.returncode == 1, explain(result)
    assert "ok   liveness" in result.stdout
    assert "FAIL readiness: GET /readyz did not pass within 3s" in result.stdout
    assert 'HTTP 503 {"status":"unavailable","checks":{"database":"error: OperationalError"}}' in result.stdout


@pytest.mark.slow
def test_sanity_exercises_the_microservice_use_case(
    plain: Path, plain_service: str, with_db: Path, db_service: str, postgres: Postgres
) -> None:
    result = script(plain, "test/sanity-test.sh", env={"SERVICE_URL": plain_service})
    assert result.returncode == 0, explain(result)
    assert "ok   metrics count the calls just made" in result.stdout

    result = script(with_db, "test/sanity-test.sh", "--env", "staging", env={"SERVICE_URL": db_service})
    assert result.returncode == 0, explain(result)
    for step in ("create an item: POST /items -> 201", "read it back: GET /items/",
                 "refuse a duplicate name: POST /items -> 409",
                 "unknown item is not found: GET /items/0 -> 404",
                 "reject an invalid item: POST /items -> 422"):
        assert f"ok   {step}" in result.stdout
    created = postgres.psql("SELECT count(*) FROM items WHERE name LIKE 'sanity-test %'",
                            "scripts_ci_service")
    assert int(created) >= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service_type", "steps"),
    [
        ("rag", ["ingest a document: POST /documents -> 201", "the answer cites the ingested document"]),
        ("agent", ["run a question that needs a tool: POST /agent/runs -> 200", "the answer holds the tool result"]),
    ],
)
def test_sanity_exercises_the_ai_use_cases(
    bootstrapped: Bootstrapped, service_type: str, steps: list[str]
) -> None:
    if service_type not in SERVICE_TYPES:
        pytest.skip(f"{service_type} is not among the selected service types")
    project = bootstrapped(service_type=service_type)
    with running_service(project) as url:
        result = script(project, "test/sanity-test.sh", env={"SERVICE_URL": url})
    assert result.returncode == 0, explain(result)
    for step in steps:
        assert f"ok   {step}" in result.stdout, explain(result)


@pytest.mark.slow
def test_sanity_fails_when_the_use_case_is_broken(with_db: Path, plain_service: str) -> None:
    """The database service's steps against a service without /items: the first step fails."""
    result = script(with_db, "test/sanity-test.sh", env={"SERVICE_URL": plain_service})
    assert result.returncode == 1, explain(result)
    assert "FAIL create an item: POST /items -> HTTP 404, expected 201" in result.stdout


@pytest.mark.slow
def test_performance_run_passes_and_keeps_a_report(
    with_db: Path, db_service: str, tmp_path: Path
) -> None:
    report = tmp_path / "reports" / "performance-report.json"
    result = script(with_db, "test/performance-test.sh", "--duration", "5s", "--report", str(report),
                    env={"SERVICE_URL": db_service, "PERF_CONNECTIONS": "4",
                         "PERF_MAX_P95_MS": "2000"})  # generous: CI machines are noisy
    assert result.returncode == 0, explain(result)
    assert "performance test passed" in result.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is True
    assert data["duration"] == "5s"
    assert data["paths"] == ["/items?limit=20", "/healthz"]
    assert data["results"]["requests"] > 50
    assert data["results"]["error_rate"] == 0
    assert 0 < data["results"]["latency_ms"]["p95"] <= 2000
    assert data["thresholds"] == {"p95_ms": 2000, "error_rate": 0.01}
    assert [check["name"] for check in data["checks"]] == [
        "completed requests", "p95 latency ms", "error rate"]
    # GitLab's load-performance report fields, for the MR widget.
    assert data["metrics"]["http_req_waiting"]["p(95)"] == data["results"]["latency_ms"]["p95"]
    assert data["metrics"]["checks"]["fails"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "failed"),
    [
        ({"PERF_MAX_P95_MS": "0.001"}, "p95 latency ms"),
        ({"PERF_PATHS": "/no-such-route"}, "error rate 1 (limit <= 0.01)"),
    ],
    ids=["p95-latency", "error-rate"],
)
def test_performance_run_fails_on_its_thresholds(
    plain: Path, plain_service: str, tmp_path: Path, env: dict[str, str], failed: str
) -> None:
    report = tmp_path / "performance-report.json"
    result = script(plain, "test/performance-test.sh", "--duration", "2s", "--report", str(report),
                    env={"SERVICE_URL": plain_service, "PERF_CONNECTIONS": "2", **env})
    assert result.returncode == 1, explain(result)
    assert re.search(rf"FAILED: .*{re.escape(failed)}", result.stdout), result.stdout[-2000:]
    assert json.loads(report.read_text())["passed"] is False


# ----------------------------------------------------------------- Prometheus: golden signals

NAMESPACE = "my-service-production"


@dataclass
class Monitoring:
    prometheus: Prometheus
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def monitoring(plain: Path) -> Iterator[Monitoring]:
    """Prometheus scraping the real service (stable) and exporters with injected faults.

    Targets, labelled like pods after the documented relabeling (app, track, namespace):
    the generated service as stable, a healthy canary, a canary answering 5xx to one
    request in three, a canary answering in 0.6 s, and a canary nobody calls; and a service
    calling a model (stable, llm-service) with a healthy canary, one whose requests cost
    three times as much and one whose model calls fail one in three.
    """
    llm_modes = ("llm", "llm-ok", "llm-costly", "llm-failing")
    ports = {name: free_port() for name in ("ok", "errors", "slow", "idle", *llm_modes)}
    modes = {"idle": "ok", "llm-ok": "llm"}
    exporters = subprocess.Popen(
        [sys.executable, str(HERE / "support" / "fake_service.py"),
         *[f"--listen={port}:{modes.get(name, name)}" for name, port in ports.items()]],
        stdout=subprocess.PIPE, text=True,
    )
    assert exporters.stdout is not None and exporters.stdout.readline().strip() == "ready"
    with running_service(plain) as stable:
        def labels(app: str, track: str) -> dict[str, str]:
            return {"app": app, "track": track, "namespace": NAMESPACE}

        prometheus = Prometheus.start([
            (stable.removeprefix("http://"), labels("my-service", "stable")),
            (f"127.0.0.1:{ports['ok']}", labels("my-service", "canary")),
            (f"127.0.0.1:{ports['errors']}", labels("faulty-errors", "canary")),
            (f"127.0.0.1:{ports['slow']}", labels("faulty-slow", "canary")),
            (f"127.0.0.1:{ports['idle']}", labels("idle", "canary")),
            (f"127.0.0.1:{ports['llm']}", labels("llm-service", "stable")),
            *[(f"127.0.0.1:{ports[name]}", labels(name, "canary")) for name in llm_modes[1:]],
        ])
        try:
            prometheus.wait_for_targets_up(len(ports) + 1)
            # Real HTTP traffic for a few seconds: the service's API and each exporter.
            urls = [f"{stable}/openapi.json", f"{stable}/openapi.json",
                    f"http://127.0.0.1:{ports['ok']}/work", f"http://127.0.0.1:{ports['errors']}/work"]
            urls += [f"http://127.0.0.1:{ports['slow']}/work"] * 3
            urls += [f"http://127.0.0.1:{ports[name]}/work" for name in llm_modes]
            stop = time.monotonic() + 8

            def call(url: str) -> None:
                while time.monotonic() < stop:
                    try:
                        with urllib.request.urlopen(url, timeout=5) as answer:
                            answer.read()
                    except OSError:
                        pass  # the injected 500s
                    time.sleep(0.03)

            workers = [threading.Thread(target=call, args=(url,)) for url in urls]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            time.sleep(2)  # two more scrapes after the last request
            yield Monitoring(prometheus, {
                "PROMETHEUS_URL": prometheus.url, "GS_WINDOW": "3m", "GS_MIN_REQUESTS": "20",
            })
        finally:
            prometheus.stop()
            exporters.terminate()
            exporters.wait(timeout=10)


@pytest.mark.slow
def test_golden_signals_pass_for_a_healthy_service(plain: Path, monitoring: Monitoring) -> None:
    report = monitoring.prometheus.workdir / "golden.json"
    result = script(plain, "monitoring/check-golden-signals.sh", "--report", str(report),
                    env=monitoring.env)
    assert result.returncode == 0, explain(result)
    # The default selector: the service's app label in the production namespace.
    assert f'service: {{app="my-service",namespace="{NAMESPACE}"}}' in result.stdout
    for row in ("traffic (requests)", "latency p50", "latency p95", "latency p99", "errors 5xx",
                "errors 4xx", "saturation cpu", "saturation memory"):
        assert re.search(rf"^{re.escape(row)} .* ok$", result.stdout, re.M), row
    assert "RESULT: PASS" in result.stdout
    assert "llm" not in result.stdout  # a service calling no model gets no model rows
    data = json.loads(report.read_text())
    assert data["passed"] is True
    assert data["measurements"]["service"]["requests"] > 20


@pytest.mark.slow
@pytest.mark.parametrize(
    ("app", "code", "failed"),
    [
        ("faulty-errors", 1, "FAIL errors 5xx: service 3"),  # one request in three: 33 %
        ("faulty-slow", 1, "FAIL latency p95: service"),
        ("idle", 6, "INCONCLUSIVE traffic: service had 0 requests in the window"),
    ],
    ids=["5xx", "latency", "no-traffic"],
)
def test_golden_signals_fail_naming_the_signal(
    plain: Path, monitoring: Monitoring, app: str, code: int, failed: str
) -> None:
    result = script(plain, "monitoring/check-golden-signals.sh",
                    env={**monitoring.env, "PROM_SELECTOR": f'app="{app}"'})
    assert result.returncode == code, explain(result)
    assert failed in result.stdout
    assert ("RESULT: INCONCLUSIVE (" if code == 6 else "RESULT: FAIL (") in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("canary", "code", "failed"),
    [
        ("llm-ok", 0, None),
        ("llm-costly", 1, "FAIL llm cost per request: canary 0.00300 USD is above the limit 0.00125 USD (stable x CANARY_MAX_LLM_COST_RATIO)"),
        ("llm-failing", 1, "FAIL llm errors: canary 3"),
    ],
    ids=["healthy", "cost-per-request", "provider-errors"],
)
def test_canary_health_compares_the_model_signals_with_stable(
    plain: Path, monitoring: Monitoring, canary: str, code: int, failed: str | None
) -> None:
    """A service calling a model (llm_* metrics): its canary is judged on the model's error
    share, cost per request and time per token against stable, like the golden signals."""
    env = {**monitoring.env, "PROM_SELECTOR_STABLE": 'app="llm-service"',
           "PROM_SELECTOR_CANARY": f'app="{canary}"', "CANARY_MAX_WAIT": "0s"}
    result = script(plain, "monitoring/check-canary-health.sh", env=env)
    assert result.returncode == code, explain(result)
    for row in ("llm errors", "llm cost per request", "llm time per token"):
        assert re.search(rf"^{row} +\S", result.stdout, re.M), row
    if failed:
        assert failed in result.stdout
    else:
        assert "RESULT: PASS" in result.stdout


@pytest.mark.slow
def test_canary_health_passes_for_a_healthy_canary(plain: Path, monitoring: Monitoring) -> None:
    result = script(plain, "monitoring/check-canary-health.sh", env=monitoring.env)
    assert result.returncode == 0, explain(result)
    assert re.search(r"^SIGNAL +STABLE +CANARY +LIMIT +RESULT$", result.stdout, re.M)
    assert f'canary: {{app="my-service",namespace="{NAMESPACE}",track="canary"}}' in result.stdout
    assert "RESULT: PASS" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("app", "code", "failed"),
    [
        ("faulty-errors", 1, "FAIL errors 5xx: canary 3"),
        ("faulty-slow", 1, "FAIL latency p95: canary"),
        # Nobody called it: inconclusive, not harm; at CANARY_MAX_WAIT it is promoted.
        ("idle", 0, "INCONCLUSIVE traffic: canary had 0 requests in the window"),
    ],
    ids=["5xx", "latency", "no-traffic"],
)
def test_canary_health_fails_naming_the_signal(
    plain: Path, monitoring: Monitoring, app: str, code: int, failed: str
) -> None:
    result = script(plain, "monitoring/check-canary-health.sh",
                    env={**monitoring.env, "PROM_SELECTOR_CANARY": f'app="{app}"', "CANARY_MAX_WAIT": "0s"})
    assert result.returncode == code, explain(result)
    assert failed in result.stdout
    if app == "idle":
        assert "inconclusive: 0 requests, promoting on no evidence of harm" in result.stdout
    if app == "faulty-slow":  # also worse than stable, not only above the absolute limit
        assert re.search(r"latency p50: canary .*\(stable x CANARY_MAX_LATENCY_RATIO", result.stdout)


@pytest.mark.slow
def test_monitoring_reports_an_unreachable_prometheus_and_an_unknown_selector(
    plain: Path, monitoring: Monitoring
) -> None:
    result = script(plain, "monitoring/check-golden-signals.sh",
                    env={**monitoring.env, "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 5, explain(result)
    assert "cannot reach Prometheus" in result.stdout
    result = script(plain, "monitoring/check-golden-signals.sh",
                    env={**monitoring.env, "PROM_SELECTOR": 'app="no-such-service"'})
    assert result.returncode == 4, explain(result)
    assert 'no scrape target is up for {app="no-such-service"}' in result.stdout


@pytest.mark.slow
def test_failed_canary_health_check_leads_to_rollback(
    cluster: Cluster, monitoring: Monitoring
) -> None:
    """The canary job as the pipeline runs it, with a canary that answers 5xx in Prometheus.

    (Kubernetes through the recording kubectl of the section below.)"""
    released(cluster, V1)
    job = (
        "scripts-ci/deploy/canary-deploy.sh --percent 5"
        " && scripts-ci/monitoring/check-canary-health.sh"
        " || { scripts-ci/deploy/rollback-deployment.sh --immediate; exit 1; }"
    )
    env = {**cluster.env, **monitoring.env, "IMAGE": V2, "PROM_SELECTOR_CANARY": 'app="faulty-errors"'}
    result = run(["bash", "-c", job], cwd=cluster.project, env=env, check=False)
    assert result.returncode == 1, explain(result)
    assert "FAIL errors 5xx: canary" in result.stdout
    assert cluster.weights() == (100, 0)
    assert cluster.deployment("my-service-canary")["spec"]["replicas"] == 0
    assert cluster.image("my-service") == V1


@dataclass
class Quiet:
    """A quiet production: Prometheus scraping a stable and canaries that get one request a second."""

    prometheus: Prometheus
    env: dict[str, str]


@pytest.fixture(scope="module")
def quiet() -> Iterator[Quiet]:
    """Stand-in services (tests/support/fake_service.py) scraped by a real Prometheus, each
    called once a second for the whole module: stable and a healthy canary (app my-service),
    a canary answering 5xx to one request in three (quiet-errors), one answering in 0.6 s
    (quiet-slow). Far under GS_MIN_REQUESTS (100) in any window the checks use."""
    ports = {name: free_port() for name in ("stable", "ok", "errors", "slow")}
    modes = {"stable": "ok", "ok": "ok", "errors": "errors", "slow": "slow"}
    services = subprocess.Popen(
        [sys.executable, str(HERE / "support" / "fake_service.py"),
         *[f"--listen={port}:{modes[name]}" for name, port in ports.items()]],
        stdout=subprocess.PIPE, text=True,
    )
    assert services.stdout is not None and services.stdout.readline().strip() == "ready"
    apps = {"stable": ("my-service", "stable"), "ok": ("my-service", "canary"),
            "errors": ("quiet-errors", "canary"), "slow": ("quiet-slow", "canary")}
    prometheus = Prometheus.start([
        (f"127.0.0.1:{ports[name]}", {"app": app, "track": track, "namespace": NAMESPACE})
        for name, (app, track) in apps.items()
    ])
    stop = threading.Event()

    def one_a_second(port: int) -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/work", timeout=5) as answer:
                    answer.read()
            except OSError:
                pass  # the injected 500s
            stop.wait(1.0)

    callers = [threading.Thread(target=one_a_second, args=(port,), daemon=True) for port in ports.values()]
    try:
        prometheus.wait_for_targets_up(4)
        for caller in callers:
            caller.start()
        time.sleep(15)  # some requests and scrapes before the first check
        yield Quiet(prometheus, {
            "PROMETHEUS_URL": prometheus.url, "GS_WINDOW": "30s", "CANARY_MAX_WAIT": "12s",
            "CANARY_POLL": "4s",
        })
    finally:
        stop.set()
        for caller in callers:
            caller.join(timeout=10)
        prometheus.stop()
        services.terminate()
        services.wait(timeout=10)


CANARY_JOB = (
    "scripts-ci/deploy/canary-deploy.sh --percent 5"
    " && scripts-ci/monitoring/check-canary-health.sh --report canary-health.json"
    " || { scripts-ci/deploy/rollback-deployment.sh --immediate; exit 1; }"
)


def run_canary_job(cluster: Cluster, quiet: Quiet, **env: str) -> subprocess.CompletedProcess[str]:
    """The canary step and its health check as the pipeline chains them, with rollback on failure."""
    released(cluster, V1)
    return run(["bash", "-c", CANARY_JOB], cwd=cluster.project,
               env={**cluster.env, **quiet.env, "IMAGE": V2, **env}, check=False)


def test_a_quiet_canary_at_one_request_a_second_completes(cluster: Cluster, quiet: Quiet) -> None:
    result = run_canary_job(cluster, quiet)
    assert result.returncode == 0, explain(result)
    assert "RESULT: INCONCLUSIVE (canary:" in result.stdout
    found = re.search(r"inconclusive: (\d+) requests, promoting on no evidence of harm within 12s "
                      r"\(0 slower than 500\.0 ms, 0 answered 5xx, 0 answered 4xx\)", result.stdout)
    assert found, explain(result)
    assert 5 <= int(found[1]) < 100
    assert "looking again in 4s" in result.stdout  # it watched longer before promoting
    assert cluster.weights() == (95, 5) and cluster.image("my-service-canary") == V2
    report = json.loads((cluster.project / "canary-health.json").read_text())
    assert report["verdict"] == "inconclusive" and report["requests"] < 100


def test_a_quiet_canary_fails_when_told_inconclusive_is_not_enough(cluster: Cluster, quiet: Quiet) -> None:
    result = run_canary_job(cluster, quiet, CANARY_INCONCLUSIVE="fail", CANARY_MAX_WAIT="0s")
    assert result.returncode == 1, explain(result)
    assert re.search(r"inconclusive: \d+ requests, not promoting \(CANARY_INCONCLUSIVE=fail\)", result.stdout)
    assert cluster.weights() == (100, 0)


@pytest.mark.parametrize(
    ("app", "harm"),
    [("quiet-errors", r"errors 5xx: canary had (\d+) of (\d+) requests answered 5xx"),
     ("quiet-slow", r"latency p95: canary had (\d+) of (\d+) requests slower than 500\.0 ms")],
    ids=["5xx", "latency"],
)
def test_a_quiet_canary_with_injected_harm_at_one_request_a_second_rolls_back(
    cluster: Cluster, quiet: Quiet, app: str, harm: str
) -> None:
    result = run_canary_job(cluster, quiet, PROM_SELECTOR_CANARY=f'app="{app}"')
    assert result.returncode == 1, explain(result)
    found = re.search(rf"FAIL {harm}.*significantly above .*p = \S+ < GS_SIGNIFICANCE 0.01", result.stdout)
    assert found, explain(result)
    assert int(found[2]) < 100 and int(found[1]) >= 3  # few requests, yet enough bad ones
    assert "looking again" not in result.stdout  # evidence of harm needs no more waiting
    assert cluster.weights() == (100, 0)
    assert cluster.deployment("my-service-canary")["spec"]["replicas"] == 0
    assert cluster.image("my-service") == V1


def test_a_quiet_canary_that_fails_its_synthetic_smoke_test_rolls_back(
    cluster: Cluster, quiet: Quiet
) -> None:
    """With CANARY_URL, the inconclusive canary gets smoke/sanity traffic: here it does not answer."""
    result = run_canary_job(cluster, quiet, CANARY_URL=f"http://127.0.0.1:{free_port()}",
                            CANARY_SMOKE_TIMEOUT="2")
    assert result.returncode == 1, explain(result)
    assert "driving synthetic traffic at the canary" in result.stdout
    assert "the canary fails its smoke test at http://127.0.0.1:" in result.stdout
    assert cluster.weights() == (100, 0)


def test_golden_signals_of_a_quiet_service_are_inconclusive_unless_harm_is_significant(
    rendered: Path, quiet: Quiet
) -> None:
    healthy = script(rendered, "monitoring/check-golden-signals.sh", "--window", "30s",
                     env={**quiet.env, "PROM_SELECTOR": 'app="my-service",track="stable"'})
    assert healthy.returncode == 6, explain(healthy)
    assert "INCONCLUSIVE traffic: service had" in healthy.stdout
    faulty = script(rendered, "monitoring/check-golden-signals.sh", "--window", "30s",
                    env={**quiet.env, "PROM_SELECTOR": 'app="quiet-errors"'})
    assert faulty.returncode == 1, explain(faulty)
    assert re.search(r"FAIL errors 5xx: service had \d+ of \d+ requests answered 5xx", faulty.stdout)


# ----------------------------------------------------------------- PostgreSQL: backup, restore

FAILING_MIGRATION = '''"""A migration that fails half-way, after changes that no transaction can take back."""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DELETE FROM items")
        op.execute("ALTER TABLE items DROP COLUMN description")
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    raise NotImplementedError
'''


@pytest.mark.slow
def test_backup_then_failed_migration_then_restore_brings_every_row_back(
    with_db: Path, postgres: Postgres, tmp_path: Path
) -> None:
    database = "backup_restore"
    url = migrated_database(postgres, with_db, database)
    postgres.psql(
        "INSERT INTO items (name, description) SELECT 'item ' || n, "
        "'row ' || n || E' with \\'quotes\\', ünïcode and\\na newline' FROM generate_series(1, 40) n",
        database,
    )
    rows = "SELECT id, name, description, created_at FROM items ORDER BY id"
    before = postgres.psql(rows, database)
    assert postgres.psql("SELECT count(*) FROM items", database) == "40"
    env = {"STAGING_DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://"),
           "BACKUP_DIR": str(tmp_path / "backups")}

    # No backup yet: restore refuses and touches nothing.
    refused = script(with_db, "db/restore-db.sh", "staging", env=env)
    assert refused.returncode == 4, explain(refused)
    assert "refusing to restore staging: no backup" in refused.stdout
    assert postgres.psql(rows, database) == before

    backup = script(with_db, "db/backup-db.sh", "staging", env=env)
    assert backup.returncode == 0, explain(backup)
    dump = Path(backup.stdout.strip().splitlines()[-1])
    assert re.fullmatch(r"staging-\d{8}T\d{6}Z\.dump", dump.name), dump.name
    assert dump.parent == tmp_path / "backups"
    assert "backup verified" in backup.stdout and "2 tables with data" in backup.stdout
    assert (dump.parent / f"{dump.name}.sha256").exists()
    assert "secret" not in backup.stdout

    # A migration that deletes the rows and drops a column, then fails.
    migrations = tmp_path / "migrations"
    shutil.copytree(with_db / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "0002_breaks_things.py").write_text(FAILING_MIGRATION)
    ini = (with_db / "alembic.ini").read_text().replace("%(here)s/migrations", str(migrations))
    (tmp_path / "alembic.ini").write_text(ini)
    migration = run([str(with_db / ".venv" / "bin" / "alembic"), "-c", str(tmp_path / "alembic.ini"),
                     "upgrade", "head"], cwd=with_db, env=project_env(with_db, DATABASE_URL=url),
                    check=False)
    assert migration.returncode != 0 and "division by zero" in migration.stdout
    assert postgres.psql("SELECT count(*) FROM items", database) == "0"

    restore = script(with_db, "db/restore-db.sh", "staging", env=env)
    assert restore.returncode == 0, explain(restore)
    assert f"restored staging from {dump}" in restore.stdout
    assert postgres.psql(rows, database) == before
    assert postgres.psql("SELECT version_num FROM alembic_version", database) == "0001"
    # The id sequence came back too: a new row does not collide with restored ones.
    new_id = postgres.psql("INSERT INTO items (name) VALUES ('after restore') RETURNING id", database)
    assert int(new_id.splitlines()[0]) > 40


@pytest.mark.slow
def test_restore_refuses_a_damaged_backup(with_db: Path, postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.create_database("damaged_backup")
    postgres.psql("CREATE TABLE numbers AS SELECT generate_series(1, 1000) AS n", "damaged_backup")
    env = {"PRODUCTION_DATABASE_URL": url, "BACKUP_DIR": str(tmp_path)}
    backup = script(with_db, "db/backup-db.sh", "prod", env=env)
    assert backup.returncode == 0, explain(backup)
    dump = Path(backup.stdout.strip().splitlines()[-1])
    assert dump.name.startswith("production-")
    with dump.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"garbage")
    result = script(with_db, "db/restore-db.sh", "production", env=env)
    assert result.returncode == 1, explain(result)
    assert "does not match its checksum" in result.stdout
    assert postgres.psql("SELECT count(*) FROM numbers", "damaged_backup") == "1000"


# ----------------------------------------------------------------- on-call webhook


@dataclass
class Receiver:
    url: str
    requests: list[dict[str, Any]]
    answers: list[int]  # status codes to answer, in order; 200 once they run out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    requests: list[dict[str, Any]] = []
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status = answers.pop(0) if answers else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"try again later")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    start_serving(server)
    yield Receiver(f"http://127.0.0.1:{server.server_port}/hooks/T000/secret", requests, answers)
    server.shutdown()


CI_VARIABLES = {
    "CI_PIPELINE_URL": "https://gitlab.example.com/acme/my-service/-/pipelines/4242",
    "CI_JOB_URL": "https://gitlab.example.com/acme/my-service/-/jobs/777",
    "CI_JOB_NAME": "post_deploy", "CI_PIPELINE_ID": "4242", "CI_ENVIRONMENT_NAME": "production",
    "CI_COMMIT_SHORT_SHA": "3f2c1a9", "CI_COMMIT_REF_NAME": "main",
}


def test_notify_oncall_posts_the_incident_with_its_links(rendered: Path, receiver: Receiver) -> None:
    project = rendered
    result = script(project, "alerts/notify-oncall.sh", "--reason", "golden signals failed: errors 5xx",
                    env={"ONCALL_WEBHOOK_URL": receiver.url, **CI_VARIABLES})
    assert result.returncode == 0, explain(result)
    assert "on-call notified (HTTP 200)" in result.stdout
    assert "secret" not in result.stdout  # the webhook URL is a credential: never logged
    [request] = receiver.requests
    assert request["path"] == "/hooks/T000/secret"
    assert request["headers"]["Content-Type"] == "application/json"
    message = json.loads(request["body"])
    assert message | {"timestamp": "-"} == {
        "event": "incident", "service": "my-service", "environment": "production",
        "severity": "critical", "reason": "golden signals failed: errors 5xx",
        "summary": "[critical] my-service in production: golden signals failed: errors 5xx",
        "pipeline_url": CI_VARIABLES["CI_PIPELINE_URL"], "job_url": CI_VARIABLES["CI_JOB_URL"],
        "job": "post_deploy", "commit": "3f2c1a9", "ref": "main", "project": "",
        "triggered_by": "", "runbook_url": "", "timestamp": "-",
    }


def test_notify_oncall_retries_until_the_receiver_takes_it(rendered: Path, receiver: Receiver) -> None:
    project = rendered
    receiver.answers.extend([503, 500])
    result = script(project, "alerts/notify-oncall.sh", "--format", "slack",
                    env={"ONCALL_WEBHOOK_URL": receiver.url, **CI_VARIABLES})
    assert result.returncode == 0, explain(result)
    assert len(receiver.requests) == 3
    assert len({request["body"] for request in receiver.requests}) == 1  # the same message
    assert "Will retry in 1 seconds" in result.stdout and "Will retry in 2 seconds" in result.stdout
    slack = json.loads(receiver.requests[-1]["body"])
    assert slack["text"] == "[critical] my-service in production: job post_deploy of pipeline 4242 failed"
    links = slack["blocks"][-1]["text"]["text"]
    assert f"<{CI_VARIABLES['CI_PIPELINE_URL']}|Pipeline>" in links
    assert f"<{CI_VARIABLES['CI_JOB_URL']}|Job>" in links


def test_notify_oncall_does_not_retry_a_rejected_message(rendered: Path, receiver: Receiver) -> None:
    project = rendered
    receiver.answers.extend([404] * 5)
    result = script(project, "alerts/notify-oncall.sh", env={"ONCALL_WEBHOOK_URL": receiver.url})
    assert result.returncode == 1, explain(result)
    assert len(receiver.requests) == 1
    assert "on-call NOT notified: the webhook answered HTTP 404" in result.stdout


# ----------------------------------------------------------------- Kubernetes: recording kubectl

V1 = "registry.example.com/acme/my-service:1111111"
V2 = "registry.example.com/acme/my-service:2222222"
BAD = "registry.example.com/acme/my-service:badbad0"
CHANGES = {"apply", "patch", "scale", "annotate", "set", "create", "delete"}


@dataclass
class Cluster:
    project: Path
    kubectl: FakeKubectl
    env: dict[str, str]

    def run(self, name: str, *args: str, image: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return script(self.project, name, *args, env={**self.env, "IMAGE": image, **env})

    def changes(self) -> list[str]:
        """The changing kubectl calls since the last look, as command lines (`-f <manifests>`)."""
        return [line for line in self.calls()
                if line.split()[0] in CHANGES and "--dry-run=client" not in line]

    def calls(self) -> list[str]:
        """Every kubectl call since the last look; the rendered file shows as `<manifests>`."""
        lines = []
        for call in self.kubectl.calls():
            call = ["<manifests>" if i and call[i - 1] == "-f" and arg != "-" else arg
                    for i, arg in enumerate(call)]
            lines.append(" ".join(call))
        return lines

    def weights(self) -> tuple[int, int]:
        route = self.kubectl.object("HTTPRoute", NAMESPACE, "my-service")
        assert route is not None
        refs = {ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]}
        return refs["my-service"], refs["my-service-canary"]

    def deployment(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        found = self.kubectl.object("Deployment", namespace, name)
        assert found is not None, f"no Deployment {name}"
        return found

    def image(self, name: str) -> str:
        return str(self.deployment(name)["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def cluster(rendered: Path, tmp_path: Path) -> Cluster:
    """An empty fake cluster and a copy of the project's manifests (deploy/)."""
    deploy = tmp_path / "deploy"
    shutil.copytree(rendered / "deploy", deploy)
    kubectl = FakeKubectl(tmp_path / "kube")
    return Cluster(rendered, kubectl, {**kubectl.env, "DEPLOY_DIR": str(deploy)})


def released(cluster: Cluster, image: str = V1) -> None:
    """The state after a first production release of `image`."""
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=image)
    assert result.returncode == 0, explain(result)
    cluster.kubectl.calls()


def test_staging_deploy_applies_the_overlay_and_waits_for_the_rollout(cluster: Cluster) -> None:
    result = cluster.run("deploy/deploy-to-staging.sh", image=V1)
    assert result.returncode == 0, explain(result)
    staging = "--namespace my-service-staging"
    calls = cluster.calls()
    assert calls[0].startswith("kustomize ")  # rendered by the real Kustomize
    assert calls[-2:] == [
        f"apply {staging} -f <manifests>",
        f"rollout status deployment/my-service {staging} --timeout 300s",
    ]
    staged = cluster.deployment("my-service", "my-service-staging")
    assert staged["spec"]["template"]["spec"]["containers"][0]["image"] == V1
    assert "my-service-staging" in result.stdout and "first deploy" in result.stdout

    # The next deploy remembers what ran before, for the rollback.
    result = cluster.run("deploy/deploy-to-staging.sh", image=V2, ROLLOUT_TIMEOUT="60s")
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [
        f"annotate deployment my-service {staging} --overwrite scripts-ci/previous-image={V1}",
        f"apply {staging} -f <manifests>",
    ]


def test_canary_steps_shift_traffic_and_promotion_makes_the_canary_stable(cluster: Cluster) -> None:
    prod = f"--namespace {NAMESPACE}"
    # No stable release yet: a canary has nothing to be compared with.
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V1)
    assert result.returncode == 2, explain(result)
    assert "the first production release goes straight to --percent 100" in result.stdout
    assert cluster.changes() == []

    released(cluster, V1)
    assert cluster.weights() == (100, 0)
    assert cluster.image("my-service") == V1

    for percent in (5, 25, 50):
        result = cluster.run("deploy/canary-deploy.sh", "--percent", str(percent), image=V2)
        assert result.returncode == 0, explain(result)
        calls = cluster.calls()
        changes = [line for line in calls if line.split()[0] in CHANGES]
        assert changes[0] == f"apply {prod} -f <manifests>"
        assert changes[1].startswith(f"patch httproute my-service {prod} --type merge -p ")
        assert len(changes) == 2
        patch = json.loads(changes[1].split(" -p ", 1)[1])
        assert patch["metadata"]["resourceVersion"]  # optimistic concurrency
        assert [ref["weight"] for ref in patch["spec"]["rules"][0]["backendRefs"]] == [100 - percent, percent]
        # The canary is ready before it gets traffic.
        rollout = calls.index(f"rollout status deployment/my-service-canary {prod} --timeout 300s")
        assert rollout < calls.index(changes[1])
        assert cluster.weights() == (100 - percent, percent)
        assert cluster.image("my-service-canary") == V2
        assert cluster.image("my-service") == V1  # stable untouched
        assert f"traffic: stable {100 - percent}% / canary {percent}%" in result.stdout

    # The same step again changes nothing but re-applying the same manifests.
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "50", image=V2)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [f"apply {prod} -f <manifests>"]

    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=V2)
    assert result.returncode == 0, explain(result)
    changes = cluster.changes()
    assert changes[:2] == [
        f"annotate deployment my-service {prod} --overwrite scripts-ci/previous-image={V1}",
        f"apply {prod} -f <manifests>",
    ]
    # Applying the production overlay puts the HTTPRoute's weights back to the manifest's
    # (stable 100 / canary 0), as kubectl apply does: no traffic patch is left to send.
    assert changes[2:] == [f"scale deployment my-service-canary {prod} --replicas 0"]
    assert cluster.weights() == (100, 0)
    assert "traffic already at stable 100% / canary 0%" in result.stdout
    assert cluster.image("my-service") == V2
    assert cluster.deployment("my-service")["spec"]["replicas"] > 0
    assert cluster.deployment("my-service-canary")["spec"]["replicas"] == 0

    # The next release's first step brings the canary back up (the canary overlay's replicas).
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V1)
    assert result.returncode == 0, explain(result)
    assert cluster.deployment("my-service-canary")["spec"]["replicas"] == 1
    assert cluster.weights() == (95, 5)


def test_canary_that_never_gets_ready_is_rolled_back(cluster: Cluster) -> None:
    released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=BAD,
                         FAKE_KUBECTL_UNHEALTHY=BAD)
    assert result.returncode == 1, explain(result)
    assert f"the canary {BAD} did not become ready" in result.stdout
    assert "rolling back automatically" in result.stdout
    assert cluster.weights() == (100, 0)  # never got traffic
    assert cluster.deployment("my-service-canary")["spec"]["replicas"] == 0
    assert cluster.image("my-service") == V1


def test_promotion_that_never_gets_ready_goes_back_to_the_previous_image(cluster: Cluster) -> None:
    released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=BAD,
                         FAKE_KUBECTL_UNHEALTHY=BAD)
    assert result.returncode == 1, explain(result)
    assert f"stable: {BAD} -> {V1}" in result.stdout
    assert cluster.image("my-service") == V1


def test_rollback_after_promotion_restores_the_previous_version_and_is_idempotent(
    cluster: Cluster,
) -> None:
    prod = f"--namespace {NAMESPACE}"
    released(cluster, V1)
    for percent in ("50", "100"):
        assert cluster.run("deploy/canary-deploy.sh", "--percent", percent, image=V2).returncode == 0
    cluster.kubectl.calls()

    container = cluster.deployment("my-service")["spec"]["template"]["spec"]["containers"][0]["name"]
    result = cluster.run("deploy/rollback-deployment.sh", "--immediate", image=V2)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [
        f"set image deployment/my-service {prod} {container}={V1}",
        f"annotate deployment my-service {prod} --overwrite scripts-ci/rolled-back-from={V2}",
    ]
    assert cluster.image("my-service") == V1
    assert cluster.weights() == (100, 0)

    again = cluster.run("deploy/rollback-deployment.sh", "--immediate", image=V2)
    assert again.returncode == 0, explain(again)
    assert cluster.changes() == []  # nothing left to undo, and no flip back to V2
    assert "stable already runs the previous version" in again.stdout
    assert cluster.image("my-service") == V1


def test_rollback_during_a_canary_leaves_stable_alone(cluster: Cluster) -> None:
    prod = f"--namespace {NAMESPACE}"
    released(cluster, V1)
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "25", image=V2).returncode == 0
    cluster.kubectl.calls()
    result = cluster.run("deploy/rollback-deployment.sh", image=V2, DRAIN_SECONDS="1")
    assert result.returncode == 0, explain(result)
    changes = cluster.changes()
    assert changes[0].startswith("patch httproute my-service")
    assert changes[1:] == [f"scale deployment my-service-canary {prod} --replicas 0"]
    assert "letting requests in flight on the canary finish (1s" in result.stdout
    assert "stable stays as it is" in result.stdout
    assert cluster.image("my-service") == V1
    assert cluster.weights() == (100, 0)


REGISTRY = "registry.example.com/acme/my-service"
SIGNED = f"{REGISTRY}@sha256:{'3' * 64}"


def test_in_ci_the_deploy_scripts_deploy_the_signed_digest_and_refuse_a_tag(cluster: Cluster) -> None:
    ci = {"GITLAB_CI": "true", "CI_REGISTRY_IMAGE": REGISTRY, "CI_COMMIT_SHA": "2222222"}
    # A tag (IMAGE, --image, or $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA) is refused, saying why.
    for args, env in ((("--image", V2), {}), ((), {"IMAGE": V2}), ((), {})):
        result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", *args, **ci, **env)
        assert result.returncode == 2, explain(result)
        assert "IMAGE_DIGEST" in result.stdout, explain(result)
        assert re.search(r"never a tag|refusing to deploy \S+ by tag", result.stdout), explain(result)
    # An empty IMAGE_DIGEST in "$CI_REGISTRY_IMAGE@$IMAGE_DIGEST", or a malformed digest.
    result = cluster.run("deploy/deploy-to-staging.sh", "--image", f"{REGISTRY}@", **ci)
    assert result.returncode == 2 and "IMAGE_DIGEST is empty" in result.stdout, explain(result)
    result = cluster.run("deploy/deploy-to-staging.sh", "--image", f"{REGISTRY}@sha256:abc", **ci)
    assert result.returncode == 2 and "malformed digest" in result.stdout, explain(result)
    assert cluster.changes() == []
    # IMAGE_DIGEST alone is enough: $CI_REGISTRY_IMAGE@$IMAGE_DIGEST, down to the manifests.
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", **ci,
                         IMAGE_DIGEST=SIGNED.split("@")[1])
    assert result.returncode == 0, explain(result)
    assert cluster.image("my-service") == SIGNED
    assert f"image: {SIGNED}" in cluster.kubectl.applied()[-1].read_text()


def test_in_ci_a_rollback_without_the_failed_digest_stops_the_canary_but_leaves_stable(
    cluster: Cluster,
) -> None:
    released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=SIGNED)
    assert result.returncode == 0 and cluster.image("my-service") == SIGNED, explain(result)
    cluster.kubectl.calls()
    # No IMAGE_DIGEST in CI: stable may or may not run the failed release; it stays, the
    # job fails (2) after the safe steps.
    result = cluster.run("deploy/rollback-deployment.sh", "--immediate", GITLAB_CI="true",
                         CI_REGISTRY_IMAGE=REGISTRY, CI_COMMIT_SHA="2222222")
    assert result.returncode == 2, explain(result)
    assert "IMAGE_DIGEST is not set" in result.stdout and "stays as it is" in result.stdout
    assert cluster.image("my-service") == SIGNED and cluster.weights() == (100, 0)
    # With the digest, stable goes back to what it ran before.
    result = cluster.run("deploy/rollback-deployment.sh", "--immediate", GITLAB_CI="true",
                         CI_REGISTRY_IMAGE=REGISTRY, IMAGE_DIGEST=SIGNED.split("@")[1])
    assert result.returncode == 0, explain(result)
    assert f"failed image {SIGNED}" in result.stdout
    assert cluster.image("my-service") == V1


def test_dry_run_shows_the_changes_and_makes_none(cluster: Cluster) -> None:
    released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "25", "--dry-run", image=V2)
    assert result.returncode == 0, explain(result)
    calls = cluster.calls()
    assert not [line for line in calls if line.split()[0] in CHANGES]
    assert any(line.startswith(f"diff --namespace {NAMESPACE} -f") for line in calls)
    assert "dry-run, would run: kubectl apply" in result.stdout
    assert "dry-run, would run: kubectl patch httproute my-service" in result.stdout
    assert cluster.weights() == (100, 0)

    for name, args in (("deploy/deploy-to-staging.sh", ()), ("deploy/rollback-deployment.sh", ("--immediate",))):
        result = cluster.run(name, *args, "--dry-run", image=V2)
        assert result.returncode == 0, explain(result)
        assert not cluster.changes()


def test_manifests_that_do_not_match_the_contract_are_refused(cluster: Cluster) -> None:
    deploy = Path(cluster.env["DEPLOY_DIR"])
    # A canary overlay that would also carry the stable Deployment.
    shutil.copytree(deploy / "overlays" / "canary", deploy / "overlays" / "canary-only")
    (deploy / "overlays" / "canary" / "kustomization.yaml").write_text(
        "resources:\n  - ../canary-only\n  - ../../base\n")
    released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V2)
    assert result.returncode == 2, explain(result)
    assert "must not contain Deployment/my-service" in result.stdout
    # An image name Kustomize cannot find in the manifests.
    result = cluster.run("deploy/deploy-to-staging.sh", image=V2, KUSTOMIZE_IMAGE_NAME="other")
    assert result.returncode == 2, explain(result)
    assert "does not run registry.example.com/acme/my-service:2222222" in result.stdout
    assert not cluster.changes()


def test_applied_manifests_render_and_validate(cluster: Cluster) -> None:
    """Every overlay renders with `kubectl kustomize`; what the scripts applied validates."""
    deploy = Path(cluster.env["DEPLOY_DIR"])
    for overlay in ("staging", "production", "canary"):
        run(["kubectl", "kustomize", str(deploy / "overlays" / overlay)])
    assert cluster.run("deploy/deploy-to-staging.sh", image=V1).returncode == 0
    released(cluster, V1)
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V2).returncode == 0
    applied = cluster.kubectl.applied()
    assert len(applied) == 3
    result = run([str(VENV_BIN / "kubernetes-validate"), "--strict", *map(str, applied)])
    assert "passed for resource deployment/my-service" in result.stdout
    assert "passed for resource deployment/my-service-canary" in result.stdout
    for path in applied:
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "Deployment":
                images = {c["image"] for c in document["spec"]["template"]["spec"]["containers"]}
                assert images <= {V1, V2}, images
            if document["kind"] == "HTTPRoute":  # no schema offline: check what the scripts use
                refs = [ref["name"] for rule in document["spec"]["rules"] for ref in rule["backendRefs"]]
                assert {"my-service", "my-service-canary"} <= set(refs)


# ----------------------------------------------------------------- Kubernetes: the batch (serves_http false)

V3 = "registry.example.com/acme/my-service:3333333"
STAGING = "my-service-staging"


@dataclass
class BatchCluster(Cluster):
    def cronjob(self, name: str = "my-service", namespace: str = NAMESPACE) -> dict[str, Any]:
        found = self.kubectl.object("CronJob", namespace, name)
        assert found is not None, f"no CronJob {name} in {namespace}"
        return found

    def cron_image(self, name: str = "my-service", namespace: str = NAMESPACE) -> str:
        spec = self.cronjob(name, namespace)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return str(spec["containers"][0]["image"])

    def job(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        found = self.kubectl.object("Job", namespace, name)
        assert found is not None, f"no Job {name} in {namespace}"
        return found

    def jobs(self, namespace: str = NAMESPACE) -> list[str]:
        state = json.loads((self.kubectl.directory / "state.json").read_text())
        return sorted(key.rsplit("/", 1)[1] for key in state if key.startswith(f"{namespace}/Job/"))


def container(job: dict[str, Any]) -> dict[str, Any]:
    [app] = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    return app


def share_env(job: dict[str, Any]) -> str | None:
    values = [v["value"] for v in container(job).get("env", []) if v["name"] == "PIPELINE_SHARE"]
    return values[0] if values else None


@pytest.fixture
def batch_cluster(batch: Path, tmp_path: Path) -> BatchCluster:
    """An empty fake cluster and a copy of the project's batch manifests (deploy/)."""
    source = batch / "deploy"
    deploy = tmp_path / "deploy"
    shutil.copytree(source, deploy)
    kubectl = FakeKubectl(tmp_path / "kube")
    env = {**kubectl.env, "DEPLOY_DIR": str(deploy), "JOB_POLL_SECONDS": "0.1"}
    return BatchCluster(batch, kubectl, env)


def batch_released(cluster: BatchCluster, image: str = V1) -> None:
    """The state after a first production release of `image`."""
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=image)
    assert result.returncode == 0, explain(result)
    cluster.kubectl.calls()


def test_batch_staging_deploy_applies_the_cronjob_and_runs_a_sample_job(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    staging = f"--namespace {STAGING}"
    result = cluster.run("deploy/deploy-to-staging.sh", image=V1)
    assert result.returncode == 0, explain(result)
    calls = cluster.calls()
    assert calls[0].startswith("kustomize ")  # rendered by the real Kustomize
    job = "my-service-staging-1111111"
    assert f"create job {job} --from=cronjob/my-service {staging} --dry-run=client -o json" in calls
    assert [line for line in calls if line.split()[0] in CHANGES and "--dry-run" not in line] == [
        f"apply {staging} -f <manifests>",
        f"create {staging} -f -",
    ]
    assert calls.index(f"apply {staging} -f <manifests>") < calls.index(f"create {staging} -f -")
    assert calls[-1] == f"logs job/{job} {staging}"
    assert cluster.cron_image(namespace=STAGING) == V1
    created = cluster.job(job, STAGING)
    assert created["metadata"]["labels"].items() >= {"scripts-ci/run": "staging", "track": "stable",
                                                     "app.kubernetes.io/name": "my-service"}.items()
    assert created["metadata"]["ownerReferences"][0]["name"] == "my-service"  # from the live CronJob
    assert container(created)["image"] == V1 and share_env(created) is None
    # The Job's logs are printed: staging's configuration runs it on a 5% sample.
    assert f"----- logs of job/{job} -----" in result.stdout
    assert '"message": "PIPELINE_SHARE=0.05"' in result.stdout
    assert "first deploy of CronJob my-service" in result.stdout
    assert "the sample run passed" in result.stdout

    # The next deploy remembers what ran before, for the rollback.
    result = cluster.run("deploy/deploy-to-staging.sh", image=V2)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [
        f"annotate cronjob my-service {staging} --overwrite scripts-ci/previous-image={V1}",
        f"apply {staging} -f <manifests>",
        f"create {staging} -f -",
    ]
    # A retry of the same CI job replaces its finished Job of the same name.
    result = cluster.run("deploy/deploy-to-staging.sh", image=V2)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [
        f"apply {staging} -f <manifests>",
        f"delete job my-service-staging-2222222 {staging} --cascade=foreground --wait=true",
        f"create {staging} -f -",
    ]
    assert cluster.jobs(STAGING) == ["my-service-staging-1111111", "my-service-staging-2222222"]
    assert cluster.cronjob(namespace=STAGING)["metadata"]["annotations"]["scripts-ci/previous-image"] == V1


def test_batch_failing_staging_run_fails_with_its_logs(batch_cluster: BatchCluster) -> None:
    result = batch_cluster.run("deploy/deploy-to-staging.sh", image=BAD, FAKE_KUBECTL_UNHEALTHY=BAD)
    assert result.returncode == 1, explain(result)
    job = "my-service-staging-badbad0"
    assert f"Job {job} failed: BackoffLimitExceeded" in result.stdout
    assert "check failed: accuracy 0.41 is below 0.80" in result.stdout  # its logs
    assert f"pods of job/{job} and recent events" in result.stdout
    assert f"{job}-x7k2p" in result.stdout and "Error" in result.stdout
    assert "rollback-deployment.sh --env staging" in result.stdout


def test_batch_canary_steps_run_on_a_share_and_promotion_remembers_the_previous_image(
    batch_cluster: BatchCluster,
) -> None:
    cluster = batch_cluster
    prod = f"--namespace {NAMESPACE}"
    # The first release goes straight to a full run: nothing to remember yet.
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=V1)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [f"apply {prod} -f <manifests>", f"create {prod} -f -"]
    assert "first deploy of CronJob my-service" in result.stdout
    assert cluster.cron_image() == V1

    for percent, share in ((5, "0.05"), (25, "0.25"), (50, "0.5")):
        result = cluster.run("deploy/canary-deploy.sh", "--percent", str(percent), image=V2)
        assert result.returncode == 0, explain(result)
        calls = cluster.calls()
        assert f"create job my-service-canary-step-p{percent}-2222222 --from=cronjob/my-service-canary {prod} --dry-run=client -o json" in calls
        assert [line for line in calls if line.split()[0] in CHANGES and "--dry-run" not in line] == [
            f"apply {prod} -f <manifests>", f"create {prod} -f -"]
        job = cluster.job(f"my-service-canary-step-p{percent}-2222222")
        assert share_env(job) == share
        assert container(job)["image"] == V2
        assert job["metadata"]["labels"]["track"] == "canary"
        assert job["metadata"]["labels"]["scripts-ci/run"] == "step"
        assert f'"message": "PIPELINE_SHARE={share}"' in result.stdout
        assert f"canary at {percent}%" in result.stdout
        assert cluster.cron_image("my-service-canary") == V2
        assert cluster.cronjob("my-service-canary")["spec"]["suspend"] is True
        assert cluster.cron_image() == V1  # stable untouched

    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=V2)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [
        f"annotate cronjob my-service {prod} --overwrite scripts-ci/previous-image={V1}",
        f"apply {prod} -f <manifests>",
        f"create {prod} -f -",
    ]
    release = cluster.job("my-service-release-p100-2222222")
    assert share_env(release) == "1" and release["metadata"]["labels"]["track"] == "stable"
    assert cluster.cron_image() == V2
    assert "promoted: CronJob my-service runs" in result.stdout


def test_batch_failing_canary_run_fails_the_step_with_logs_and_rolls_back(
    batch_cluster: BatchCluster,
) -> None:
    cluster = batch_cluster
    batch_released(cluster, V1)
    # The new version passes on a small share, fails its checks on a larger one.
    knob = {"FAKE_KUBECTL_FAIL_ABOVE_SHARE": "0.3"}
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "25", image=V2, **knob)
    assert result.returncode == 0, explain(result)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "50", image=V2, **knob)
    assert result.returncode == 1, explain(result)
    job = "my-service-canary-step-p50-2222222"
    assert f"Job {job} failed" in result.stdout
    assert "check failed: accuracy 0.41 is below 0.80" in result.stdout
    assert f"pods of job/{job}" in result.stdout
    assert "rolling back automatically" in result.stdout
    assert "stable runs registry.example.com/acme/my-service:1111111 and no previous version" in result.stdout
    assert cluster.cron_image() == V1


def test_batch_failing_promotion_goes_back_to_the_previous_image(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    batch_released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=BAD,
                         FAKE_KUBECTL_UNHEALTHY=BAD)
    assert result.returncode == 1, explain(result)
    assert "the full production run of" in result.stdout
    assert f"stable: {BAD} -> {V1}" in result.stdout
    assert cluster.cron_image() == V1
    assert cluster.cronjob()["metadata"]["annotations"]["scripts-ci/rolled-back-from"] == BAD

    # Without AUTO_ROLLBACK the failed image stays for a person to look at.
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=BAD,
                         FAKE_KUBECTL_UNHEALTHY=BAD, AUTO_ROLLBACK="false")
    assert result.returncode == 1, explain(result)
    assert "rolling back" not in result.stdout
    # Applying the manifests puts their image back over the rollback's `kubectl set image`.
    assert cluster.cron_image() == BAD


def test_batch_rollback_stops_canary_runs_restores_the_previous_image_and_is_idempotent(
    batch_cluster: BatchCluster,
) -> None:
    cluster = batch_cluster
    prod = f"--namespace {NAMESPACE}"
    batch_released(cluster, V1)
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=V2).returncode == 0
    # A canary run of the next version that never finishes: the step times out.
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V3, JOB_TIMEOUT="1s",
                         FAKE_KUBECTL_PENDING=V3, AUTO_ROLLBACK="false")
    assert result.returncode == 1, explain(result)
    assert "did not finish within 1s" in result.stdout
    running = "my-service-canary-step-p5-3333333"
    assert not cluster.job(running)["status"].get("conditions")
    cluster.kubectl.calls()

    result = cluster.run("deploy/rollback-deployment.sh", image=V2, DRAIN_SECONDS="1",
                         FAKE_KUBECTL_PENDING=V3)
    assert result.returncode == 0, explain(result)
    assert f"letting running Jobs finish (up to 1s; --immediate skips this): {running}" in result.stdout
    assert cluster.changes() == [
        f"delete job {running} {prod} --ignore-not-found --cascade=foreground --wait=true",
        f"set image cronjob/my-service {prod} app={V1}",
        f"annotate cronjob my-service {prod} --overwrite scripts-ci/rolled-back-from={V2}",
    ]
    assert cluster.cron_image() == V1
    assert running not in cluster.jobs()
    assert "my-service-release-p100-2222222" in cluster.jobs()  # finished Jobs keep their logs

    again = cluster.run("deploy/rollback-deployment.sh", "--immediate", image=V2)
    assert again.returncode == 0, explain(again)
    assert cluster.changes() == []  # nothing left to undo, and no flip back to V2
    assert "stable already runs the previous version" in again.stdout
    assert cluster.cron_image() == V1


def test_batch_rollback_during_a_canary_leaves_stable_alone(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    batch_released(cluster, V1)
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "100", image=V2).returncode == 0
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "25", image=V3).returncode == 0
    cluster.kubectl.calls()
    result = cluster.run("deploy/rollback-deployment.sh", "--immediate", image=V3)
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == []
    assert f"stable runs {V2}, not the failed {V3}: stable stays as it is" in result.stdout
    assert cluster.cron_image() == V2


def test_run_batch_job_runs_a_command_from_the_live_cronjob(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    prod = f"--namespace {NAMESPACE}"
    # Nothing deployed in staging: says what to do.
    result = cluster.run("deploy/run-batch-job.sh", "--env", "staging", "--", "smoke")
    assert result.returncode == 1, explain(result)
    assert f"no CronJob my-service in {STAGING} to run a Job from: deploy it first" in result.stdout

    batch_released(cluster, V1)
    result = cluster.run("deploy/run-batch-job.sh", "--env", "production", "--", "promote", "--alias", "champion")
    assert result.returncode == 0, explain(result)
    job = cluster.job("my-service-promote-1111111")
    assert container(job)["args"] == ["promote", "--alias", "champion"]
    assert share_env(job) is None
    assert job["metadata"]["labels"]["scripts-ci/run"] == "promote"
    assert job["spec"]["template"]["metadata"]["labels"]["scripts-ci/run"] == "promote"
    assert '"args": ["promote", "--alias", "champion"]' in result.stdout  # the logs
    assert "the batch Job succeeded" in result.stdout
    assert cluster.changes() == [f"create {prod} -f -"]

    # From the canary template, on a share.
    result = cluster.run("deploy/run-batch-job.sh", "--env", "prod", "--from", "my-service-canary",
                         "--share", "0.1", "--", "smoke")
    assert result.returncode == 1, explain(result)  # no canary CronJob yet
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V2).returncode == 0
    result = cluster.run("deploy/run-batch-job.sh", "--env", "prod", "--from", "my-service-canary",
                         "--share", "0.1", "--", "smoke")
    assert result.returncode == 0, explain(result)
    smoke = cluster.job("my-service-canary-smoke-p10-2222222")
    assert share_env(smoke) == "0.1" and container(smoke)["args"] == ["smoke"]
    assert smoke["metadata"]["labels"]["track"] == "canary"

    # A failing run: exit 1 with its logs, pods and events.
    result = cluster.run("deploy/run-batch-job.sh", "--env", "production", "--", "rollback",
                         FAKE_KUBECTL_UNHEALTHY=V1)
    assert result.returncode == 1, explain(result)
    assert "check failed" in result.stdout and "pods of job/my-service-rollback-1111111" in result.stdout
    assert "the batch Job failed" in result.stdout

    # A run that does not finish in time, then a retry while it still runs.
    pending = {"FAKE_KUBECTL_PENDING": V1}
    result = cluster.run("deploy/run-batch-job.sh", "--env", "production", "--timeout", "1s", **pending)
    assert result.returncode == 1, explain(result)
    assert "Job my-service-run-1111111 did not finish within 1s" in result.stdout
    result = cluster.run("deploy/run-batch-job.sh", "--env", "production", "--timeout", "1s", **pending)
    assert result.returncode == 1, explain(result)
    assert "Job my-service-run-1111111 from an earlier attempt is still running" in result.stdout


def test_batch_job_names_are_deterministic_and_fit_kubernetes(batch: Path) -> None:
    lib = batch / "scripts-ci" / "lib"
    cases = {
        ("my-service", "step", "0.05", V2): "my-service-step-p5-2222222",
        ("my-service", "release", "1", f"{V1}@sha256:{'ab' * 32}"): f"my-service-release-p100-{'ab' * 6}",
        ("x" * 70, "evaluate", "0.125", "reg/x:V1.2_rc"): "x" * 40 + "-evaluate-p12-5-v1-2-rc",
    }
    for (cron, purpose, share, image), expected in cases.items():
        result = run(["bash", "-c", f'source {lib}/common.sh; source {lib}/k8s.sh; source {lib}/batch.sh; '
                      f'job_name "$@"', "-", cron, purpose, share, image])
        name = result.stdout.strip().splitlines()[-1]
        assert name == expected and len(name) <= 63, name
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name


def test_batch_dry_run_shows_the_changes_and_makes_none(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    batch_released(cluster, V1)
    before = json.loads((cluster.kubectl.directory / "state.json").read_text())
    for name, args in (
        ("deploy/canary-deploy.sh", ("--percent", "25")),
        ("deploy/canary-deploy.sh", ("--percent", "100")),
        ("deploy/deploy-to-staging.sh", ()),
        ("deploy/rollback-deployment.sh", ("--immediate",)),
        ("deploy/run-batch-job.sh", ("--env", "production", "--", "promote")),
    ):
        result = cluster.run(name, "--dry-run", *args, image=V2)
        assert result.returncode == 0, explain(result)
        assert cluster.changes() == [], name
        if name != "deploy/rollback-deployment.sh":
            assert "dry-run, would run: kubectl create" in result.stdout or \
                "dry-run, would run a Job from cronjob/" in result.stdout, explain(result)
    assert json.loads((cluster.kubectl.directory / "state.json").read_text()) == before
    result = cluster.run("deploy/canary-deploy.sh", "--dry-run", "--percent", "100", image=V2)
    assert f"once applied, the Job below would run {V2}" in result.stdout
    assert "Job my-service-release-p100-2222222 from cronjob/my-service" in result.stdout
    result = cluster.run("deploy/run-batch-job.sh", "--env", "production", "--dry-run", "--", "promote")
    assert "Job my-service-promote-1111111 from cronjob/my-service: image " + V1 + ', args ["promote"]' in result.stdout


def test_batch_manifests_that_do_not_match_the_contract_are_refused(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    deploy = Path(cluster.env["DEPLOY_DIR"])
    canary = deploy / "overlays" / "canary" / "kustomization.yaml"
    canary.write_text(canary.read_text().split("patches:")[0])  # no longer suspended
    batch_released(cluster, V1)
    result = cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V2)
    assert result.returncode == 2, explain(result)
    assert "CronJob my-service-canary must have spec.suspend: true" in result.stdout
    result = cluster.run("deploy/deploy-to-staging.sh", image=V2, KUSTOMIZE_IMAGE_NAME="other")
    assert result.returncode == 2, explain(result)
    assert "does not run registry.example.com/acme/my-service:2222222" in result.stdout
    result = cluster.run("deploy/run-batch-job.sh", "--env", "production", JOB_CONTAINER="main")
    assert result.returncode == 2, explain(result)
    assert "CronJob my-service has no container named 'main'" in result.stdout
    assert not cluster.changes()


def test_batch_applied_manifests_validate(batch_cluster: BatchCluster) -> None:
    cluster = batch_cluster
    assert cluster.run("deploy/deploy-to-staging.sh", image=V1).returncode == 0
    batch_released(cluster, V1)
    assert cluster.run("deploy/canary-deploy.sh", "--percent", "5", image=V2).returncode == 0
    applied = cluster.kubectl.applied()
    assert len(applied) == 3
    result = run([str(VENV_BIN / "kubernetes-validate"), "--strict", *map(str, applied)])
    assert "passed for resource cronjob/my-service" in result.stdout
    assert "passed for resource cronjob/my-service-canary" in result.stdout


# ----------------------------------------------------------------- Prometheus: pipeline freshness

FRESHNESS_SERIES = [
    # (job, environment, track, last success (seconds ago), last failure (seconds ago))
    ("my-service", "production", "stable", 3600, None),
    ("my-service", "production", "canary", None, 60),  # a failed canary run never counts
    ("my-service", "staging", "stable", 30 * 3600, None),
    ("failed-pipeline", "production", "stable", 2 * 3600, 3600),
    ("never-pipeline", "production", "stable", None, 600),
]


@pytest.fixture(scope="module")
def pushed_metrics() -> Iterator[Monitoring]:
    """A real Prometheus scraping what a Pushgateway would expose after the pipeline's pushes
    (grouping key job, environment, track), with honor_labels as a Pushgateway is scraped."""
    now = time.time()
    lines = ["# TYPE pipeline_last_success_timestamp_seconds gauge",
             "# TYPE pipeline_last_failure_timestamp_seconds gauge"]
    for job, environment, track, success, failure in FRESHNESS_SERIES:
        labels = f'environment="{environment}",job="{job}",track="{track}"'
        for name, ago in (("success", success), ("failure", failure)):
            if ago is not None:
                lines.append(f"pipeline_last_{name}_timestamp_seconds{{{labels}}} {now - ago:.3f}")
    body = ("\n".join(lines) + "\n").encode()

    class Exporter(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    start_serving(server)
    # The Pushgateway's own target labels; its series keep their job (honor_labels).
    target = (f"127.0.0.1:{server.server_port}", {"namespace": "monitoring"})
    prometheus = Prometheus.start([target], honor_labels=True)
    try:
        deadline = time.monotonic() + 30
        expected = len(lines) - 2
        while len(prometheus.query('{__name__=~"pipeline_last_.*"}')) < expected:
            assert time.monotonic() < deadline, prometheus.log()
            time.sleep(0.3)
        yield Monitoring(prometheus, {"PROMETHEUS_URL": prometheus.url})
    finally:
        prometheus.stop()
        server.shutdown()


def test_pipeline_freshness_passes_after_a_recent_success(batch: Path, pushed_metrics: Monitoring) -> None:
    report = pushed_metrics.prometheus.workdir / "freshness.json"
    result = script(batch, "monitoring/check-pipeline-freshness.sh", "--env", "production",
                    "--report", str(report), env=pushed_metrics.env)
    assert result.returncode == 0, explain(result)
    assert '{job="my-service",environment="production",track="stable"}' in result.stdout
    assert re.search(r"^last success +\S+ \((0h59m|1h00m) ago\) +<= 26h ago +ok$", result.stdout, re.M)
    assert re.search(r"^last failure +none +before the last success +ok$", result.stdout, re.M)
    assert "RESULT: PASS" in result.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["last_failure"] is None
    assert 3500 < data["evaluated_at"] - data["last_success"] < 3700
    assert data["max_age_seconds"] == 26 * 3600


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--env", "production", "--max-age", "30m"], {}, 1, "FAIL the last success is 0h59m old, more than 30m"),
        (["--env", "staging"], {}, 1, "FAIL the last success is 30h00m old, more than 26h"),
        (["--env", "production"], {"SERVICE_NAME": "failed-pipeline"}, 1, "after the last success"),
        (["--env", "production"], {"SERVICE_NAME": "never-pipeline"}, 1, "and never succeeded"),
        (["--env", "production"], {"SERVICE_NAME": "absent-pipeline"}, 4, "RESULT: NO DATA"),
        (["--env", "production"], {"PROM_SELECTOR": 'job=~"("'}, 2, "Prometheus refused the query"),
    ],
    ids=["too-old-for-max-age", "stale", "failed-after-success", "never-succeeded", "no-series", "bad-selector"],
)
def test_pipeline_freshness_fails_and_says_why(
    batch: Path, pushed_metrics: Monitoring, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    result = script(batch, "monitoring/check-pipeline-freshness.sh", *args,
                    env={**pushed_metrics.env, **env})
    assert result.returncode == code, explain(result)
    if "0h59m" in message:  # the clock moves: a success just over an hour old reads 1h00m too
        assert re.search(r"FAIL the last success is (0h59m|1h00m) old, more than 30m", result.stdout)
    elif "30h00m" in message:
        assert re.search(r"FAIL the last success is (29h59m|30h00m|30h01m) old, more than 26h", result.stdout)
    else:
        assert message in result.stdout, explain(result)
    if code == 1:
        assert "RESULT: FAIL" in result.stdout


def test_pipeline_freshness_reports_an_unreachable_prometheus(batch: Path) -> None:
    result = script(batch, "monitoring/check-pipeline-freshness.sh", "--env", "production",
                    env={"PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 5, explain(result)
    assert "cannot reach Prometheus at http://127.0.0.1:" in result.stdout


# ---------------------------------------------------------------- GitOps: waiting for Argo CD
# gitops-promote.sh pushes to a local bare repository and asks a stand-in for Argo CD's API
# (tests/support/gitops.py) that "syncs" the branch head with the verdict each test sets.


@pytest.fixture(scope="module")
def gitops(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(copier_template, tmp_path_factory.mktemp("gitops") / "project", {"deploy_mode": "gitops"})


@dataclass
class GitOps:
    project: Path
    bare: Path
    argocd: FakeArgoCD
    tmp_path: Path

    def promote(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return script(self.project, "deploy/gitops-promote.sh", *args,
                      env={"GITOPS_REPO_URL": f"file://{self.bare}", **GIT_ENV, **self.argocd.env, **env})

    def stop(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return script(self.project, "deploy/gitops-stop-staging.sh", *args,
                      env={"GITOPS_REPO_URL": f"file://{self.bare}", **GIT_ENV, **self.argocd.env, **env})

    def log(self) -> list[str]:
        return run(["git", "--git-dir", str(self.bare), "log", "--format=%s", "main"]).stdout.splitlines()

    def changed(self, before: str) -> list[str]:
        """The files the commits since `before` changed."""
        return run(["git", "--git-dir", str(self.bare), "diff", "--name-only", before, "main"]).stdout.split()

    def staging(self) -> dict[str, tuple[str, int | None]]:
        return running_gitops(self.bare, self.tmp_path, "my-service", "staging")

    def head(self) -> str:
        return self.argocd.head()

    def production(self) -> tuple[list[str], list[int]]:
        return rendered_gitops(self.bare, self.tmp_path, "my-service", "production")


@pytest.fixture
def gitops_repo(gitops: Path, tmp_path: Path) -> Iterator[GitOps]:
    bare = gitops_repository(tmp_path, "my-service")
    with fake_argocd(bare) as argocd:
        yield GitOps(gitops, bare, argocd, tmp_path)


def test_gitops_promotion_waits_until_argo_cd_is_synced_and_healthy_at_its_commit(gitops_repo: GitOps) -> None:
    result = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa")
    assert result.returncode == 0, explain(result)
    head = gitops_repo.head()
    # It saw the old revision, then Progressing, then Synced and Healthy at its own commit.
    assert "my-service-staging: sync OutOfSync at " in result.stdout
    assert f"my-service-staging: sync Synced at {head[:12]}, health Progressing" in result.stdout
    assert f"my-service-staging is Synced and Healthy at {head[:12]}" in result.stdout
    requests = gitops_repo.argocd.requests
    assert {r["path"] for r in requests} == {"/api/v1/applications/my-service-staging"}
    assert {r["authorization"] for r in requests} == {f"Bearer {ARGOCD_TOKEN}"}
    assert requests[0]["query"] == {"refresh": ["normal"]}  # Argo CD looks at Git now, not in 3 minutes
    assert len(requests) == 3
    # The token is not on curl's command line (ps would show it) nor in the log.
    assert ARGOCD_TOKEN not in result.stdout


def test_gitops_promotion_accepts_a_later_commit_that_contains_its_own(gitops_repo: GitOps) -> None:
    """Another service's promotion lands in the same repository right after ours: Argo CD
    reports that later commit, which contains ours."""
    other = gitops_repo.tmp_path / "other"

    def someone_else_pushes(sync: Sync) -> dict[str, Any]:
        if sync.polls == 1 and "reg/my-service:aaa" in sync.component and not other.exists():
            run(["git", "clone", "--quiet", str(gitops_repo.bare), str(other)])
            (other / "apps" / "another-service.yaml").write_text("kind: Nothing\n")
            git_commit_all(other, "deploy(staging): another service")
            run(["git", "push", "--quiet", "origin", "HEAD:main"], cwd=other)
        return {"sync": "Synced", "health": "Healthy"}

    gitops_repo.argocd.verdicts["my-service-staging"] = someone_else_pushes
    result = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa")
    assert result.returncode == 0, explain(result)
    assert gitops_repo.log()[:2] == ["deploy(staging): another service", "deploy(staging): reg/my-service:aaa"]
    assert "my-service-staging is Synced and Healthy" in result.stdout


def test_a_degraded_promotion_is_reverted_and_the_revert_waited_for(gitops_repo: GitOps) -> None:
    assert gitops_repo.promote("--env", "production", "--image", "reg/my-service:good").returncode == 0
    gitops_repo.argocd.verdicts["my-service-production"] = degraded_when("reg/my-service:bad")
    result = gitops_repo.promote("--env", "production", "--image", "reg/my-service:bad")
    assert result.returncode == 1, explain(result)
    assert 'is Degraded at' in result.stdout and "exceeded its progress deadline" in result.stdout
    assert gitops_repo.log()[:3] == ['Revert "deploy(production): reg/my-service:bad"',
                                     "deploy(production): reg/my-service:bad",
                                     "deploy(production): reg/my-service:good"]
    revert = gitops_repo.head()
    assert "rolled back: reverted" in result.stdout and f"as {revert[:12]}" in result.stdout
    assert ("promotion failed and was rolled back: deploy(production): reg/my-service:bad did not become "
            "Synced and Healthy") in result.stdout
    assert f"the revert {revert[:12]} is Synced and Healthy" in result.stdout
    assert gitops_repo.production() == (["reg/my-service:good"] * 2, [100, 0])
    # The rollback job that follows (when: on_failure) knows the failed release: stable does not
    # run it any more, so it changes nothing.
    rollback = gitops_repo.promote("--env", "production", "--rollback", "--image", "reg/my-service:bad")
    assert rollback.returncode == 0, explain(rollback)
    assert "not the failed release reg/my-service:bad: nothing to roll back" in rollback.stdout
    assert gitops_repo.production() == (["reg/my-service:good"] * 2, [100, 0])


def test_a_canary_step_whose_sync_fails_is_reverted_and_the_rollback_job_stops_the_canary(gitops_repo: GitOps) -> None:
    assert gitops_repo.promote("--env", "production", "--image", "reg/my-service:good").returncode == 0
    assert gitops_repo.promote("--env", "production", "--canary", "5", "--image", "reg/my-service:new").returncode == 0
    gitops_repo.argocd.verdicts["my-service-production"] = sync_fails_when("canary-weight: 25")
    result = gitops_repo.promote("--env", "production", "--canary", "25", "--image", "reg/my-service:new")
    assert result.returncode == 1, explain(result)
    assert "failed: one or more objects failed to apply: admission webhook denied the image" in result.stdout
    assert "promotion failed and was rolled back" in result.stdout
    assert gitops_repo.production() == (["reg/my-service:good", "reg/my-service:new"], [95, 5])
    rollback = gitops_repo.promote("--env", "production", "--rollback", "--image", "reg/my-service:new")
    assert rollback.returncode == 0, explain(rollback)
    assert gitops_repo.production() == (["reg/my-service:good"] * 2, [100, 0])


def test_a_promotion_argo_cd_never_syncs_times_out_is_reverted_and_says_the_revert_is_not_synced(
    gitops_repo: GitOps,
) -> None:
    gitops_repo.argocd.verdicts["my-service-staging"] = never_synced
    started = time.monotonic()
    result = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa", ARGOCD_WAIT_TIMEOUT="2s",
                                 ARGOCD_POLL_INTERVAL="1")
    assert result.returncode == 1, explain(result)
    assert time.monotonic() - started < 30
    assert "was not Synced and Healthy at" in result.stdout and "after 2s" in result.stdout
    assert gitops_repo.log()[0] == 'Revert "deploy(staging): reg/my-service:aaa"'
    assert "and its revert" in result.stdout and "is NOT Synced and Healthy either" in result.stdout
    assert "argocd app get my-service-staging" in result.stdout


@pytest.mark.parametrize("problem", ["token", "application", "server-down"])
def test_when_argo_cd_cannot_answer_the_promotion_is_not_reverted_and_the_job_says_why(
    gitops_repo: GitOps, problem: str
) -> None:
    env = {"token": {"ARGOCD_AUTH_TOKEN": "expired"}, "application": {"ARGOCD_APP": "my-servise-staging"},
           "server-down": {"ARGOCD_SERVER": f"http://127.0.0.1:{free_port()}", "ARGOCD_WAIT_TIMEOUT": "1s"}}[problem]
    result = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa", **env)
    expected = {"token": (2, "Argo CD refused the token (HTTP 401)"),
                "application": (2, "Argo CD has no application my-servise-staging (HTTP 404)"),
                "server-down": (5, "Argo CD never answered at http://127.0.0.1:")}[problem]
    assert result.returncode == expected[0], explain(result)
    assert expected[1] in result.stdout
    assert "pushed, not verified, nothing reverted" in result.stdout
    assert gitops_repo.log()[0] == "deploy(staging): reg/my-service:aaa"


def test_gitops_promotion_refuses_to_run_without_argo_cd_unless_told_not_to_wait(gitops_repo: GitOps) -> None:
    result = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa", ARGOCD_SERVER="")
    assert result.returncode == 2 and "ARGOCD_SERVER and ARGOCD_AUTH_TOKEN must be set" in result.stdout
    assert gitops_repo.log() == ["chore: seed"]
    result = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa", "--no-wait", ARGOCD_SERVER="")
    assert result.returncode == 0 and "--no-wait: not waiting for Argo CD" in result.stdout
    dry = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:bbb", "--dry-run")
    assert dry.returncode == 0 and "dry run: not pushed" in dry.stdout
    assert gitops_repo.argocd.requests == []


# ---------------------------------------------------------------- GitOps: staging's on_stop action
def test_gitops_scripts_are_shellcheck_clean_with_help_and_a_readme_section(gitops: Path) -> None:
    shell_files = sorted(str(path) for path in gitops.glob("scripts-ci/**/*.sh"))
    run([str(VENV_BIN / "shellcheck"), "--external-sources", *shell_files], cwd=gitops)
    readme = (gitops / "scripts-ci" / "README.md").read_text()
    for name in ("deploy/gitops-promote.sh", "deploy/gitops-stop-staging.sh"):
        assert os.access(gitops / "scripts-ci" / name, os.X_OK), f"{name} is not executable"
        assert f"\n## {name}" in readme, f"README.md has no section for {name}"
    assert "[`deploy/gitops-stop-staging.sh`](#deploygitops-stop-stagingsh)" in readme
    help_text = script(gitops, "deploy/gitops-stop-staging.sh", "--help")
    assert help_text.returncode == 0, explain(help_text)
    assert help_text.stdout.startswith("Usage: scripts-ci/deploy/gitops-stop-staging.sh")
    assert "Exit codes:" in help_text.stdout and "Example:" in help_text.stdout
    # The kubectl stop is direct mode's: here it would fight Argo CD's self-heal.
    assert not (gitops / "scripts-ci" / "deploy" / "stop-staging.sh").exists()
    assert "deploy/stop-staging.sh" not in readme


STAGING_COMPONENT = "apps/my-service/staging/pipeline/kustomization.yaml"
BOOTSTRAP = "registry.example.com/my-service:bootstrap"


def test_gitops_stop_commits_zero_replicas_waits_for_argo_cd_and_the_next_promotion_starts_staging_again(
    gitops_repo: GitOps,
) -> None:
    assert gitops_repo.promote("--env", "staging", "--image", "reg/my-service:aaa").returncode == 0
    running = {"my-service": ("reg/my-service:aaa", None), "my-service-worker": (BOOTSTRAP, 2),
               "other-app": (BOOTSTRAP, None)}
    assert gitops_repo.staging() == running
    before, polls = gitops_repo.head(), len(gitops_repo.argocd.requests)

    result = gitops_repo.stop()
    assert result.returncode == 0, explain(result)
    head = gitops_repo.head()
    assert gitops_repo.log()[:2] == ["stop(staging): my-service scaled to 0 replicas", "deploy(staging): reg/my-service:aaa"]
    # One commit, to the pipeline's component only, and what it changes is the replicas of the
    # service's Deployments: same images, the other application untouched.
    assert gitops_repo.changed(before) == [STAGING_COMPONENT]
    assert gitops_repo.staging() == {"my-service": ("reg/my-service:aaa", 0), "my-service-worker": (BOOTSTRAP, 0),
                                     "other-app": (BOOTSTRAP, None)}
    # It waited until Argo CD had synced the stop, through Argo CD's API only.
    assert f"my-service-staging: sync Synced at {head[:12]}, health Progressing" in result.stdout
    assert f"my-service-staging is Synced and Healthy at {head[:12]}" in result.stdout
    assert {r["path"] for r in gitops_repo.argocd.requests[polls:]} == {"/api/v1/applications/my-service-staging"}

    # Stopping a stopped staging commits nothing and succeeds.
    again = gitops_repo.stop()
    assert again.returncode == 0, explain(again)
    assert "staging is already stopped" in again.stdout and "nothing to commit" in again.stdout
    assert gitops_repo.head() == head

    # The next deploy-staging starts it again, with its new image and the manifests' replicas.
    promote = gitops_repo.promote("--env", "staging", "--image", "reg/my-service:bbb")
    assert promote.returncode == 0, explain(promote)
    assert gitops_repo.log()[0] == "deploy(staging): reg/my-service:bbb"
    assert gitops_repo.staging() == running | {"my-service": ("reg/my-service:bbb", None)}
    assert "replicas" not in gitops_repo.argocd.component(gitops_repo.head(), "staging")


def test_a_stop_argo_cd_never_syncs_fails_on_its_timeout_and_is_not_reverted(gitops_repo: GitOps) -> None:
    gitops_repo.argocd.verdicts["my-service-staging"] = never_synced
    started = time.monotonic()
    result = gitops_repo.stop(ARGOCD_WAIT_TIMEOUT="2s", ARGOCD_POLL_INTERVAL="1")
    assert result.returncode == 1, explain(result)
    assert time.monotonic() - started < 30
    head = gitops_repo.head()
    assert (f"the stop {head[:12]} is pushed but my-service-staging is NOT Synced and Healthy at it: "
            f"my-service-staging was not Synced and Healthy at {head[:12]} after 2s") in result.stdout
    assert "argocd app get my-service-staging" in result.stdout
    # Reverting would start staging again: the stop stays, the next stop or deploy finds it.
    assert gitops_repo.log() == ["stop(staging): my-service scaled to 0 replicas", "chore: seed"]
    # Before any promotion the image stays the manifests' one.
    assert gitops_repo.staging()["my-service"] == (BOOTSTRAP, 0)


def test_gitops_stop_checks_its_configuration_and_dry_run_pushes_nothing(gitops_repo: GitOps) -> None:
    wrong = gitops_repo.stop("--env", "production")
    assert wrong.returncode == 2 and "unknown argument '--env'" in wrong.stdout
    unset = gitops_repo.stop(GITOPS_REPO_URL="")
    assert unset.returncode == 2 and "GITOPS_REPO_URL is not set" in unset.stdout
    no_argocd = gitops_repo.stop(ARGOCD_SERVER="")
    assert no_argocd.returncode == 2 and "ARGOCD_SERVER and ARGOCD_AUTH_TOKEN must be set" in no_argocd.stdout
    dry = gitops_repo.stop("--dry-run")
    assert dry.returncode == 0 and "dry run: not pushed" in dry.stdout
    assert "+      - op: add" in dry.stdout and "+        path: /spec/replicas" in dry.stdout
    assert gitops_repo.log() == ["chore: seed"]
    assert gitops_repo.argocd.requests == []


# ---------------------------------------------------------------- staging's on_stop action
STAGING = "my-service-staging"


def test_stop_staging_scales_the_service_down_and_the_next_deploy_brings_it_back(cluster: Cluster) -> None:
    assert cluster.run("deploy/deploy-to-staging.sh", image=V1).returncode == 0
    cluster.kubectl.calls()
    dry = cluster.run("deploy/stop-staging.sh", "--dry-run")
    assert dry.returncode == 0, explain(dry)
    assert "dry-run, would run: kubectl scale deployment my-service --namespace my-service-staging --replicas 0" in dry.stdout
    assert cluster.deployment("my-service", STAGING)["spec"]["replicas"] == 1
    result = cluster.run("deploy/stop-staging.sh")
    assert result.returncode == 0, explain(result)
    assert cluster.changes() == [f"scale deployment my-service --namespace {STAGING} --replicas 0"]
    assert cluster.deployment("my-service", STAGING)["spec"]["replicas"] == 0
    assert "staging stopped: 1 Deployment(s) at 0 replicas" in result.stdout
    # Nothing else went: the Service and the HTTPRoute stay for the next deploy.
    assert cluster.kubectl.object("HTTPRoute", STAGING, "my-service") is not None
    assert cluster.run("deploy/deploy-to-staging.sh", image=V2).returncode == 0
    assert cluster.deployment("my-service", STAGING)["spec"]["replicas"] == 1


def test_stop_staging_with_nothing_deployed_says_so(cluster: Cluster) -> None:
    result = cluster.run("deploy/stop-staging.sh")
    assert result.returncode == 0, explain(result)
    assert "already stopped (or was never deployed)" in result.stdout


def test_stop_staging_suspends_the_batch_and_the_next_deploy_resumes_it(batch_cluster: BatchCluster) -> None:
    assert batch_cluster.run("deploy/deploy-to-staging.sh", image=V1).returncode == 0
    assert batch_cluster.cronjob(namespace=STAGING)["spec"]["suspend"] is False
    assert batch_cluster.jobs(STAGING)
    result = batch_cluster.run("deploy/stop-staging.sh")
    assert result.returncode == 0, explain(result)
    assert batch_cluster.cronjob(namespace=STAGING)["spec"]["suspend"] is True
    assert batch_cluster.jobs(STAGING) == []
    assert batch_cluster.run("deploy/deploy-to-staging.sh", image=V2).returncode == 0
    assert batch_cluster.cronjob(namespace=STAGING)["spec"]["suspend"] is False


# ---------------------------------------------------------------- retention through GitLab's API
GITLAB_TOKEN = "glpat-retention-test"


@dataclass
class GitLabAPI:
    """A stand-in for GitLab's project API: GET and PUT /api/v4/projects/:id, token checked."""

    project: dict[str, Any]
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def gitlab_api() -> Iterator[GitLabAPI]:
    api = GitLabAPI(project={
        "id": 42, "path_with_namespace": "acme/ai-services/my-service", "keep_latest_artifact": False,
        # GitLab's defaults for a new project: the policy off, 90 days, every tag.
        "container_expiration_policy": {"cadence": "1d", "enabled": False, "keep_n": 10, "older_than": "90d",
                                        "name_regex": ".*", "name_regex_keep": None, "next_run_at": None},
    })

    class Handler(JsonHandler):

        def handle_project(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            api.requests.append((method, self.path, body))
            if self.headers.get("PRIVATE-TOKEN") != GITLAB_TOKEN:
                return self.reply(401, {"message": "401 Unauthorized"})
            if self.path.split("?")[0] not in ("/api/v4/projects/42", "/api/v4/projects/acme%2Fai-services%2Fmy-service"):
                return self.reply(404, {"message": "404 Project Not Found"})
            if method == "PUT":
                body = copy.deepcopy(body)
                attributes = dict(body.pop("container_expiration_policy_attributes", {}))
                if "name_regex_delete" in attributes:
                    attributes["name_regex"] = attributes.pop("name_regex_delete")
                api.project["container_expiration_policy"].update(attributes)
                api.project.update(body)
            return self.reply(200, api.project)

        def do_GET(self) -> None:
            self.handle_project("GET")

        def do_PUT(self) -> None:
            self.handle_project("PUT")

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    start_serving(server)
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


EXPECTED_RETENTION = {
    "keep_latest_artifact": True,
    "container_expiration_policy_attributes": {
        "enabled": True, "older_than": "30d",
        "name_regex_delete": "^([0-9a-f]{40}|mr-[0-9]+)$",
        "name_regex_keep": r"^(v[0-9]+\.[0-9]+\.[0-9]+|latest|cache|sha256-.*)$",
    },
}


def retention(rendered: Path, api: GitLabAPI, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return script(rendered, "gitlab/apply-retention.py", *args, env={
        "GITLAB_API_TOKEN": GITLAB_TOKEN, "CI_API_V4_URL": api.url, "CI_PROJECT_ID": "42", **env})


def test_retention_dry_run_prints_the_request_and_sends_none(rendered: Path, gitlab_api: GitLabAPI) -> None:
    result = retention(rendered, gitlab_api, "--dry-run")
    assert result.returncode == 0, explain(result)
    body = json.dumps(EXPECTED_RETENTION, sort_keys=True)
    assert f"dry run, would send: PUT {gitlab_api.url}/projects/42 {body}" in result.stdout
    assert [method for method, _, _ in gitlab_api.requests] == ["GET"]


def test_retention_sends_only_what_differs_and_a_second_run_sends_nothing(rendered: Path, gitlab_api: GitLabAPI) -> None:
    first = retention(rendered, gitlab_api)
    assert first.returncode == 0, explain(first)
    assert gitlab_api.requests == [("GET", "/api/v4/projects/42", None), ("PUT", "/api/v4/projects/42", EXPECTED_RETENTION)]
    assert "retention applied" in first.stdout
    gitlab_api.requests.clear()
    second = retention(rendered, gitlab_api)
    assert second.returncode == 0, explain(second)
    assert [method for method, _, _ in gitlab_api.requests] == ["GET"]
    assert "nothing to change" in second.stdout
    # Someone changed one setting by hand: only that one goes back.
    gitlab_api.project["container_expiration_policy"]["older_than"] = "90d"
    gitlab_api.requests.clear()
    third = retention(rendered, gitlab_api, "--project", "acme/ai-services/my-service")
    assert third.returncode == 0, explain(third)
    assert gitlab_api.requests[-1] == ("PUT", "/api/v4/projects/42",
                                       {"container_expiration_policy_attributes": {"older_than": "30d"}})


@pytest.mark.parametrize("problem", ["token", "project", "no-token", "down"])
def test_retention_says_what_is_wrong(rendered: Path, gitlab_api: GitLabAPI, problem: str) -> None:
    env = {"token": {"GITLAB_API_TOKEN": "wrong"}, "project": {"CI_PROJECT_ID": "7"},
           "no-token": {"GITLAB_API_TOKEN": ""}, "down": {"CI_API_V4_URL": f"http://127.0.0.1:{free_port()}/api/v4"}}[problem]
    code, message = {"token": (2, "GitLab refused the token (HTTP 401)"), "project": (2, "cannot read project '7' (HTTP 404)"),
                     "no-token": (2, "GITLAB_API_TOKEN is not set"), "down": (5, "GitLab is unreachable")}[problem]
    result = retention(rendered, gitlab_api, **env)
    assert result.returncode == code and message in result.stdout, explain(result)
    assert not [r for r in gitlab_api.requests if r[0] == "PUT"]
