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
    ".gitlab/ci/post-deploy.yml",
    ".gitlab/ci/pre-commit.yml",
    ".gitlab/ci/release.yml",
    ".gitlab/ci/staging.yml",
    ".gitlab/ci/templates.yml",
    "sonar-project.properties",
}
# Migrations before each deploy (use_database) and the GitOps promotion (deploy_mode gitops).
PIPELINE_DATABASE = {".gitlab/ci/database.yml"}
PIPELINE_GITOPS = {"scripts-ci/deploy/gitops-promote.sh"}

# scripts-ci/ (issue: scripts-ci).
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
    "scripts-ci/lib/http.sh",
    "scripts-ci/lib/k8s.sh",
    "scripts-ci/lib/project.sh",
    "scripts-ci/monitoring/check-canary-health.sh",
    "scripts-ci/monitoring/check-golden-signals.sh",
    "scripts-ci/monitoring/golden_signals.py",
    "scripts-ci/test/performance-test.sh",
    "scripts-ci/test/sanity-test.sh",
    "scripts-ci/test/sanity/microservice.sh",
    "scripts-ci/test/smoke-test.sh",
    "scripts-ci/test/wrk-report.lua",
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

# Docs of the generated repository (runbook, ...).
DOCS = {
    "docs/container.md",
    "docs/runbook.md",
}


def expected_files(answers: Mapping[str, Any]) -> set[str]:
    files = COMMON | SERVICE | PIPELINE | SCRIPTS_CI | DEPLOY | DOCS
    if answers.get("use_database"):
        files |= DATABASE | PIPELINE_DATABASE
    if answers.get("deploy_mode") == "gitops":
        files |= PIPELINE_GITOPS
    return {name.format(pkg=answers["package_name"]) for name in files}
