"""The generated renovate.json is valid for Renovate and asks for what the fleet needs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from .conftest import Render
from .support.procs import run
from .support.project import ROOT, git_commit_all

pytestmark = pytest.mark.npm  # renovate and its config validator

VALIDATOR = ROOT / "node_modules" / ".bin" / "renovate-config-validator"


def test_renovate_validator_accepts_the_generated_config(render_project: Render) -> None:
    assert VALIDATOR.exists(), f"{VALIDATOR} is missing: run `make deps` (npm ci installs renovate)"
    project = render_project(use_database=True)
    result = run([str(VALIDATOR), "--strict", "renovate.json"], cwd=project, check=False)
    assert result.returncode == 0, result.stdout
    assert "Config validated successfully" in result.stdout, result.stdout


def test_renovate_updates_the_template_dependencies_images_and_hooks(render_project: Render) -> None:
    config = json.loads((render_project() / "renovate.json").read_text())
    managers = set(config["enabledManagers"])
    assert {"copier", "pep621", "pre-commit", "dockerfile", "gitlabci"} <= managers
    assert config["pre-commit"]["enabled"] is True  # off by default in Renovate
    assert config["lockFileMaintenance"]["enabled"] is True  # uv.lock refreshed

    (template_rule,) = [rule for rule in config["packageRules"] if rule.get("matchManagers") == ["copier"]]
    assert template_rule["automerge"] is False
    assert template_rule["ignoreScripts"] is False  # lets Renovate pass --trust for migrations
    assert template_rule["constraints"]["copier"] == "9.19.1"
    assert "template-update" in template_rule["labels"]

    # Included pipeline files hold images too; Renovate's default only reads .gitlab-ci.yml.
    patterns = [re.compile(pattern) for pattern in config["gitlabci"]["fileMatch"]]
    assert any(p.search(".gitlab/ci/merge-request.yml") for p in patterns)
    assert not any(p.search("deploy/base/deployment.yaml") for p in patterns)


RENOVATE = ROOT / "node_modules" / ".bin" / "renovate"


def test_renovate_finds_every_pinned_image_and_tool(render_project: Render, tmp_path: Path) -> None:
    """Renovate itself (local platform, extract only: no network) lists what it would update."""
    assert RENOVATE.exists(), f"{RENOVATE} is missing: run `make deps` (npm ci installs renovate)"
    project = render_project(use_database=True)
    git_commit_all(project)
    report = tmp_path / "renovate-report.json"
    run([str(RENOVATE), "--platform=local", "--dry-run=extract", "--report-type=file",
         f"--report-path={report}"], cwd=project,
        env={**os.environ, "RENOVATE_CONFIG_FILE": "renovate.json", "LOG_LEVEL": "warn"})
    (repository,) = json.loads(report.read_text())["repositories"].values()
    found = {
        (manager, dep["depName"], dep.get("currentValue"))
        for manager, files in repository["packageFiles"].items()
        for package_file in files
        for dep in package_file["deps"]
        if not dep.get("skipReason")
    }
    by_name = {name: (manager, value) for manager, name, value in found}
    # Images in `image:` / `services:` of every pipeline file, and those passed in variables.
    pipeline = "\n".join(path.read_text() for path in (project / ".gitlab" / "ci").glob("*.yml"))
    for image in set(re.findall(r"^\s+(?:image|name|[A-Z_]+_IMAGE): ([a-z][\w./-]+):([\w.-]+)$", pipeline, re.M)):
        assert image[0] in by_name, f"Renovate does not see {image[0]}:{image[1]}"
    assert by_name["moby/buildkit"] == ("regex", "v0.19.0")
    assert by_name["tonistiigi/binfmt"] == ("regex", "qemu-v8.1.5")
    assert by_name["copier"] == ("regex", "9.19.1")
    assert by_name["pip-audit"][0] == "regex"
    assert by_name["postgres"][0] == "gitlabci"
    # The manifests' image is this project's own, set by the pipeline: the rule that turns its
    # lookup off names exactly what Renovate extracts (rules apply after extraction).
    assert by_name["my-service"] == ("kustomize", "set-by-pipeline")
    config = json.loads((project / "renovate.json").read_text())
    assert {"matchManagers": ["kustomize"], "matchDepNames": ["my-service"], "enabled": False}.items() <= next(
        rule for rule in config["packageRules"] if rule.get("matchManagers") == ["kustomize"]).items()
