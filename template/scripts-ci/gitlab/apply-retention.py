#!/usr/bin/env -S uv run --quiet --script
# /// script
# requires-python = ">=3.11"
# dependencies = ["python-gitlab>=5,<8"]
# ///
"""Usage: scripts-ci/gitlab/apply-retention.py [--dry-run] [--project ID_OR_PATH]

Applies the playbook's retention to this GitLab project through GitLab's API
(python-gitlab): images tagged with a commit SHA (and merge-request images mr-<iid>) are
deleted after 30 days, release tags vX.Y.Z are kept forever, and so are latest, the build
cache and cosign's signatures and attestations (sha256-...); the artifacts of the latest
pipeline of each ref are kept (each job's own artifacts expire after its `expire_in`).

It reads the project's current settings and changes only what differs: a second run sends
nothing. --dry-run prints the request it would send and sends none.

Settings (GitLab's container registry cleanup policy, project attribute
container_expiration_policy_attributes, and keep_latest_artifact):
  enabled true, cadence 1d (runs daily), older_than 30d, keep_n 10 (the ten newest tags
  survive whatever their age: a quiet project keeps something to roll back to),
  name_regex_delete ^([0-9a-f]{40}|mr-[0-9]+)$,
  name_regex_keep ^(v[0-9]+\\.[0-9]+\\.[0-9]+|latest|cache|sha256-.*)$

Environment:
  GITLAB_API_TOKEN   a project access token (role Maintainer, scope api): changing the
                     settings needs it; CI_JOB_TOKEN cannot (required)
  CI_API_V4_URL      GitLab's API, e.g. https://gitlab.example.com/api/v4 (set in GitLab CI)
  CI_PROJECT_ID      the project (set in GitLab CI; --project overrides)

Exit codes: 0 applied (or nothing to change); 1 GitLab refused the change; 2 usage or
configuration (no token, a token GitLab refuses, no such project); 5 GitLab unreachable.

Example:
  GITLAB_API_TOKEN=... CI_API_V4_URL=https://gitlab.example.com/api/v4 \\
    scripts-ci/gitlab/apply-retention.py --project acme/ai-services/my-service --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import gitlab
import requests

POLICY: dict[str, Any] = {
    "enabled": True,
    "cadence": "1d",
    "older_than": "30d",
    "keep_n": 10,
    "name_regex_delete": r"^([0-9a-f]{40}|mr-[0-9]+)$",
    "name_regex_keep": r"^(v[0-9]+\.[0-9]+\.[0-9]+|latest|cache|sha256-.*)$",
}
PROJECT: dict[str, Any] = {"keep_latest_artifact": True}


def fail(code: int, message: str) -> None:
    print(f"apply-retention: {message}", file=sys.stderr)
    sys.exit(code)


def changes(project: dict[str, Any]) -> dict[str, Any]:
    """What differs from the playbook: the body of the PUT, empty when nothing does."""
    current = project.get("container_expiration_policy") or {}
    # GitLab answers name_regex for what it takes as name_regex_delete.
    current = {
        **current,
        "name_regex_delete": current.get("name_regex_delete", current.get("name_regex")),
    }
    policy = {key: value for key, value in POLICY.items() if current.get(key) != value}
    body: dict[str, Any] = {
        key: value for key, value in PROJECT.items() if project.get(key) != value
    }
    if policy:
        body["container_expiration_policy_attributes"] = policy
    return body


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--project", default=os.environ.get("CI_PROJECT_ID", ""))
    parser.add_argument("-h", "--help", action="store_true")
    args, unknown = parser.parse_known_args()
    if args.help:
        print(__doc__.strip())
        return
    if unknown:
        fail(2, f"unknown argument {unknown[0]!r} (see --help)")
    token = os.environ.get("GITLAB_API_TOKEN", "")
    api = os.environ.get("CI_API_V4_URL", "").rstrip("/")
    if not token:
        fail(
            2,
            "GITLAB_API_TOKEN is not set: a project access token with role Maintainer and scope api (Vault, secret/<project>/ci, gitlab_api_token)",
        )
    if not api.endswith("/api/v4"):
        fail(
            2,
            f"CI_API_V4_URL must be GitLab's API URL ending in /api/v4, e.g. https://gitlab.example.com/api/v4 (got {api!r})",
        )
    if not args.project:
        fail(2, "no project: set CI_PROJECT_ID or give --project ID_OR_PATH")

    client = gitlab.Gitlab(api.removesuffix("/api/v4"), private_token=token, timeout=30)
    try:
        project = client.projects.get(args.project)
        body = changes(project.asdict())
        if not body:
            print(
                f"apply-retention: {project.path_with_namespace}: retention already as the playbook says; nothing to change"
            )
            return
        request = f"PUT {api}/projects/{project.id} {json.dumps(body, sort_keys=True)}"
        if args.dry_run:
            print(f"apply-retention: dry run, would send: {request}")
            return
        print(f"apply-retention: {request}")
        client.projects.update(project.id, body)
        print(f"apply-retention: {project.path_with_namespace}: retention applied")
    except gitlab.exceptions.GitlabAuthenticationError as error:
        fail(
            2,
            f"GitLab refused the token (HTTP {error.response_code}): GITLAB_API_TOKEN must be a project access token with scope api",
        )
    except gitlab.exceptions.GitlabGetError as error:
        fail(
            2,
            f"cannot read project {args.project!r} (HTTP {error.response_code}): check CI_PROJECT_ID/--project and that the token's role is Maintainer",
        )
    except gitlab.exceptions.GitlabUpdateError as error:
        fail(
            1,
            f"GitLab refused the change (HTTP {error.response_code}): {error.error_message}; the token needs role Maintainer",
        )
    except requests.exceptions.ConnectionError as error:
        fail(5, f"GitLab is unreachable at {api}: {error.__class__.__name__}")


if __name__ == "__main__":
    main()
