"""The generated nine-stage pipeline, proven with the tools that consume it.

- GitLab's published schema (check-jsonschema `vendor.gitlab-ci`) accepts every pipeline file
  and the merged configuration, for every service type, deploy mode and database option;
- the structure follows the playbook and current GitLab practice (stages, needs/extends,
  rules not only/except, pinned images, environments with a tier, serialised deploys);
- gitlab-ci-local lists the job graph of each kind of pipeline (merge request, branch,
  default branch, deploy freeze, release tag, schedules) and runs the shell-runnable jobs of
  the pre-commit, feature and merge-request stages on a bootstrapped project, against a real
  PostgreSQL;
- the pipeline's helpers do their job: the conflict check, the release notes, the
  template update check and the GitOps promotion.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import pairwise, product
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support.ci_local import SCHEMA_ARGS
from .support.fake_kubectl import FakeKubectl
from .support.gitops import fake_argocd, gitops_repository
from .support.gitops import rendered as rendered_gitops
from .support.gitops import running as running_gitops
from .support.postgres import Postgres
from .support.procs import run
from .support.project import (
    GIT_ENV,
    ROOT,
    SERVICE_TYPES,
    capabilities,
    first_type_with,
    git_commit_all,
    render,
    types_with,
)

# gitlab-ci-local reads (or runs) the pipelines of almost every test here.
pytestmark = pytest.mark.npm

GITLAB_CI_LOCAL = ROOT / "node_modules" / ".bin" / "gitlab-ci-local"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
STAGES = [
    "pre-commit",
    "feature",
    "merge-request",
    "main",
    "staging",
    "approval",
    "canary",
    "post-deploy",
    "monitoring",
]
PRODUCTION_STAGES = {"approval", "canary", "post-deploy"}
# Variables gitlab-ci-local would otherwise take from the git checkout, set per pipeline kind.
SIMULATED = [
    "CI_PIPELINE_SOURCE",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_TAG",
    "CI_DEFAULT_BRANCH",
    "CI_MERGE_REQUEST_IID",
    "CI_DEPLOY_FREEZE",
    "CI_OPEN_MERGE_REQUESTS",
]
PIPELINES: dict[str, list[str]] = {
    "merge-request": [
        "CI_PIPELINE_SOURCE=merge_request_event",
        "CI_MERGE_REQUEST_IID=7",
        "-CI_COMMIT_BRANCH",
    ],
    "feature-branch": ["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=feature/scoring"],
    "default-branch": ["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=main"],
    "deploy-freeze": ["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=main", "CI_DEPLOY_FREEZE=1"],
    "release-tag": ["CI_PIPELINE_SOURCE=push", "CI_COMMIT_TAG=v1.4.0", "-CI_COMMIT_BRANCH"],
    "schedule": ["CI_PIPELINE_SOURCE=schedule", "CI_COMMIT_BRANCH=main"],
    "schedule-template-update": [
        "CI_PIPELINE_SOURCE=schedule",
        "CI_COMMIT_BRANCH=main",
        "SCHEDULE_TASK=template-update-check",
    ],
}
# Scripts whose jobs change an environment: serialised and never cancelled half-way.
CHANGES_AN_ENVIRONMENT = re.compile(
    r"scripts-ci/deploy/|scripts-ci/db/|make migrate|alembic (upgrade|downgrade)"
)
VERIFIES_AN_ENVIRONMENT = re.compile(r"scripts-ci/(test|monitoring)/")
PINNED_IMAGE = re.compile(r"^[a-z0-9][\w.\-/]*(:\d+)?(/[\w.\-]+)*:(?!latest$)[\w.\-]*\d[\w.\-]*$")
# How every deploy job names its image: the digest build-image pushed and sign-image signed.
SIGNED = '--image "$CI_REGISTRY_IMAGE@$IMAGE_DIGEST"'
TOOL_MISSING = "run `make deps` (dev/install-test-deps.sh) to install the test tools"


class _GitLabLoader(yaml.SafeLoader):
    """YAML loader that keeps GitLab's `!reference [job, key]` tags as ("!reference", [...])."""


_GitLabLoader.add_constructor(
    "!reference", lambda loader, node: ("!reference", loader.construct_sequence(node))
)


def _require(tool: Path) -> Path:
    if not tool.exists():
        raise AssertionError(f"{tool} is missing: {TOOL_MISSING}")
    return tool


