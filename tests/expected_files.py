"""The exact set of files a generated repository holds, as a function of the answers.

Which files a type has follows from its capabilities (its row of service-types.yml), never
from its name: a new type with known capabilities needs no change here. When the template
gains or loses a file, this list changes in the same commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .support.project import capabilities

COMMON = {
    ".copier-answers.yml",
    ".dockerignore",
    ".gitignore",
    ".gitlab-ci.yml",
    ".gitlab/CODEOWNERS",
    ".gitlab/ci/local.yml",
    ".gitlab/issue_templates/incident-report.md",
    ".gitlab/issue_templates/Postmortem.md",
    ".gitlab/merge_request_templates/Default.md",
    ".pre-commit-config.yaml",
    ".python-version",
    "CHANGELOG.md",
    "Dockerfile",
    "Makefile",
    "README.md",
    "catalog-info.yaml",
    "pyproject.toml",
    "renovate.json",
}

# Every package: its entry point, settings and logs, and the test suite's skeleton.
PACKAGE = {
    "src/{pkg}/__init__.py",
    "src/{pkg}/__main__.py",
    "src/{pkg}/logs.py",
    "src/{pkg}/py.typed",
    "src/{pkg}/settings.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/contract/__init__.py",
    "tests/e2e/__init__.py",
    "tests/integration/__init__.py",
    "tests/integration/conftest.py",
    "tests/unit/__init__.py",
    "tests/unit/test_settings.py",
}

# use_database: Alembic, whatever the type keeps in its database.
DATABASE = {
    "alembic.ini",
    "migrations/env.py",
    "migrations/script.py.mako",
}


# The nine-stage pipeline: .gitlab/ci/<stage>.yml (issue: pipeline).
PIPELINE: set[str] = {
    ".gitlab/ci/approval.yml",
    ".gitlab/ci/canary.yml",
    ".gitlab/ci/feature.yml",
    ".gitlab/ci/main.yml",
    ".gitlab/ci/merge-request.yml",
    ".gitlab/ci/monitoring.yml",
    ".gitlab/ci/template-update.yml",
    ".gitlab/ci/post-deploy.yml",
    ".gitlab/ci/pre-commit.yml",
    ".gitlab/ci/release.yml",
    ".gitlab/ci/staging.yml",
    ".gitlab/ci/templates.yml",
    "sonar-project.properties",
}
# Migrations before each deploy (use_database) and the GitOps promotion (deploy_mode gitops).
PIPELINE_DATABASE = {
    ".gitlab/ci/database.yml",
    "scripts-ci/db/migrate-db.sh",
    "scripts-ci/db/migration_state.py",
    "scripts-ci/db/repair-migration.sh",
}
PIPELINE_GITOPS = {
    "deploy/argocd/applications.yaml",
    "deploy/argocd/appproject.yaml",
    "deploy/argocd/kustomization.yaml",
    "scripts-ci/deploy/gitops-promote.sh",
    "scripts-ci/deploy/gitops-stop-staging.sh",
    "scripts-ci/lib/argocd.sh",
    "scripts-ci/lib/gitops.sh",
}
# Direct deploys only: staging's on_stop action scales the service down with kubectl
# (GitOps: deploy/gitops-stop-staging.sh commits the scale-down instead).
PIPELINE_DIRECT = {"scripts-ci/deploy/stop-staging.sh"}

# scripts-ci/ (issue: scripts-ci): the same deploy scripts (names) for every type; a batch
# type's work on CronJobs.
SCRIPTS_CI: set[str] = {
    "scripts-ci/.shellcheckrc",
    "scripts-ci/README.md",
    "scripts-ci/alerts/notify-oncall.sh",
    "scripts-ci/gitlab/apply-retention.py",
    "scripts-ci/db/backup-db.sh",
    "scripts-ci/db/restore-db.sh",
    "scripts-ci/deploy/canary-deploy.sh",
    "scripts-ci/deploy/deploy-to-staging.sh",
    "scripts-ci/deploy/rollback-deployment.sh",
    "scripts-ci/lib/common.sh",
    "scripts-ci/lib/k8s.sh",
    "scripts-ci/lib/project.sh",
}

# deploy/ manifests and alert rules (issue: containers and manifests): the NetworkPolicy and
# the monitoring files keep their names for every type.
DEPLOY = {
    ".checkov.yaml",
    ".hadolint.yaml",
    "deploy/README.md",
    "deploy/base/kustomization.yaml",
    "deploy/base/networkpolicy.yaml",
    "deploy/base/serviceaccount.yaml",
    "deploy/base/workload/kustomization.yaml",
    "deploy/components/production/config.env",
    "deploy/components/production/kustomization.yaml",
    "deploy/monitoring/alertmanager.yaml",
    "deploy/monitoring/alerts.test.yaml",
    "deploy/monitoring/alerts.yaml",
    "deploy/monitoring/kustomization.yaml",
    "deploy/monitoring/prometheus.yaml",
    "tests/unit/grafana-dashboard.schema.json",
    "tests/unit/test_dashboards.py",
    "deploy/overlays/canary/kustomization.yaml",
    "deploy/overlays/production/kustomization.yaml",
    "deploy/overlays/staging/config.env",
    "deploy/overlays/staging/kustomization.yaml",
}

# Docs of the generated repository (runbook, ...).
DOCS = {
    "docs/container.md",
    "docs/runbook.md",
}


# ---------------------------------------------------------------- capabilities (service-types.yml)
# serves_http: the FastAPI service, its Deployment behind an HTTPRoute, its HTTP tests and
# golden signals, and the sanity check of the type's main use case (named by the type).
HTTP = {
    "benchmarks/observability.py",
    "deploy/base/httproute.yaml",
    "deploy/base/poddisruptionbudget.yaml",
    "deploy/base/services.yaml",
    "deploy/base/workload/deployment.yaml",
    "deploy/monitoring/dashboards/canary.json",
    "deploy/monitoring/dashboards/service.json",
    "scripts-ci/lib/http.sh",
    "scripts-ci/monitoring/check-canary-health.sh",
    "scripts-ci/monitoring/check-golden-signals.sh",
    "scripts-ci/monitoring/golden_signals.py",
    "scripts-ci/test/performance-test.sh",
    "scripts-ci/test/sanity-test.sh",
    "scripts-ci/test/sanity/{service_type}.sh",
    "scripts-ci/test/smoke-test.sh",
    "scripts-ci/test/wrk-report.lua",
    "src/{pkg}/app.py",
    "src/{pkg}/auth.py",
    "src/{pkg}/health.py",
    "src/{pkg}/metrics.py",
    "src/{pkg}/middleware.py",
    "src/{pkg}/openapi.py",
    "src/{pkg}/tracing.py",
    "tests/contract/openapi.json",
    "tests/contract/test_openapi_contract.py",
    "tests/e2e/test_service_over_http.py",
    "tests/integration/test_trace_export.py",
    "tests/unit/test_auth.py",
    "tests/unit/test_health.py",
    "tests/unit/test_logs.py",
    "tests/unit/test_metrics.py",
    "tests/unit/test_openapi.py",
    "tests/unit/test_tracing.py",
}
HTTP_DATABASE = {
    "migrations/versions/0001_create_items.py",
    "src/{pkg}/db.py",
    "src/{pkg}/items.py",
    "src/{pkg}/models.py",
    "tests/integration/test_database.py",
    "tests/unit/test_items.py",
}
# not serves_http: a batch run as a Kubernetes CronJob/Job, rolled out by data share.
BATCH = {
    "deploy/base/workload/cronjob.yaml",
    "deploy/monitoring/dashboards/batch.json",
    "scripts-ci/deploy/run-batch-job.sh",
    "scripts-ci/lib/batch.sh",
    "scripts-ci/monitoring/check-pipeline-freshness.sh",
    "tests/e2e/test_batch.py",
    "tests/integration/test_batch_telemetry.py",
}

# uses_llm: the model provider layer.
LLM = {
    "deploy/base/externalsecret.yaml",
    "src/{pkg}/llm/__init__.py",
    "src/{pkg}/llm/factory.py",
    "src/{pkg}/llm/offline.py",
    "src/{pkg}/llm/openai.py",
    "src/{pkg}/llm/provider.py",
    "src/{pkg}/llm/telemetry.py",
    "src/{pkg}/flags.py",
    "flags.json",
    "deploy/base/flags.json",
    "tests/unit/test_flags.py",
    "tests/integration/openai_stub.py",
    "tests/integration/test_openai_compatible_server.py",
    "tests/unit/test_llm.py",
}

# has_vector_store: retrieval from an indexed corpus (pgvector with use_database).
VECTOR_STORE = {
    "evals/golden.jsonl",
    "src/{pkg}/rag/__init__.py",
    "src/{pkg}/rag/answer.py",
    "src/{pkg}/rag/api.py",
    "src/{pkg}/rag/chunking.py",
    "src/{pkg}/rag/evaluate.py",
    "src/{pkg}/rag/evaluators.py",
    "src/{pkg}/rag/service.py",
    "src/{pkg}/rag/store.py",
    "tests/unit/test_rag.py",
} | {
    f"src/{{pkg}}/rag/corpus/{name}.md"
    for name in (
        "code-review",
        "data-and-models",
        "deployments",
        "observability",
        "on-call",
        "rollback",
        "secrets",
    )
}
VECTOR_STORE_DATABASE = {
    "migrations/versions/0002_create_rag_chunks.py",
    "migrations/versions/0003_rag_pgvector_index.py",
    "src/{pkg}/rag/pgstore.py",
    "tests/integration/test_postgres_vector_store.py",
}

# runs_agent: the agent loop, its tools and budgets.
AGENT = {
    "evals/scenarios.json",
    "src/{pkg}/agent/__init__.py",
    "src/{pkg}/agent/api.py",
    "src/{pkg}/agent/builtin.py",
    "src/{pkg}/agent/evaluate.py",
    "src/{pkg}/agent/knowledge.json",
    "src/{pkg}/agent/loop.py",
    "src/{pkg}/agent/model.py",
    "src/{pkg}/agent/planner.py",
    "src/{pkg}/agent/tools.py",
    "tests/unit/test_agent.py",
}
AGENT_DATABASE = {
    "src/{pkg}/agent/items_tool.py",
    "tests/integration/test_agent_items_tool.py",
}

# trains_model: the DVC stages, their data contract and the quality gate.
TRAINING = {
    "data/.gitignore",
    "models/.gitignore",
    "params.yaml",
    "src/{pkg}/pipeline/__init__.py",
    "src/{pkg}/pipeline/cli.py",
    "src/{pkg}/pipeline/dataset.py",
    "src/{pkg}/pipeline/gate.py",
    "src/{pkg}/pipeline/params.py",
    "src/{pkg}/pipeline/stages.py",
    "src/{pkg}/pipeline/telemetry.py",
    "tests/contract/dataset-schema.json",
    "tests/contract/test_dataset_contract.py",
    "tests/unit/test_pipeline.py",
}
TRAINING_DATABASE = {
    "migrations/versions/0001_create_samples.py",
    "src/{pkg}/pipeline/warehouse.py",
    "tests/integration/test_warehouse.py",
}
# trains_model with use_ml_tracking: the MLflow registry
# (and the DVC remote's pull and push around `dvc repro` in CI).
TRAINING_TRACKING = {
    "scripts-ci/ml/dvc-sync.sh",
    "src/{pkg}/pipeline/registry.py",
    "tests/unit/test_registry.py",
}

# serves_model: a registered model's predictions, their health and the release's model pin.
SERVING = {
    ".gitlab/ci/model.yml",
    "scripts-ci/monitoring/prediction_health.py",
    "scripts-ci/release/pin-model-version.sh",
    "src/{pkg}/serving/__init__.py",
    "src/{pkg}/serving/api.py",
    "src/{pkg}/serving/model.py",
    "src/{pkg}/serving/monitor.py",
    "src/{pkg}/serving/sample.py",
    "tests/unit/test_serving.py",
}
# serves_model or trains_model: the training reference profile and the drift it measures.
DRIFT = {"src/{pkg}/drift.py"}

# use_ml_tracking: DVC for every type; DVC stages and MLflow runs for the types that call a
# model or train one.
TRACKING = {".dvc/.gitignore", ".dvc/config", ".dvcignore"}
TRACKING_RUNS = {"dvc.yaml", "src/{pkg}/tracking.py", "tests/unit/test_tracking.py"}


def expected_files(answers: Mapping[str, Any]) -> set[str]:
    kind = capabilities(answers)
    database = bool(answers.get("use_database"))
    files = COMMON | PACKAGE | PIPELINE | SCRIPTS_CI | DEPLOY | DOCS
    if database:
        files |= DATABASE | PIPELINE_DATABASE
    # (the type has it, its files, its files with use_database)
    for has, own, own_database in (
        (kind.serves_http, HTTP, HTTP_DATABASE),
        (not kind.serves_http, BATCH, set()),
        (kind.uses_llm, LLM, set()),
        (kind.has_vector_store, VECTOR_STORE, VECTOR_STORE_DATABASE),
        (kind.runs_agent, AGENT, AGENT_DATABASE),
        (kind.trains_model, TRAINING, TRAINING_DATABASE),
        (kind.serves_model, SERVING, set()),
        (kind.serves_model or kind.trains_model, DRIFT, set()),
    ):
        if has:
            files |= own | (own_database if database else set())
    if answers.get("use_ml_tracking"):
        files |= TRACKING
        if kind.uses_llm or kind.trains_model:
            files |= TRACKING_RUNS
        if kind.trains_model:
            files |= TRAINING_TRACKING
    if answers.get("deploy_mode") == "gitops":
        files |= PIPELINE_GITOPS
    else:
        files |= PIPELINE_DIRECT
    return {name.format(pkg=answers["package_name"], service_type=kind.name) for name in files}
