"""The generated renovate.json is valid for Renovate and asks for what the fleet needs."""

from __future__ import annotations

import json
import re

from .conftest import Render
from .support.procs import run
from .support.project import ROOT

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