def gitlab_ci_local(project: Path, *args: str, timeout: float = 900) -> str:
    """Run gitlab-ci-local in PROJECT; return its stdout (its own logs go to stderr)."""
    cmd = [str(_require(GITLAB_CI_LOCAL)), *SCHEMA_ARGS, "--ignore-predefined-vars", ",".join(SIMULATED), *args]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"} | GIT_ENV
    result = subprocess.run(cmd, cwd=project, env=env, text=True, capture_output=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"gitlab-ci-local {' '.join(args)} exited {result.returncode} in {project}:\n"
            f"{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


def _variables(assignments: list[str]) -> list[str]:
    args = ["--variable", "CI_DEFAULT_BRANCH=main"]
    for item in assignments:
        if item.startswith("-"):
            args += ["--unset-variable", item[1:]]
        else:
            args += ["--variable", item]
    return args


@dataclass
class Pipeline:
    """A generated repository and its pipeline as GitLab would merge it."""

    path: Path
    answers: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    _graphs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return {
            name: job
            for name, job in self.config.items()
            if isinstance(job, dict) and "stage" in job and not name.startswith(".")
        }

    def files(self) -> list[Path]:
        return [self.path / ".gitlab-ci.yml", *sorted((self.path / ".gitlab" / "ci").glob("*.yml"))]

    def raw(self) -> dict[str, Any]:
        """Every key of every pipeline file, unmerged (hidden jobs included)."""
        merged: dict[str, Any] = {}
        for path in self.files():
            merged.update(yaml.load(path.read_text(), Loader=_GitLabLoader) or {})
        return merged

    def graph(self, kind: str, *extra: str) -> dict[str, dict[str, Any]]:
        """The jobs of one kind of pipeline (when != never), from gitlab-ci-local --list-json."""
        key = " ".join([kind, *extra])
        if key not in self._graphs:
            out = gitlab_ci_local(
                self.path, "--list-json", "--no-json-schema-validation",
                *_variables(PIPELINES[kind] + list(extra)),
            )
            self._graphs[key] = {
                job["name"]: job for job in json.loads(out) if job["when"] != "never"
            }
        return self._graphs[key]


VARIANTS = [
    {"service_type": service_type, "deploy_mode": mode, "use_database": database}
    for service_type, mode, database in product(SERVICE_TYPES, ["direct", "gitops"], [False, True])
    # A batch's rollout runs Jobs from the pipeline: copier refuses gitops for it.
    if not (mode == "gitops" and not capabilities({"service_type": service_type}).serves_http)
]
# The pipeline kinds whose jobs barely depend on the answers are listed for two variants
# that differ in everything (gitlab-ci-local takes a second or two per listing), and for
# the batch, whose later stages differ.
HTTP_VARIANTS = [answers for answers in VARIANTS if capabilities(answers).serves_http]
BATCH_VARIANTS = [answers for answers in VARIANTS if not capabilities(answers).serves_http]
SAMPLE_VARIANTS = HTTP_VARIANTS[1:3] + BATCH_VARIANTS[:1]


def _variant_id(answers: dict[str, Any]) -> str:
    db = "db" if answers["use_database"] else "no-db"
    return f"{answers['service_type']}-{answers['deploy_mode']}-{db}"


@pytest.fixture(scope="module")
def pipelines(
    copier_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[dict[str, Any]], Pipeline]:
    """Rendered pipelines by answers, each rendered once per module."""
    cache: dict[str, Pipeline] = {}

    def _get(answers: dict[str, Any]) -> Pipeline:
        key = _variant_id(answers)
        if key not in cache:
            project = render(copier_template, tmp_path_factory.mktemp("pipeline") / "project", answers)
            _commit_with_origin(project)
            result = Pipeline(project, dict(answers))
            result.config = yaml.safe_load(
                gitlab_ci_local(project, "--preview", "--no-json-schema-validation")
            )
            cache[key] = result
        return cache[key]

    return _get


def _commit_with_origin(project: Path) -> None:
    """Commit, and give the repository the remote a GitLab clone has (gitlab-ci-local reads it)."""
    git_commit_all(project, "feat: initial commit from the playbook template")
    run(["git", "remote", "add", "origin", "https://gitlab.com/acme/ai-services/my-service.git"],
        cwd=project, env=GIT_ENV)
    run(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=project, env=GIT_ENV)
    run(["git", "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"],
        cwd=project, env=GIT_ENV)


def _on_one_worker(variants: list[dict[str, Any]]) -> list[Any]:
    """The variants as parameters whose tests run on one worker under `make test`, which
    renders each variant and lists its pipeline once (pipelines(), about 3 s a variant)."""
    return [pytest.param(answers, id=_variant_id(answers),
                         marks=pytest.mark.xdist_group(f"pipeline-{_variant_id(answers)}"))
            for answers in variants]


@pytest.fixture(params=_on_one_worker(VARIANTS))
def pipeline(request: pytest.FixtureRequest, pipelines: Callable[[dict[str, Any]], Pipeline]) -> Pipeline:
    return pipelines(request.param)


def one_type_with(**wanted: bool) -> Any:
    """A parameter naming the first service type under test with these capabilities (its id
    is the type's name), skipped when PLAYBOOK_SERVICE_TYPES leaves none."""
    name = first_type_with(**wanted)
    if name:
        return pytest.param(name, id=name)
    kind = ", ".join(f"{capability} {str(value).lower()}" for capability, value in wanted.items())
    return pytest.param(None, id="no-type-with-" + "-".join(f"{c}-{v}".lower() for c, v in wanted.items()),
                        marks=pytest.mark.skip(reason=f"PLAYBOOK_SERVICE_TYPES leaves no service type with {kind}"))


@pytest.fixture(params=_on_one_worker(SAMPLE_VARIANTS))
def sample_pipeline(
    request: pytest.FixtureRequest, pipelines: Callable[[dict[str, Any]], Pipeline]
) -> Pipeline:
    return pipelines(request.param)


# ---------------------------------------------------------------- schema and structure


def test_every_file_and_the_merged_pipeline_match_gitlab_schema(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    merged = tmp_path / "merged-gitlab-ci.yml"
    merged.write_text(yaml.safe_dump(pipeline.config))
    files = [str(path) for path in pipeline.files()] + [str(merged)]
    run([str(_require(CHECK_JSONSCHEMA)), "--builtin-schema", "vendor.gitlab-ci",
         "--data-transform", "gitlab-ci", *files])


def test_stages_follow_the_playbook_and_each_has_jobs(pipeline: Pipeline) -> None:
    assert pipeline.config["stages"] == [".pre", *STAGES, ".post"]
    stages = {job["stage"] for job in pipeline.jobs.values()}
    assert [stage for stage in STAGES if stage not in stages] == []
    assert stages <= set(STAGES)


def test_every_needs_extends_and_reference_resolves(pipeline: Pipeline) -> None:
    raw = pipeline.raw()
    reserved = {"default", "workflow", "variables", "include", "stages"}
    real_jobs = {name for name in raw if not name.startswith(".") and name not in reserved}
    problems = []

    def references(value: Any) -> Iterator[list[str]]:
        if isinstance(value, tuple) and value and value[0] == "!reference":
            yield value[1]
        elif isinstance(value, dict):
            for item in value.values():
                yield from references(item)
        elif isinstance(value, list):
            for item in value:
                yield from references(item)

    for name, job in raw.items():
        if not isinstance(job, dict):
            continue
        extends = job.get("extends", [])
        for parent in [extends] if isinstance(extends, str) else extends:
            if parent not in raw:
                problems.append(f"{name}: extends unknown {parent}")
        for need in job.get("needs", []):
            needed = need if isinstance(need, str) else need["job"]
            if needed not in real_jobs:
                problems.append(f"{name}: needs unknown job {needed}")
        for target, *path in references(job):
            node = raw.get(target)
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                problems.append(f"{name}: !reference [{target}, {', '.join(path)}] resolves to nothing")
    assert problems == []
    # And after GitLab's merge (includes, extends, !reference), as gitlab-ci-local sees it.
    for name, job in pipeline.jobs.items():
        for need in job.get("needs", []):
            assert need["job"] in pipeline.jobs, f"{name} needs {need['job']}"


def test_rules_not_only_except_and_thin_jobs(pipeline: Pipeline) -> None:
    for name, job in pipeline.jobs.items():
        assert "only" not in job and "except" not in job, name
        assert "rules" in job, f"{name} has no rules: it would run in every pipeline"
        for line in job["script"]:
            assert not re.match(r"^\s*echo\b", line) or len(job["script"]) > 1, (
                f"{name} only echoes: a job must run a tool, a Makefile target or a script"
            )


def test_every_image_is_pinned_to_a_version(pipeline: Pipeline) -> None:
    images: list[tuple[str, str]] = []
    for name, job in pipeline.jobs.items():
        image = job.get("image")
        assert image, f"{name} has no image: it would run on whatever the runner defaults to"
        images.append((name, image if isinstance(image, str) else image["name"]))
        for service in job.get("services", []):
            images.append((name, service if isinstance(service, str) else service["name"]))
        for key, value in (job.get("variables") or {}).items():
            if key.endswith("_IMAGE") and "$" not in str(value):
                images.append((f"{name} variables.{key}", str(value)))
    unpinned = [(where, image) for where, image in images if not PINNED_IMAGE.match(image)]
    assert unpinned == []


def test_environments_have_a_tier_and_deploys_are_serialised(pipeline: Pipeline) -> None:
    raw = pipeline.raw()
    assert raw["default"]["interruptible"] is True
    deploys = set()
    for name, job in pipeline.jobs.items():
        script = "\n".join(job.get("script", []))
        environment = job.get("environment")
        if environment:
            assert environment["deployment_tier"] == environment["name"], name
            if VERIFIES_AN_ENVIRONMENT.search(script) and not CHANGES_AN_ENVIRONMENT.search(script):
                assert environment.get("action") == "verify", f"{name} only checks: action verify"
        starts_a_deployment = bool(environment) and environment.get("action", "start") == "start"
        if CHANGES_AN_ENVIRONMENT.search(script) or starts_a_deployment:
            deploys.add(name)
            assert job.get("resource_group"), f"{name} changes an environment: resource_group"
            assert job.get("interruptible") is False, f"{name} changes an environment: not interruptible"
            assert environment, f"{name} changes an environment: declare it"
    expected = {"deploy-staging", "canary-rollback", "post-deploy-rollback"}
    expected |= {name for name in pipeline.jobs if re.fullmatch(r"canary-\d+", name)}
    expected.add("stop-staging")  # staging's on_stop action scales it down (GitOps: by a commit)
    if not capabilities(pipeline.answers).serves_http:
        expected.add("model-promote")  # moves the MLflow alias (use_ml_tracking, on by default)
    if pipeline.answers["use_database"]:
        expected |= {f"db-{step}-{env}" for step in ("backup", "migrate", "repair", "restore")
                     for env in ("staging", "production")}
    assert deploys == expected
    # A newer commit may cancel checks, never a production rollout half-way.
    for name, job in pipeline.jobs.items():
        if job["stage"] in PRODUCTION_STAGES:
            assert job.get("interruptible") is False, f"{name} is part of a production rollout"
    checks = {"pre-commit", "unit-tests", "integration-tests", "trivy-fs",
              "smoke-staging" if capabilities(pipeline.answers).serves_http else "metrics-staging"}
    assert all("interruptible" not in pipeline.jobs[name] for name in checks)
    # The production deployment GitLab counts for DORA is the full promotion.
    starts = {
        name for name, job in pipeline.jobs.items()
        if "environment" in job and job["environment"].get("action", "start") == "start"
    }
    assert starts == {"deploy-staging", "canary-100"}


def test_workflow_rules_create_one_pipeline_per_event(
    pipelines: Callable[[dict[str, Any]], Pipeline], tmp_path: Path
) -> None:
    """gitlab-ci-local does not apply workflow:rules itself: a probe job carrying exactly
    those rules shows how GitLab's rule evaluation decides each event. (The workflow rules
    do not depend on the answers: one variant.)"""
    pipeline = pipelines(VARIANTS[0])
    project = tmp_path / "probe"
    shutil.copytree(pipeline.path, project, symlinks=True)
    probe = {"stage": "pre-commit", "script": ["true"], "rules": pipeline.config["workflow"]["rules"]}
    (project / ".gitlab" / "ci" / "local.yml").write_text(yaml.safe_dump({"workflow-probe": probe}))
    git_commit_all(project, "test: probe the workflow rules")
    open_mr = "CI_OPEN_MERGE_REQUESTS=acme/ai-services/my-service!7"
    events = {
        "merge request": (["CI_PIPELINE_SOURCE=merge_request_event", "-CI_COMMIT_BRANCH", open_mr], True),
        "push, branch without a merge request": (["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=feature/x"], True),
        "push, branch with an open merge request": (["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=feature/x", open_mr], False),
        "push, default branch": (["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=main"], True),
        "schedule, branch with an open merge request": (["CI_PIPELINE_SOURCE=schedule", "CI_COMMIT_BRANCH=main", open_mr], True),
        "release tag": (["CI_PIPELINE_SOURCE=push", "-CI_COMMIT_BRANCH", "CI_COMMIT_TAG=v2.0.1"], True),
        "other tag": (["CI_PIPELINE_SOURCE=push", "-CI_COMMIT_BRANCH", "CI_COMMIT_TAG=nightly-2025"], False),
    }
    decided = {}
    for event, (variables, _) in events.items():
        jobs = json.loads(gitlab_ci_local(project, "--list-json", "--no-json-schema-validation",
                                          *_variables(variables)))
        decided[event] = next(job["when"] for job in jobs if job["name"] == "workflow-probe") != "never"
    assert decided == {event: expected for event, (_, expected) in events.items()}


# ---------------------------------------------------------------- job graph per pipeline


def _assert_needs_are_in_the_pipeline(kind: str, jobs: dict[str, dict[str, Any]]) -> None:
    for name, job in jobs.items():
        for need in job.get("needs") or []:
            assert need["optional"] or need["job"] in jobs, (
                f"{kind} pipeline: {name} needs {need['job']}, which is not in it"
            )


def test_merge_request_pipeline_checks_tests_and_scans_but_never_deploys(pipeline: Pipeline) -> None:
    jobs = pipeline.graph("merge-request")
    _assert_needs_are_in_the_pipeline("merge-request", jobs)
    expected = {
        "pre-commit", "unit-tests", "integration-tests", "contract-tests", "e2e-tests",
        "template-conflicts", "gitleaks", "bandit", "pip-audit", "trivy-fs", "manifests",
        "checkov", "mr-image", "mr-image-trivy", "mr-image-sbom", "mr-image-grype",
    }
    if capabilities(pipeline.answers).uses_llm:
        expected.add("evaluation")  # the model quality gate
    if not capabilities(pipeline.answers).serves_http:
        expected.add("pipeline-quality")  # the batch on the bundled data, its metric checks
    assert set(jobs) == expected
    assert all(job["when"] == "on_success" for job in jobs.values())
    # Independent checks start at once (needs: []), not after the previous stage.
    for name in expected - {"checkov", "mr-image-trivy", "mr-image-sbom", "mr-image-grype"}:
        assert jobs[name]["needs"] == [], name


def test_branch_without_merge_request_runs_the_fast_checks(sample_pipeline: Pipeline) -> None:
    batch = not capabilities(sample_pipeline.answers).serves_http
    fast = {"pre-commit", "unit-tests"} | ({"pipeline-quality"} if batch else set())
    assert set(sample_pipeline.graph("feature-branch")) == fast
    # SonarQube joins the quality gate only when a server is configured.
    with_sonar = sample_pipeline.graph("feature-branch", "SONAR_HOST_URL=https://sonar.example.com")
    assert set(with_sonar) == fast | {"sonarqube"}


def _needs(job: dict[str, Any]) -> list[str]:
    """The jobs a job waits for, without build-image (which every deploy job lists for its
    dotenv report: test_deploy_jobs_receive_the_signed_digest checks that)."""
    return [n["job"] for n in job["needs"] or [] if n["job"] != "build-image"]


def test_default_branch_pipeline_builds_signs_and_deploys(pipeline: Pipeline) -> None:
    jobs = pipeline.graph("default-branch")
    _assert_needs_are_in_the_pipeline("default-branch", jobs)
    steps = [s.strip() for s in pipeline.answers.get("canary_steps", "5,25,50,100").split(",")]
    expected_core = {
        "pre-commit", "unit-tests", "integration-tests", "contract-tests", "e2e-tests",
        "gitleaks", "bandit", "pip-audit", "trivy-fs", "manifests", "checkov",
        "build-image", "image-sbom", "image-trivy", "image-grype", "sign-image",
        "prepare-release", "release", "deploy-staging", "approve-production",
        "canary-rollback", "canary-notify-oncall", "post-deploy-rollback",
        "post-deploy-notify-oncall",
    }
    expected_core |= {f"canary-{step}" for step in steps}
    if not capabilities(pipeline.answers).serves_http:
        expected_core |= {"pipeline-quality", "metrics-staging", "model-promote", "post-deploy-metrics"}
    else:
        expected_core |= {"smoke-staging", "sanity-staging", "performance-staging",
                          "post-deploy-smoke", "post-deploy-golden-signals"}
        expected_core |= {f"canary-{step}-health" for step in steps[:-1]}
    if pipeline.answers["use_database"]:
        expected_core |= {f"db-{step}-{env}" for step in ("backup", "migrate", "repair", "restore")
                          for env in ("staging", "production")}
    if capabilities(pipeline.answers).uses_llm:
        expected_core.add("evaluation")  # the model quality gate
    if capabilities(pipeline.answers).serves_model:
        expected_core.add("pin-model-version")  # the model version the image bakes in
    expected_core.add("apply-retention")  # manual here, scheduled with SCHEDULE_TASK=retention
    expected_core.add("stop-staging")  # staging's on_stop action, manual
    assert set(jobs) == expected_core
    # Merge-request-only jobs stay out; so do monitoring and the tag's job.
    assert not {"template-conflicts", "mr-image", "synthetic-checks", "release-image"} & set(jobs)
    approve = jobs["approve-production"]
    assert (approve["when"], approve["allow_failure"]) == ("manual", False)
    assert pipeline.jobs["approve-production"]["environment"]["action"] == "prepare"
    assert jobs["prepare-release"]["when"] == "manual"
    for name in ("canary-rollback", "canary-notify-oncall", "post-deploy-rollback",
                 "post-deploy-notify-oncall"):
        assert jobs[name]["when"] == "on_failure", name
    first_need = "db-migrate-production" if pipeline.answers["use_database"] else "approve-production"
    assert _needs(jobs[f"canary-{steps[0]}"]) == [first_need]
    canary_jobs = {name for name in jobs if name.startswith("canary-") and name[7].isdigit()}
    assert set(_needs(jobs["canary-rollback"])) == canary_jobs
    if not capabilities(pipeline.answers).serves_http:
        # A batch step is its own check: the next share runs when the previous run passed.
        for before, after in pairwise(steps):
            assert _needs(jobs[f"canary-{after}"]) == [f"canary-{before}"]
        assert set(_needs(jobs["post-deploy-rollback"])) == {"model-promote", "post-deploy-metrics"}
        return
    # Canary: each step after the previous step's health check; health checks after a pause.
    for step, pause in zip(steps[:-1], ["10", "20", "30"], strict=True):
        assert jobs[f"canary-{step}-health"]["when"] == "delayed"
        assert pipeline.jobs[f"canary-{step}-health"]["start_in"] == f"{pause} minutes"
    for before, after in pairwise(steps):
        assert _needs(jobs[f"canary-{after}"]) == [f"canary-{before}-health"]
    # Post-deploy checks retry before anything is rolled back.
    for name in ("post-deploy-smoke", "post-deploy-golden-signals"):
        assert pipeline.jobs[name]["retry"] == {"max": 2, "when": "script_failure"}
    if pipeline.answers["use_database"]:
        # Migrations run before the deploy that needs them; a failure is repaired from the
        # recorded revision; a restore (which loses rows) is a maintainer's decision.
        assert _needs(jobs["deploy-staging"]) == ["db-migrate-staging"]
        for env in ("staging", "production"):
            assert jobs[f"db-repair-{env}"]["when"] == "on_failure"
            assert jobs[f"db-restore-{env}"]["when"] == "manual"
            assert pipeline.jobs[f"db-migrate-{env}"]["script"] == [f"./scripts-ci/db/migrate-db.sh {env}"]
            assert pipeline.jobs[f"db-repair-{env}"]["script"] == [f"./scripts-ci/db/repair-migration.sh {env}"]
            assert pipeline.jobs[f"db-restore-{env}"]["script"] == [f"./scripts-ci/db/restore-db.sh {env}"]


def test_every_job_that_changes_an_environment_declares_it(pipeline: Pipeline) -> None:
    """GitLab counts deployments (DORA: deployment frequency, lead time) and files incidents
    per environment only for jobs that declare `environment:`."""
    for name, job in pipeline.jobs.items():
        script = "\n".join(job.get("script", []))
        if re.search(r"scripts-ci/deploy/|scripts-ci/db/(migrate|restore)", script):
            environment = job.get("environment")
            assert isinstance(environment, dict) and environment.get("name") in {"staging", "production"}, name
            assert environment.get("deployment_tier", environment["name"]) == environment["name"] or \
                environment.get("action") == "stop", name


def test_every_artifact_expires_or_says_it_never_does(pipeline: Pipeline) -> None:
    """Retention of artifacts is each job's expire_in (docs/pipeline.md, "Retention"): no job
    keeps files for GitLab's instance default by omission."""
    for name, job in pipeline.jobs.items():
        artifacts = job.get("artifacts")
        if artifacts and (artifacts.get("paths") or artifacts.get("reports")):
            assert "expire_in" in artifacts, f"{name} keeps artifacts without expire_in"


def test_deploys_follow_the_deploy_mode(pipeline: Pipeline) -> None:
    scripts = {name: "\n".join(job["script"]) for name, job in pipeline.jobs.items()}
    everything = "\n".join(scripts.values())
    if pipeline.answers["deploy_mode"] == "gitops":
        assert not re.search(r"kubectl (?!kustomize)", everything), "GitOps jobs never talk to the cluster"
        assert "gitops-promote.sh --env staging" in scripts["deploy-staging"]
        for job in ("canary-rollback", "post-deploy-rollback"):
            assert scripts[job] == "./scripts-ci/deploy/gitops-promote.sh --env production --rollback"
        variables = pipeline.jobs["deploy-staging"]["variables"]
        assert variables["GITOPS_REPO_URL"].endswith("/acme/k8s-manifests.git")
        assert variables["ARGOCD_WAIT_TIMEOUT"] == "10m"
        assert set(pipeline.jobs["deploy-staging"]["secrets"]) == {"GITOPS_TOKEN", "ARGOCD_AUTH_TOKEN"}
        # The deploy job waits for Argo CD's sync: the checks start when it ends, no fixed delay.
        assert "when" not in pipeline.jobs["smoke-staging"]
        # The stop is a commit too, with the same credentials as the deploy.
        assert scripts["stop-staging"] == "./scripts-ci/deploy/gitops-stop-staging.sh"
        assert pipeline.jobs["stop-staging"]["variables"] == variables
        assert pipeline.jobs["stop-staging"]["secrets"] == pipeline.jobs["deploy-staging"]["secrets"]
    else:
        assert "gitops" not in everything
        assert scripts["deploy-staging"] == f"./scripts-ci/deploy/deploy-to-staging.sh {SIGNED}"
        assert scripts["stop-staging"] == "./scripts-ci/deploy/stop-staging.sh"
    # Staging's on_stop action, a manual job of the default-branch pipeline, in both modes.
    assert pipeline.jobs["deploy-staging"]["environment"]["on_stop"] == "stop-staging"
    stop = pipeline.jobs["stop-staging"]
    assert stop["environment"] == {"name": "staging", "deployment_tier": "staging", "action": "stop"}
    listed = pipeline.graph("default-branch")["stop-staging"]
    assert listed["when"] == "manual" and listed["allow_failure"] is True and listed["stage"] == "staging"
    if pipeline.answers["deploy_mode"] == "direct":
        assert scripts["canary-rollback"] == "./scripts-ci/deploy/rollback-deployment.sh --immediate"
        assert "--percent 5" in scripts["canary-5"]


# Jobs that deploy, verify or roll back this commit's image (run-batch-job.sh runs what the
# live CronJob runs, whichever image that is; (gitops-)stop-staging scales down whatever runs).
HANDLES_THE_IMAGE = re.compile(r"scripts-ci/deploy/(?!run-batch-job|(gitops-)?stop-staging)|cosign verify")


def test_deploy_jobs_receive_the_signed_digest(pipeline: Pipeline) -> None:
    """build-image's dotenv report reaches every job that verifies, deploys or rolls back the
    image, and each names the image by that digest: never $IMAGE, a tag."""
    build = pipeline.jobs["build-image"]
    assert build["artifacts"]["reports"]["dotenv"] == "image.env"
    assert any('echo "IMAGE_DIGEST=$IMAGE_DIGEST" > image.env' in line for line in build["script"])
    default_branch = pipeline.graph("default-branch")
    handlers = {name for name, job in pipeline.jobs.items()
                if name in default_branch and HANDLES_THE_IMAGE.search("\n".join(job["script"]))}
    steps = [s.strip() for s in pipeline.answers.get("canary_steps", "5,25,50,100").split(",")]
    assert handlers == {"deploy-staging", "approve-production", "canary-rollback",
                        "post-deploy-rollback", *(f"canary-{step}" for step in steps)}
    for name in sorted(handlers):
        job = pipeline.jobs[name]
        if job.get("needs") is None:  # waits for the earlier stages; artifacts of build-image
            assert job["dependencies"] == ["build-image"], name
        else:
            needs = [n if isinstance(n, dict) else {"job": n} for n in job["needs"]]
            assert any(n["job"] == "build-image" and n.get("artifacts", True) is True
                       and not n.get("optional") for n in needs), name
            assert "dependencies" not in job, name  # `dependencies: []` would drop the dotenv
        for line in job["script"]:
            if not HANDLES_THE_IMAGE.search(line):
                continue
            assert '"$IMAGE"' not in line and "$CI_COMMIT_SHA" not in line, (name, line)
            if "rollback" in line:
                # The failed release is $CI_REGISTRY_IMAGE@$IMAGE_DIGEST, from the environment.
                assert "--image" not in line, (name, line)
            else:
                assert '"$CI_REGISTRY_IMAGE@$IMAGE_DIGEST"' in line, (name, line)


def test_deploy_freeze_stops_production_but_not_staging(sample_pipeline: Pipeline) -> None:
    jobs = sample_pipeline.graph("deploy-freeze")
    _assert_needs_are_in_the_pipeline("deploy-freeze", jobs)
    assert not {job["stage"] for job in jobs.values()} & PRODUCTION_STAGES
    assert {"deploy-staging", "sign-image"} <= set(jobs)


def test_release_tag_pipeline_only_tags_the_signed_image(sample_pipeline: Pipeline) -> None:
    assert set(sample_pipeline.graph("release-tag")) == {"release-image"}
    script = "\n".join(sample_pipeline.jobs["release-image"]["script"])
    assert "cosign verify" in script and 'cosign copy --force "$IMAGE" "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"' in script


def test_schedules_run_only_monitoring_or_the_template_update_check(sample_pipeline: Pipeline) -> None:
    jobs = sample_pipeline.graph("schedule")
    _assert_needs_are_in_the_pipeline("schedule", jobs)
    assert {job["stage"] for job in jobs.values()} == {"monitoring"}
    check = sample_pipeline.jobs["synthetic-checks"]["script"][0]
    if not capabilities(sample_pipeline.answers).serves_http:
        assert set(jobs) == {"synthetic-checks", "synthetic-notify-oncall"}
        assert "check-pipeline-freshness.sh --env production --max-age 26h" in check
    else:
        assert set(jobs) == {"synthetic-checks", "synthetic-golden-signals", "synthetic-notify-oncall"}
        assert "smoke-test.sh --env production" in check
    assert set(sample_pipeline.graph("schedule-template-update")) == {"template-update-check"}


def test_signing_is_keyless_and_secrets_come_from_vault(pipeline: Pipeline) -> None:
    sign = pipeline.jobs["sign-image"]
    assert sign["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    assert any(line.startswith("cosign attest --type spdxjson --predicate sbom.spdx.json") for line in sign["script"])
    assert {n["job"] for n in sign["needs"]} == {"build-image", "image-sbom", "image-trivy", "image-grype"}
    slug = "my-service"
    for name, job in pipeline.jobs.items():
        for secret in (job.get("secrets") or {}).values():
            assert secret["vault"].startswith(f"{slug}/") and secret["vault"].endswith("@secret"), name
            assert secret["token"] == "$VAULT_ID_TOKEN"
            assert "VAULT_ID_TOKEN" in job["id_tokens"], name
    assert not [key for key in pipeline.config["variables"] if re.search("PASSWORD|TOKEN|SECRET", key)]


def test_reports_use_gitlab_report_types(pipeline: Pipeline) -> None:
    reports = {name: job.get("artifacts", {}).get("reports", {}) for name, job in pipeline.jobs.items()}
    assert reports["unit-tests"] == {
        "junit": "report.xml",
        "coverage_report": {"coverage_format": "cobertura", "path": "coverage.xml"},
    }
    assert pipeline.jobs["unit-tests"]["coverage"]
    assert reports["integration-tests"] == {"junit": "integration-report.xml"}
    assert "container_scanning" in reports["mr-image-trivy"] and "container_scanning" in reports["image-trivy"]
    assert "cyclonedx" in reports["mr-image-sbom"] and "cyclonedx" in reports["image-sbom"]
    assert reports["checkov"] == {"junit": "checkov-report.xml", "sast": "gl-sast-checkov.json"}
    assert reports["trivy-fs"] == {"codequality": "gl-codequality-trivy.json"}
    assert reports["gitleaks"] == {"junit": "gitleaks-report.xml"}
    assert reports["bandit"] == {"junit": "bandit-report.xml"}
    if capabilities(pipeline.answers).serves_http:
        assert reports["performance-staging"] == {"load_performance": "performance-report.json"}
    assert reports["prepare-release"] == {"dotenv": "release.env"}
    if pipeline.answers["use_database"]:
        services = pipeline.jobs["integration-tests"]["services"]
        variables = pipeline.jobs["integration-tests"]["variables"]
        assert variables["DATABASE_URL"].startswith("postgresql+psycopg://postgres@postgres:5432/")
        if capabilities(pipeline.answers).has_vector_store:
            # PostgreSQL without pgvector (the store's exact fallback) and with it (HNSW).
            assert [s["alias"] for s in services] == ["postgres", "pgvector"]
            assert services[1]["name"].startswith("pgvector/pgvector:")
            assert variables["PGVECTOR_DATABASE_URL"].startswith(
                "postgresql+psycopg://postgres@pgvector:5433/"
            )
        else:
            assert [s["alias"] for s in services] == ["postgres"]


# ---------------------------------------------------------------- answers shape the pipeline


def test_canary_steps_and_pauses_come_from_the_answers(render_project: Callable[..., Path]) -> None:
    project = render_project(canary_steps="10, 50,100", canary_pause_minutes="0,15")
    _commit_with_origin(project)
    config = yaml.safe_load(gitlab_ci_local(project, "--preview", "--no-json-schema-validation"))
    canary = [name for name, job in config.items() if isinstance(job, dict) and job.get("stage") == "canary"]
    assert canary == ["canary-10", "canary-10-health", "canary-50", "canary-50-health",
                      "canary-100", "canary-rollback", "canary-notify-oncall"]
    assert config["canary-10"]["script"] == [f"./scripts-ci/deploy/canary-deploy.sh --percent 10 {SIGNED}"]
    assert "when" not in config["canary-10-health"]  # a pause of 0: check at once
    assert (config["canary-50-health"]["when"], config["canary-50-health"]["start_in"]) == ("delayed", "15 minutes")
    assert config["canary-100"]["script"] == [f"./scripts-ci/deploy/canary-deploy.sh --percent 100 {SIGNED}"]
    stages = (project / ".gitlab-ci.yml").read_text()
    assert "progressive rollout 10 -> 50 -> 100%" in stages


def _preview(project: Path) -> dict[str, Any]:
    _commit_with_origin(project)
    return yaml.safe_load(gitlab_ci_local(project, "--preview", "--no-json-schema-validation"))


@pytest.mark.skipif(not types_with("serves_http", False),
                    reason="PLAYBOOK_SERVICE_TYPES leaves no batch type (serves_http false)")
@pytest.mark.parametrize("tracking", [True, False])
def test_the_batch_rolls_out_as_jobs_on_growing_shares(
    render_project: Callable[..., Path], tracking: bool
) -> None:
    project = render_project(service_type=first_type_with(serves_http=False), canary_steps="10,50,100",
                             use_ml_tracking=tracking)
    config = _preview(project)
    jobs = {name: job for name, job in config.items() if isinstance(job, dict) and "stage" in job}
    by_stage = {stage: [name for name, job in jobs.items() if job["stage"] == stage]
                for stage in ("staging", "canary", "post-deploy", "monitoring")}
    assert by_stage["canary"] == ["canary-10", "canary-50", "canary-100", "canary-rollback",
                                  "canary-notify-oncall"]
    assert [config[f"canary-{step}"]["script"] for step in (10, 50, 100)] == [
        [f"./scripts-ci/deploy/canary-deploy.sh --percent {step} {SIGNED}"] for step in (10, 50, 100)]
    assert by_stage["staging"] == ["deploy-staging", "stop-staging", "metrics-staging"]
    promote = ["model-promote"] if tracking else []
    assert by_stage["post-deploy"] == [*promote, "post-deploy-metrics", "post-deploy-rollback",
                                       "post-deploy-notify-oncall"]
    if tracking:
        script = "\n".join(config["model-promote"]["script"])
        assert "run-batch-job.sh --env production -- promote" in script
        # The alias goes back only when the smoke test of this very promotion fails.
        assert "-- smoke ||" in script and "-- rollback; exit 1;" in script
    assert by_stage["monitoring"] == ["synthetic-checks", "synthetic-notify-oncall", "apply-retention",
                                      "template-update-check"]
    everything = yaml.safe_dump(config)
    for http_only in ("smoke-test.sh", "sanity-test.sh", "performance-test.sh", "golden-signals",
                      "check-canary-health", "STAGING_URL", "PRODUCTION_URL"):
        assert http_only not in everything, http_only
    assert "runs on 10 -> 50 -> 100% of the partitions" in (project / ".gitlab-ci.yml").read_text()
    quality = config["pipeline-quality"]["script"]
    assert quality == (["./scripts-ci/ml/dvc-sync.sh pull", "make repro", "make pipeline-check",
                        "./scripts-ci/ml/dvc-sync.sh push"] if tracking
                       else ["uv run --no-sync python -m my_service run"])


def test_every_script_and_make_target_a_job_runs_exists(pipeline: Pipeline) -> None:
    """A job calling a script or target the repository lacks fails only on GitLab: catch it here."""
    makefile = (pipeline.path / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    missing = []
    for name, job in pipeline.jobs.items():
        for line in [*job.get("before_script", []), *job["script"]]:
            for script in re.findall(r"\./(scripts-ci/[\w./-]+)", line):
                path = pipeline.path / script
                if not (path.is_file() and os.access(path, os.X_OK)):
                    missing.append(f"{name}: {script}")
            for target in re.findall(r"\bmake ([a-z][\w-]*)", line):
                if target not in targets:
                    missing.append(f"{name}: make {target}")
    assert missing == []


# ---------------------------------------------------------------- helpers of the pipeline


def test_conflict_check_finds_markers_and_rejected_hunks(render_project: Callable[..., Path]) -> None:
    project = render_project()
    git_commit_all(project)
    assert "No template update conflicts." in run(["make", "check-template-conflicts"], cwd=project).stdout

    readme = project / "README.md"
    original = readme.read_text()
    readme.write_text(original + "<<<<<<< before updating\nours\n=======\ntheirs\n>>>>>>> after updating\n")
    failed = run(["make", "check-template-conflicts"], cwd=project, check=False)
    assert failed.returncode != 0
    assert "README.md:" in failed.stdout and "Conflict markers above" in failed.stdout

    readme.write_text(original)
    (project / "Dockerfile.rej").write_text("@@ -1 +1 @@\n-a\n+b\n")
    failed = run(["make", "check-template-conflicts"], cwd=project, check=False)
    assert failed.returncode != 0
    assert "./Dockerfile.rej" in failed.stdout and "Rejected hunks above" in failed.stdout


def test_gitops_promotion_commits_images_and_canary_weights(
    render_project: Callable[..., Path], tmp_path: Path
) -> None:
    with ExitStack() as stack:
        _gitops_promotion(render_project, tmp_path, stack)


def _gitops_promotion(render_project: Callable[..., Path], tmp_path: Path, stack: ExitStack) -> None:
    project = render_project(deploy_mode="gitops")
    script = project / "scripts-ci" / "deploy" / "gitops-promote.sh"
    shellcheck = Path(sys.executable).parent / "shellcheck"
    run([str(_require(shellcheck)), str(script)])
    bare = gitops_repository(tmp_path, "my-service")
    argocd = stack.enter_context(fake_argocd(bare))  # Synced and Healthy at every commit
    env = {"GITOPS_REPO_URL": f"file://{bare}", **GIT_ENV, **argocd.env}

    def promote(*args: str, check: bool = True) -> str:
        result = run([str(script), *args], cwd=project, env=env, check=check)
        return result.stdout

    promote("--env", "staging", "--image", "reg/my-service:aaa")
    assert running_gitops(bare, tmp_path, "my-service", "staging")["my-service"] == ("reg/my-service:aaa", None)

    promote("--env", "production", "--image", "reg/my-service:aaa")
    promote("--env", "production", "--canary", "25", "--image", "reg/my-service:bbb")
    assert rendered_gitops(bare, tmp_path, "my-service", "production") == (
        ["reg/my-service:aaa", "reg/my-service:bbb"], [75, 25])
    # A failed canary: all traffic back to stable, twice without harm.
    promote("--env", "production", "--rollback")
    assert "already rolled back" in run([str(script), "--env", "production", "--rollback"],
                                        cwd=project, env=env).stdout
    assert rendered_gitops(bare, tmp_path, "my-service", "production") == (
        ["reg/my-service:aaa", "reg/my-service:aaa"], [100, 0])
    # A promotion that fails its post-deploy checks: the previous stable version again.
    promote("--env", "production", "--image", "reg/my-service:ccc")
    assert rendered_gitops(bare, tmp_path, "my-service", "production")[0] == ["reg/my-service:ccc"] * 2
    promote("--env", "production", "--rollback")
    assert rendered_gitops(bare, tmp_path, "my-service", "production") == (
        ["reg/my-service:aaa", "reg/my-service:aaa"], [100, 0])
    log = run(["git", "log", "--format=%s"], cwd=tmp_path / "check").stdout.splitlines()
    assert log[:2] == ["rollback(production): reg/my-service:ccc -> reg/my-service:aaa",
                       "deploy(production): reg/my-service:ccc"]
    # Wrong use is refused with a message that says what to do.
    wrong = run([str(script), "--env", "production", "--canary", "100", "--image", "x"],
                cwd=project, env=env, check=False)
    assert wrong.returncode == 2 and "promote without --canary" in wrong.stdout
    missing = run([str(script), "--env", "staging", "--image", "x"], cwd=project,
                  env={"GITOPS_REPO_URL": ""}, check=False)
    assert missing.returncode == 2 and "GITOPS_REPO_URL is not set" in missing.stdout


# ---------------------------------------------------------------- gitlab-ci-local runs jobs


DIGEST = "sha256:" + "5d" * 32
# Stand-ins of the jobs that need Docker or cosign and a registry, in the team's local.yml
# (included last, so these keys win): build-image writes the same dotenv report as the real
# one, the approval only shows the reference it would verify.
STAND_INS = f"""
build-image:
  services: []
  before_script: []
  script:
    - echo "IMAGE_DIGEST={DIGEST}" > image.env
approve-production:
  before_script: []
  script:
    - echo "would verify $CI_REGISTRY_IMAGE@$IMAGE_DIGEST"
"""


def _run_deploy_jobs(project: Path, kubectl: FakeKubectl, *jobs: str, **variables: str) -> tuple[int, str]:
    """Jobs of the default-branch pipeline in the shell, as GitLab CI (GITLAB_CI=true), with
    the recording kubectl on PATH; (exit code, log)."""
    args = [*_variables(PIPELINES["default-branch"]), "--variable", "GITLAB_CI=true",
            "--variable", "KUBE_CONTEXT_STAGING=acme/agents:staging",
            "--variable", "KUBE_CONTEXT_PRODUCTION=acme/agents:production"]
    for key, value in variables.items():
        args += ["--variable", f"{key}={value}"]
    cmd = [str(_require(GITLAB_CI_LOCAL)), *SCHEMA_ARGS, "--ignore-predefined-vars", ",".join([*SIMULATED, "GITLAB_CI"]),
           "--force-shell-executor", "--no-color", "--manual", "approve-production", *args, *jobs]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"} | GIT_ENV | kubectl.env
    result = subprocess.run(cmd, cwd=project, env=env, text=True, capture_output=True, timeout=600,
                            check=False)
    return result.returncode, result.stdout + result.stderr


def _deploy_project(render_project: Callable[..., Path], local_yml: str = STAND_INS, **answers: Any) -> Path:
    project = render_project(**answers)
    (project / ".gitlab" / "ci" / "local.yml").write_text(local_yml)
    _commit_with_origin(project)
    return project


def _applied_images(kubectl: FakeKubectl) -> set[str]:
    images = set()
    for manifest in kubectl.applied():
        for doc in yaml.safe_load_all(manifest.read_text()):
            spec = (doc or {}).get("spec", {})
            spec = spec.get("jobTemplate", {}).get("spec", spec)  # a CronJob's pods
            for container in spec.get("template", {}).get("spec", {}).get("containers", []):
                images.add(container["image"])
    return images


REGISTRY_IMAGE = "local-registry.gitlab.com/acme/ai-services/my-service"  # gitlab-ci-local's CI_REGISTRY_IMAGE


@pytest.mark.parametrize("service_type", [one_type_with(serves_http=True), one_type_with(serves_http=False)])
def test_staging_deploys_the_digest_from_the_build_jobs_dotenv(
    render_project: Callable[..., Path], tmp_path: Path, service_type: str
) -> None:
    """An HTTP type's Deployment and a batch type's CronJob both run the signed digest."""
    project = _deploy_project(render_project, service_type=service_type)
    kubectl = FakeKubectl(tmp_path / "kube")
    code, log = _run_deploy_jobs(project, kubectl, "build-image", "deploy-staging")
    assert code == 0, log[-6000:]
    assert re.search(r"PASS\s+deploy-staging", log)
    assert f"deploying {REGISTRY_IMAGE}@{DIGEST} to staging" in log
    assert _applied_images(kubectl) == {f"{REGISTRY_IMAGE}@{DIGEST}"}


@pytest.mark.skipif(not types_with("serves_http"), reason="PLAYBOOK_SERVICE_TYPES leaves no HTTP type")
def test_canary_step_and_rollback_jobs_use_the_digest_the_approval_saw(
    render_project: Callable[..., Path], tmp_path: Path
) -> None:
    project = _deploy_project(render_project, service_type=first_type_with(serves_http=True))
    kubectl = FakeKubectl(tmp_path / "kube")
    stable = "registry.example.com/acme/my-service:1111111"
    first = run([str(project / "scripts-ci/deploy/canary-deploy.sh"), "--percent", "100"], cwd=project,
                env={**kubectl.env, "IMAGE": stable, "GITLAB_CI": "", "IMAGE_DIGEST": ""})
    assert "promoted" in first.stdout
    signed = f"{REGISTRY_IMAGE}@{DIGEST}"

    code, log = _run_deploy_jobs(project, kubectl, "build-image", "approve-production", "canary-5")
    assert code == 0, log[-6000:]
    assert f"would verify {signed}" in log
    canary = kubectl.object("Deployment", "my-service-production", "my-service-canary")
    assert canary is not None and canary["spec"]["template"]["spec"]["containers"][0]["image"] == signed

    # A canary that never gets ready (AUTO_ROLLBACK off: the rollback job alone acts). The
    # rollback job knows the failed release by the same digest: the canary stops, stable
    # (which never ran it) stays.
    kubectl.env["FAKE_KUBECTL_UNHEALTHY"] = signed
    code, log = _run_deploy_jobs(project, kubectl, "build-image", "approve-production", "canary-5",
                                 "canary-rollback", AUTO_ROLLBACK="false", ROLLOUT_TIMEOUT="5s")
    assert code != 0 and re.search(r"FAIL\s+canary-5", log), log[-6000:]
    assert re.search(r"PASS\s+canary-rollback", log), log[-6000:]
    assert f"failed image {signed}" in log
    canary = kubectl.object("Deployment", "my-service-production", "my-service-canary")
    assert canary is not None and canary["spec"]["replicas"] == 0
    stable_now = kubectl.object("Deployment", "my-service-production", "my-service")
    assert stable_now is not None and stable_now["spec"]["template"]["spec"]["containers"][0]["image"] == stable


@pytest.mark.parametrize("mode", ["direct", "gitops"])
def test_a_deploy_job_without_the_digest_fails_and_deploys_nothing(
    render_project: Callable[..., Path], tmp_path: Path, mode: str
) -> None:
    """A deploy job cut off from build-image's dotenv (here: `dependencies: []` in local.yml)
    fails and says why, instead of deploying the tag."""
    project = _deploy_project(render_project, STAND_INS + "deploy-staging:\n  dependencies: []\n",
                              deploy_mode=mode)
    kubectl = FakeKubectl(tmp_path / "kube")
    bare = gitops_repository(tmp_path, "my-service")
    head = run(["git", "rev-parse", "HEAD"], cwd=bare).stdout
    code, log = _run_deploy_jobs(project, kubectl, "build-image", "deploy-staging",
                                 GITOPS_REPO_URL=f"file://{bare}")
    assert code != 0 and re.search(r"FAIL\s+deploy-staging", log), log[-6000:]
    assert "IMAGE_DIGEST is empty" in log
    assert "build-image's dotenv report (image.env)" in log
    assert kubectl.applied() == []
    assert run(["git", "rev-parse", "HEAD"], cwd=bare).stdout == head  # nothing committed


@pytest.mark.skipif(not types_with("serves_http"), reason="PLAYBOOK_SERVICE_TYPES leaves no HTTP type")
def test_gitops_deploy_commits_the_digest_from_the_build_jobs_dotenv(
    render_project: Callable[..., Path], tmp_path: Path
) -> None:
    project = _deploy_project(render_project, service_type=first_type_with(serves_http=True), deploy_mode="gitops")
    bare = gitops_repository(tmp_path, "my-service")
    with fake_argocd(bare) as argocd:
        code, log = _run_deploy_jobs(project, FakeKubectl(tmp_path / "kube"), "build-image", "deploy-staging",
                                     GITOPS_REPO_URL=f"file://{bare}", **argocd.env)
        assert code == 0, log[-6000:]
        # The job waited for Argo CD: Synced and Healthy at the commit it pushed.
        head = run(["git", "rev-parse", "HEAD"], cwd=bare).stdout.strip()
        assert f"my-service-staging is Synced and Healthy at {head[:12]}" in log
        signed = f"{REGISTRY_IMAGE}@{DIGEST}"
        assert running_gitops(bare, tmp_path, "my-service", "staging")["my-service"] == (signed, None)
        # Staging's on_stop job commits the scale-down with the same credentials and waits too.
        code, log = _run_deploy_jobs(project, FakeKubectl(tmp_path / "kube"), "stop-staging",
                                     GITOPS_REPO_URL=f"file://{bare}", **argocd.env)
    assert code == 0 and re.search(r"PASS\s+stop-staging", log), log[-6000:]
    head = run(["git", "rev-parse", "HEAD"], cwd=bare).stdout.strip()
    assert f"my-service-staging is Synced and Healthy at {head[:12]}" in log
    assert running_gitops(bare, tmp_path, "my-service", "staging")["my-service"] == (signed, 0)



@pytest.mark.slow
def test_pre_commit_feature_and_merge_request_jobs_run_green_in_the_shell(
    bootstrapped: Callable[..., Path],
    postgres: Postgres,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The jobs that need no registry, cluster or scanner image run for real, as on a runner."""
    source = bootstrapped(service_type="microservice", use_database=True)
    project = tmp_path / "project"
    # Jobs write into the tree and build their own .venv (`uv sync --frozen`, as on GitLab).
    shutil.copytree(source, project, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    # PostgreSQL comes from the test, not from a `services:` container: the team's
    # local.yml (included last) overrides the job, as a team would.
    (project / ".gitlab" / "ci" / "local.yml").write_text("integration-tests:\n  services: []\n")
    _commit_with_origin(project)
    database = postgres.create_database("pipeline_integration")
    jobs = ["pre-commit", "unit-tests", "integration-tests", "contract-tests", "e2e-tests",
            "bandit", "template-conflicts"]
    out = gitlab_ci_local(
        project, "--force-shell-executor", "--concurrency", "2",
        *_variables(PIPELINES["merge-request"]),
        "--variable", f"DATABASE_URL={database}",
        "--variable", f"UV_CACHE_DIR={tmp_path_factory.getbasetemp() / 'uv-cache-pipeline'}",
        *jobs,
    )
    for job in jobs:
        assert re.search(rf"PASS\s+{re.escape(job)}\b", out), f"{job} did not pass:\n{out[-6000:]}"
    assert re.search(r"PASS\s+unit-tests\s+\d+(\.\d+)?% coverage", out)
    summary = [line for line in out.splitlines() if re.match(r"integration-tests\s+> =+ .* in [\d.]+s", line)]
    assert summary and " passed" in summary[-1], summary
    assert "skipped" not in summary[-1] and "failed" not in summary[-1], summary
    artifacts = project / ".gitlab-ci-local" / "artifacts"
    assert (artifacts / "unit-tests" / "report.xml").exists()
    assert (artifacts / "unit-tests" / "coverage.xml").exists()
    assert (artifacts / "integration-tests" / "integration-report.xml").exists()
    # The database tests ran their migrations against this PostgreSQL.
    assert postgres.psql(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'alembic_version'", "pipeline_integration"
    ) == "1"


@pytest.mark.slow
def test_release_notes_follow_conventional_commits(
    bootstrapped: Callable[..., Path], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(bootstrapped(service_type="microservice", use_database=False), project, symlinks=True)

    def commit(message: str) -> None:
        (project / "notes.txt").write_text(message)
        git_commit_all(project, message)

    commit("fix(api): handle an empty body")
    result = run(["make", "release-notes"], cwd=project, env=GIT_ENV)
    assert (project / "release.env").read_text() == "RELEASE_VERSION=v0.1.0\n"
    assert "Next release: v0.1.0" in result.stdout
    run(["git", "tag", "v0.1.0"], cwd=project, env=GIT_ENV)

    none = run(["make", "release-notes"], cwd=project, env=GIT_ENV, check=False)
    assert none.returncode != 0 and "Nothing to release" in none.stdout

    commit("feat(api): score in batches")
    commit("fix: round scores")
    run(["make", "release-notes"], cwd=project, env=GIT_ENV)
    assert (project / "release.env").read_text() == "RELEASE_VERSION=v0.2.0\n"
    notes = (project / "release-notes.md").read_text()
    assert "Score in batches" in notes and "Round scores" in notes
    assert "Handle an empty body" not in notes  # already released in v0.1.0
    changelog = (project / "CHANGELOG.md").read_text()
    assert "[0.2.0]" in changelog and "[0.1.0]" in changelog


@pytest.mark.slow
def test_template_update_check_reports_a_newer_template_release(
    copier_template: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The scheduled job passes when current and warns (exit 2, allowed) when behind."""
    template = tmp_path / "template"
    run(["git", "clone", "--quiet", str(copier_template), str(template)])
    # Only this test's releases: drop the tag pytest-copier put on its copy.
    run(["git", "tag", "--delete", "99.99.99"], cwd=template, env=GIT_ENV)
    run(["git", "tag", "1.0.0"], cwd=template, env=GIT_ENV)
    project = render(template, tmp_path / "project", {}, vcs_ref="1.0.0")
    _commit_with_origin(project)
    cache = ["--variable", f"UV_CACHE_DIR={tmp_path_factory.getbasetemp() / 'uv-cache-pipeline'}"]
    args = ["--force-shell-executor", *_variables(PIPELINES["schedule-template-update"]), *cache,
            "template-update-check"]

    current = gitlab_ci_local(project, *args)
    assert "Project is up-to-date" in current
    assert re.search(r"PASS\s+template-update-check", current)

    (template / "NEWS.md").write_text("A newer playbook\n")
    git_commit_all(template, "feat: a newer playbook")
    run(["git", "tag", "1.1.0"], cwd=template, env=GIT_ENV)
    behind = gitlab_ci_local(project, *args)
    assert "Current version is 1.0.0, latest version is 1.1.0" in behind
    assert re.search(r"WARN\s+template-update-check", behind)


# ---------------------------------------------------------------- docs


def test_docs_walk_through_every_job(pipeline: Pipeline) -> None:
    docs = (ROOT / "docs" / "pipeline.md").read_text()
    missing = [name for name in pipeline.jobs if not re.search(rf"`{re.escape(name)}`", docs)
               and not re.fullmatch(r"canary-\d+(-health)?", name)]
    assert missing == []
    for stage in STAGES:
        assert re.search(rf"^##+ .*\b{re.escape(stage)}\b", docs, re.M), stage


@pytest.mark.parametrize(
    "service_type",
    types_with("uses_llm") or [pytest.param(None, id="no-type-with-uses_llm-true", marks=pytest.mark.skip(
        reason="PLAYBOOK_SERVICE_TYPES leaves no service type with uses_llm true"))],
)
def test_ai_types_gate_on_their_evaluation(render_project: Callable[..., Path], service_type: str) -> None:
    """The evaluation quality gate (`make eval`) is a feature-stage job of the AI (uses_llm) types."""
    project = render_project(service_type=service_type, eval_threshold=0.9)
    feature = yaml.load((project / ".gitlab/ci/feature.yml").read_text(), Loader=_GitLabLoader)
    job = feature["evaluation"]
    assert job["stage"] == "feature"
    assert job["script"] == ["make eval"]
    assert "eval-report.json" in job["artifacts"]["paths"]
    assert "EVAL_THRESHOLD ?= 0.9" in (project / "Makefile").read_text()
    assert not capabilities({}).uses_llm, "the default type stands for the types without an LLM"
    without_llm = yaml.load(
        (render_project().joinpath(".gitlab/ci/feature.yml")).read_text(), Loader=_GitLabLoader
    )
    assert "evaluation" not in without_llm
