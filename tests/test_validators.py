"""Every validator rejects bad values with a message that says what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support.project import render

BAD_VALUES = {
    "project_name": [
        ("1st service", "must start with a letter"),
        ("x", "2-63 letters"),
        ("Service/with/slashes", "must start with a letter and use 2-63"),
    ],
    "project_slug": [
        ("My-Service", "lowercase letters and digits"),
        ("my--service", "joined by single '-'"),
        ("-service", "start with a letter"),
        ("a" * 51, "at most 50 characters"),
    ],
    "package_name": [
        ("my-service", "valid lowercase Python identifier"),
        ("1service", "valid lowercase Python identifier"),
        ("import", "Python keyword or shadows"),
        ("json", "Python keyword or shadows"),
    ],
    "description": [
        ("short", "10-200 characters"),
        ("x" * 201, "10-200 characters"),
        ("two\nlines here", "single line"),
    ],
    "gitlab_host": [
        ("https://gitlab.com", "no 'https://'"),
        ("gitlab", "host name such as"),
        ("gitlab.com/group", "no path"),
    ],
    "gitlab_group": [
        ("/acme", "no leading or trailing '/'"),
        ("acme/", "no leading or trailing '/'"),
        ("acme//ml", "segments of letters"),
        ("acme/repo.git", "no '.git'"),
    ],
    "owners": [
        ("alice", "each starting with '@'"),
        ("@alice,@bob", "separated by spaces"),
        ("@", "GitLab users or groups"),
        ("@acme/ ml", "GitLab users or groups"),
    ],
    "coverage_threshold": [
        (-1, "from 0 to 100"),
        (101, "from 0 to 100"),
        (1000, "from 0 to 100"),
    ],
    "canary_steps": [
        ("5,25,50", "end at 100"),
        ("50,25,100", "strictly ascending"),
        ("5;25;100", "comma-separated whole percentages"),
        ("0,50,100", "start at 1 or more"),
    ],
    "canary_pause_minutes": [
        ("10,20", "one value per canary step"),
        ("ten", "comma-separated whole minutes"),
        ("10,20,30,40", "one value per canary step"),
    ],
    "staging_url": [
        ("staging.example.com", "http(s) URL"),
        ("ftp://staging.example.com", "http(s) URL"),
        ("https://has space.example.com", "http(s) URL"),
    ],
    "production_url": [
        ("example.com", "http(s) URL"),
        ("https://", "http(s) URL"),
        ("mailto:ops@example.com", "http(s) URL"),
    ],
}

CASES = [
    pytest.param(question, value, message, id=f"{question}={str(value)[:20]!r}")
    for question, cases in BAD_VALUES.items()
    for value, message in cases
]


@pytest.mark.parametrize(("question", "value", "message"), CASES)
def test_bad_value_is_rejected_with_a_helpful_message(
    copier_template: Path, tmp_path: Path, question: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        render(copier_template, tmp_path / "p", {question: value})
    shown = str(raised.value)
    assert message in shown, shown
    assert question in shown, shown
    assert not (tmp_path / "p").exists()


def test_gitops_repository_is_validated_when_gitops_is_chosen(
    copier_template: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="gitops_repo must be a GitLab project path"):
        render(copier_template, tmp_path / "p", {"deploy_mode": "gitops", "gitops_repo": "no-slash"})


def test_gitops_is_refused_for_the_batch_pipeline(copier_template: Path, tmp_path: Path) -> None:
    """A batch's rollout runs Jobs from the pipeline: GitOps would leave nothing to run them."""
    with pytest.raises(ValueError, match=r"deploy_mode gitops is for the HTTP service types.*choose direct"):
        render(copier_template, tmp_path / "p", {"service_type": "data-pipeline", "deploy_mode": "gitops"})
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("question", "value"),
    [("service_type", "monolith"), ("python_version", "2.7"), ("runtime_image", "alpine")],
)
def test_choices_reject_values_outside_the_list(
    copier_template: Path, tmp_path: Path, question: str, value: str
) -> None:
    with pytest.raises(ValueError, match=f"Invalid choice for .{question}.: .{value}. is not in"):
        render(copier_template, tmp_path / "p", {question: value})
