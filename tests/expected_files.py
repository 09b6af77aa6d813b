"""The exact set of files a generated repository holds, as a function of the answers.

When the template gains or loses a file, this list changes in the same commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

SERVICE = {
    "src/{pkg}/__init__.py",
    "src/{pkg}/__main__.py",
    "src/{pkg}/app.py",
    "src/{pkg}/auth.py",
    "src/{pkg}/health.py",
    "src/{pkg}/logs.py",
    "src/{pkg}/metrics.py",
    "src/{pkg}/openapi.py",
    "src/{pkg}/py.typed",
    "src/{pkg}/settings.py",
    "src/{pkg}/tracing.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/contract/__init__.py",
    "tests/contract/openapi.json",
    "tests/contract/test_openapi_contract.py",
    "tests/e2e/__init__.py",
    "tests/e2e/test_service_over_http.py",
    "tests/integration/__init__.py",
    "tests/integration/conftest.py",
    "tests/integration/test_trace_export.py",
    "tests/unit/__init__.py",
    "tests/unit/test_auth.py",
    "tests/unit/test_health.py",
    "tests/unit/test_logs.py",
    "tests/unit/test_metrics.py",
    "tests/unit/test_openapi.py",
    "tests/unit/test_settings.py",
    "tests/unit/test_tracing.py",
}

DATABASE = {
    "alembic.ini",
    "migrations/env.py",
    "migrations/script.py.mako",
    "migrations/versions/0001_create_items.py",
    "src/{pkg}/db.py",
    "src/{pkg}/items.py",
    "src/{pkg}/models.py",
    "tests/integration/test_database.py",
    "tests/unit/test_items.py",
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
PIPELINE_GITOPS = {"scripts-ci/deploy/gitops-promote.sh"}

# scripts-ci/ (issue: scripts-ci). A batch (data-pipeline: serves_http false) has no HTTP
# tests nor golden signals; its deploy scripts (same names) work on CronJobs, plus its own.
SCRIPTS_CI_HTTP_ONLY = {
    "scripts-ci/lib/http.sh",
    "scripts-ci/monitoring/check-canary-health.sh",
    "scripts-ci/monitoring/check-golden-signals.sh",
    "scripts-ci/monitoring/golden_signals.py",
    "scripts-ci/test/performance-test.sh",
    "scripts-ci/test/sanity-test.sh",
    "scripts-ci/test/smoke-test.sh",
    "scripts-ci/test/wrk-report.lua",
}
SCRIPTS_CI: set[str] = {
    "scripts-ci/.shellcheckrc",
    "scripts-ci/README.md",
    "scripts-ci/alerts/notify-oncall.sh",
    "scripts-ci/db/backup-db.sh",
    "scripts-ci/db/restore-db.sh",
    "scripts-ci/deploy/canary-deploy.sh",
    "scripts-ci/deploy/deploy-to-staging.sh",
    "scripts-ci/deploy/rollback-deployment.sh",
    "scripts-ci/lib/common.sh",
    "scripts-ci/lib/k8s.sh",
    "scripts-ci/lib/project.sh",
} | SCRIPTS_CI_HTTP_ONLY
SCRIPTS_CI_BATCH = {
    "scripts-ci/deploy/run-batch-job.sh",
    "scripts-ci/lib/batch.sh",
    "scripts-ci/monitoring/check-pipeline-freshness.sh",
}

# deploy/ manifests and alert rules (issue: containers and manifests).
DEPLOY = {
    ".checkov.yaml",
    ".hadolint.yaml",
    "deploy/README.md",
    "deploy/base/httproute.yaml",
    "deploy/base/kustomization.yaml",
    "deploy/base/networkpolicy.yaml",
    "deploy/base/poddisruptionbudget.yaml",
    "deploy/base/serviceaccount.yaml",
    "deploy/base/services.yaml",
    "deploy/base/workload/deployment.yaml",
    "deploy/base/workload/kustomization.yaml",
    "deploy/components/production/config.env",
    "deploy/components/production/kustomization.yaml",
    "deploy/monitoring/alerts.test.yaml",
    "deploy/monitoring/alerts.yaml",
    "deploy/monitoring/prometheus.yaml",
    "deploy/overlays/canary/kustomization.yaml",
    "deploy/overlays/production/kustomization.yaml",
    "deploy/overlays/staging/config.env",
    "deploy/overlays/staging/kustomization.yaml",
}

# deploy/ of the data pipeline (a batch): a CronJob instead of the Deployment, no Service,
# HTTPRoute nor PodDisruptionBudget (its NetworkPolicy and monitoring files keep their names).
DEPLOY_HTTP_ONLY = {
    "deploy/base/httproute.yaml",
    "deploy/base/poddisruptionbudget.yaml",
    "deploy/base/services.yaml",
    "deploy/base/workload/deployment.yaml",
}
DEPLOY_BATCH = {"deploy/base/workload/cronjob.yaml"}

# Docs of the generated repository (runbook, ...).
DOCS = {
    "docs/container.md",
    "docs/runbook.md",
}


# ---------------------------------------------------------------- service types (issue: service types)
# The data pipeline is a batch job: it has none of the HTTP service's files.
HTTP_ONLY = {
    "src/{pkg}/app.py",
    "src/{pkg}/auth.py",
    "src/{pkg}/health.py",
    "src/{pkg}/metrics.py",
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
HTTP_DATABASE_ONLY = {
    "migrations/versions/0001_create_items.py",
    "src/{pkg}/db.py",
    "src/{pkg}/items.py",
    "src/{pkg}/models.py",
    "tests/integration/test_database.py",
    "tests/unit/test_items.py",
}

# The model provider layer shared by rag and agent.
LLM = {
    "src/{pkg}/llm/__init__.py",
    "src/{pkg}/llm/factory.py",
    "src/{pkg}/llm/offline.py",
    "src/{pkg}/llm/openai.py",
    "src/{pkg}/llm/provider.py",
    "src/{pkg}/llm/telemetry.py",
    "tests/integration/test_openai_compatible_server.py",
    "tests/unit/test_llm.py",
}

RAG = {
    "evals/golden.jsonl",
    "src/{pkg}/rag/__init__.py",
    "src/{pkg}/rag/answer.py",
    "src/{pkg}/rag/api.py",
    "src/{pkg}/rag/chunking.py",
    "src/{pkg}/rag/evaluate.py",
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
RAG_DATABASE = {
    "migrations/versions/0002_create_rag_chunks.py",
    "migrations/versions/0003_rag_pgvector_index.py",
    "src/{pkg}/rag/pgstore.py",
    "tests/integration/test_postgres_vector_store.py",
}

AGENT = {
    "evals/scenarios.json",
    "src/{pkg}/agent/__init__.py",
    "src/{pkg}/agent/api.py",
    "src/{pkg}/agent/builtin.py",
    "src/{pkg}/agent/evaluate.py",
    "src/{pkg}/agent/knowledge.json",
    "src/{pkg}/agent/loop.py",
    "src/{pkg}/agent/planner.py",
    "src/{pkg}/agent/tools.py",
    "tests/unit/test_agent.py",
}
AGENT_DATABASE = {
    "src/{pkg}/agent/items_tool.py",
    "tests/integration/test_agent_items_tool.py",
}

BATCH = {
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
    "tests/e2e/test_batch.py",
    "tests/integration/test_batch_telemetry.py",
    "tests/unit/test_pipeline.py",
}
BATCH_DATABASE = {
    "migrations/versions/0001_create_samples.py",
    "src/{pkg}/pipeline/warehouse.py",
    "tests/integration/test_warehouse.py",
}
BATCH_TRACKING = {"dvc.yaml", "src/{pkg}/pipeline/registry.py", "tests/unit/test_registry.py"}

# use_ml_tracking: DVC for every type; MLflow runs for the AI types and the pipeline.
TRACKING = {".dvc/.gitignore", ".dvc/config", ".dvcignore"}
TRACKING_RUNS = {"src/{pkg}/tracking.py", "tests/unit/test_tracking.py"}


def service_type_files(answers: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(added, removed) by the service type and its options, relative to the microservice."""
    kind = answers["service_type"]
    database = bool(answers.get("use_database"))
    tracking = bool(answers.get("use_ml_tracking"))
    added: set[str] = set(TRACKING) if tracking else set()
    removed: set[str] = set()
    if kind in ("rag", "agent"):
        added |= LLM | (RAG if kind == "rag" else AGENT)
        if database:
            added |= RAG_DATABASE if kind == "rag" else AGENT_DATABASE
        if tracking:
            added |= TRACKING_RUNS | {"dvc.yaml"}
    elif kind == "data-pipeline":
        added |= BATCH | DEPLOY_BATCH | (BATCH_DATABASE if database else set())
        if tracking:
            added |= TRACKING_RUNS | BATCH_TRACKING
        removed = HTTP_ONLY | DEPLOY_HTTP_ONLY | (HTTP_DATABASE_ONLY if database else set())
    return added, removed


def expected_files(answers: Mapping[str, Any]) -> set[str]:
    files = COMMON | SERVICE | PIPELINE | SCRIPTS_CI | DEPLOY | DOCS
    if answers.get("use_database"):
        files |= DATABASE | PIPELINE_DATABASE
    if answers.get("deploy_mode") == "gitops":
        files |= PIPELINE_GITOPS
    added, removed = service_type_files(answers)
    files = (files - removed) | added
    if answers["service_type"] != "data-pipeline":
        # The sanity check of the service type's main use case (a batch has none over HTTP).
        files.add(f"scripts-ci/test/sanity/{answers['service_type']}.sh")
    else:
        files = (files - SCRIPTS_CI_HTTP_ONLY) | SCRIPTS_CI_BATCH
    return {name.format(pkg=answers["package_name"]) for name in files}
