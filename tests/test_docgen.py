"""The docs' generators read GitLab CI like GitLab does: job sets per source agree with gitlab-ci-local."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from dev.docgen import gitlab_ci, pipeline_page, questions
from dev.docgen.project import embed_markdown

from .conftest import Render
from .support import ci_local
from .support.project import ROOT

SYNTHETIC = {
    ".gitlab-ci.yml": """
        stages: [lint, test, build, deploy, monitor]
        variables:
          DEPLOY_ENABLED: "yes"
        workflow:
          rules:
            - if: $CI_PIPELINE_SOURCE == "merge_request_event"
            - if: $CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS
              when: never
            - if: $CI_COMMIT_BRANCH
            - if: $CI_COMMIT_TAG
        include:
          - local: ci/*.yml
        default:
          interruptible: true
        .rules:
          mr:
            - if: $CI_PIPELINE_SOURCE == "merge_request_event"
          main:
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "schedule"
        .check:
          image: alpine:3.20
          rules:
            - !reference [.rules, mr]
            - !reference [.rules, main]
        lint:
          extends: .check
          stage: lint
          script: [echo lint]
          needs: []
    """,
    "ci/10-test.yml": """
        unit:
          extends: .check
          stage: test
          script: [echo unit]
          needs: [lint]
        matrix-test:
          stage: test
          parallel:
            matrix:
              - PY: ["3.11", "3.12"]
          script: [echo $PY]
          rules:
            - if: ($CI_PIPELINE_SOURCE == "merge_request_event" || $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH) && $PY != "2.7"
    """,
    "ci/20-build.yml": """
        build:
          stage: build
          script: [echo build]
          needs:
            - job: unit
              optional: true
            - job: matrix-test
              optional: true
          rules:
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
            - if: $CI_COMMIT_TAG =~ /^v\\d+\\.\\d+\\.\\d+$/
    """,
    "ci/30-deploy.yml": """
        .deploy:
          stage: deploy
          script: [echo deploy]
          when: on_success
        deploy:
          extends: .deploy
          needs: [build]
          rules:
            - if: $CI_COMMIT_TAG && $DEPLOY_ENABLED == "yes"
              when: manual
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
        monitor:
          stage: monitor
          script: [echo monitor]
          needs: []
          rules:
            - if: $CI_PIPELINE_SOURCE == "schedule"
            - exists: [Dockerfile]
              when: manual
    """,
    "Dockerfile": "FROM scratch\n",
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return _write(tmp_path / "synthetic", SYNTHETIC)


def _our_jobs(pipeline: gitlab_ci.Pipeline, source: gitlab_ci.Source) -> dict[str, str]:
    job_plan = gitlab_ci.plan(pipeline, source)
    return {name: planned.when for planned in job_plan.jobs for name in gitlab_ci.instance_names(planned.job)}


def _assert_agrees_with_gitlab_ci_local(project: Path, tag: str) -> list[str]:
    pipeline = gitlab_ci.load(project)
    repo = ci_local.throwaway_repo(
        [str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and ".git" not in p.parts],
        project,
        project.parent / f"{project.name}-repo",
    )
    checked = []
    for source in gitlab_ci.sources(tag=tag):
        if not gitlab_ci.plan(pipeline, source).runs:
            continue  # gitlab-ci-local's job list does not apply workflow:rules
        theirs = {
            name: job["when"]
            for name, job in ci_local.list_jobs(repo, source.variables, source.unset).items()
        }
        assert _our_jobs(pipeline, source) == theirs, source.title
        checked.append(source.key)
    return checked


@pytest.mark.npm
def test_synthetic_pipeline_is_read_as_gitlab_ci_local_reads_it(synthetic: Path) -> None:
    checked = _assert_agrees_with_gitlab_ci_local(synthetic, tag="v1.2.3")
    assert checked == ["merge_request", "default_branch", "tag", "schedule", "schedule_template_update"]


@pytest.mark.npm
def test_generated_pipeline_is_read_as_gitlab_ci_local_reads_it(render_project: Render) -> None:
    """The job graph in the docs is the one GitLab would run, for whatever pipeline the template generates."""
    checked = _assert_agrees_with_gitlab_ci_local(render_project(), tag="v1.2.3")
    assert checked, "workflow:rules of the generated pipeline allow no source at all"


def test_plan_resolves_includes_extends_references_and_rules(synthetic: Path) -> None:
    pipeline = gitlab_ci.load(synthetic)
    assert pipeline.files == [".gitlab-ci.yml", "ci/10-test.yml", "ci/20-build.yml", "ci/30-deploy.yml"]
    assert ".check" not in pipeline.jobs and ".deploy" not in pipeline.jobs
    assert pipeline.jobs["unit"].config["image"] == "alpine:3.20"  # from extends
    assert pipeline.jobs["unit"].config["interruptible"] is True  # from default:
    assert pipeline.jobs["matrix-test"].matrix == ["3.11", "3.12"]
    by_source = {s.key: s for s in gitlab_ci.sources()}

    mr = gitlab_ci.plan(pipeline, by_source["merge_request"])
    assert [p.job.name for p in mr.jobs] == ["lint", "unit", "matrix-test", "monitor"]
    tag = gitlab_ci.plan(pipeline, by_source["tag"])
    assert {p.job.name: p.when for p in tag.jobs} == {
        "build": "on_success",
        "deploy": "manual",
        "monitor": "manual",
    }
    deploy = next(p for p in tag.jobs if p.job.name == "deploy")
    assert deploy.allow_failure is False  # manual through rules blocks the pipeline
    build = next(p for p in tag.jobs if p.job.name == "build")
    assert build.needs == []  # both optional needs are absent from a tag pipeline
    assert not tag.problems


def test_a_need_on_a_job_that_does_not_run_is_reported(synthetic: Path) -> None:
    path = synthetic / "ci/20-build.yml"
    path.write_text(path.read_text().replace("optional: true", "optional: false", 1))
    pipeline = gitlab_ci.load(synthetic)
    tag = gitlab_ci.plan(pipeline, gitlab_ci.sources()[2])
    assert tag.problems == [
        "Tag (v1.2.3): job 'build' needs 'unit', which does not run in this pipeline "
        "(GitLab refuses to create it; mark the need optional or align the rules)"
    ]


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"ci/10-test.yml": "unit:\n  stage: nope\n  script: [x]\n"}, "stage 'nope' is not in stages"),
        ({"ci/10-test.yml": "unit:\n  stage: test\n  needs: [ghost]\n  script: [x]\n"}, "needs 'ghost'"),
        ({"ci/10-test.yml": "unit:\n  extends: .loop\n.loop:\n  extends: unit\n"}, "extends loop"),
        ({"ci/10-test.yml": "unit:\n  extends: .missing\n  script: [x]\n"}, "extends: '.missing'"),
        ({".gitlab-ci.yml": "include:\n  - local: nothere.yml\n"}, "matches no file"),
        ({"ci/10-test.yml": "unit:\n  script: !reference [.nope, script]\n"}, "does not resolve"),
    ],
)
def test_unreadable_configurations_fail_with_the_reason(
    tmp_path: Path, broken: dict[str, str], message: str
) -> None:
    files = {**SYNTHETIC, **broken}
    if "ci/10-test.yml" in broken:  # the others need unit
        files["ci/20-build.yml"] = files["ci/30-deploy.yml"] = ""
    root = _write(tmp_path / "broken", files)
    with pytest.raises(gitlab_ci.CIError, match=message):
        gitlab_ci.load(root)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('$CI_PIPELINE_SOURCE == "push"', True),
        ("$CI_PIPELINE_SOURCE == 'schedule'", False),
        ("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", True),
        ("$CI_COMMIT_TAG", False),
        ("$CI_COMMIT_TAG == null", True),
        ("$EMPTY", False),
        ('$EMPTY == ""', True),
        ("$CI_COMMIT_BRANCH =~ /^MA/i", True),
        ("$CI_COMMIT_BRANCH !~ /^release-/", True),
        ("$CI_COMMIT_TAG =~ /^v/", False),
        ("$PATTERN && $CI_COMMIT_BRANCH =~ $PATTERN", True),
        ('$CI_COMMIT_TAG || $CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH', True),
        ('($CI_COMMIT_TAG || $CI_PIPELINE_SOURCE == "push") && $EMPTY', False),
        ("${CI_COMMIT_BRANCH} != 'main'", False),
    ],
)
def test_rules_if_expressions(expression: str, expected: bool) -> None:
    variables = {
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
        "EMPTY": "",
        "PATTERN": "/^ma/",
    }
    assert gitlab_ci.evaluate_if(expression, variables) is expected


@pytest.mark.parametrize("expression", ["$A ==", "($A", "$A = 'x'", "$A =~ 'x'"])
def test_unparsable_expressions_fail(expression: str) -> None:
    with pytest.raises(gitlab_ci.CIError):
        gitlab_ci.evaluate_if(expression, {"A": "x"})


def test_mermaid_graph_has_stages_needs_optional_needs_and_manual_jobs(synthetic: Path) -> None:
    pipeline = gitlab_ci.load(synthetic)
    main = gitlab_ci.plan(pipeline, gitlab_ci.sources()[1])
    graph = pipeline_page.mermaid(pipeline, main)
    assert graph.startswith("flowchart LR")
    for stage in ("lint", "test", "build", "deploy"):
        assert f'["{stage}"]' in graph
    ids = dict((name, node) for node, name in re.findall(r'^ *(j\d+)\["([^"<]+)', graph, re.MULTILINE))
    assert f"{ids['lint']} --> {ids['unit']}" in graph
    assert f"{ids['unit']} -.-> {ids['build']}" in graph
    assert f"{ids['matrix-test']} -.-> {ids['build']}" in graph
    assert f"class {ids['monitor']} manual" in graph  # rules: exists: [Dockerfile], when: manual
    markdown, problems = pipeline_page.render(pipeline, gitlab_ci.sources())
    assert not problems
    assert '=== "Merge request"' in markdown and '=== "Schedule"' in markdown
    assert "| test | `matrix-test` × 2 |" in markdown


def test_questions_reference_covers_every_question() -> None:
    read = questions.read(ROOT / "copier.yml")
    names = [q.name for q in read]
    assert names[:3] == ["project_name", "project_slug", "package_name"]
    slug = next(q for q in read if q.name == "project_slug")
    assert slug.patterns == [r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\Z"]
    assert any("at most 50 characters" in rule and "got" not in rule for rule in slug.rules)
    used = questions.usage(ROOT / "template", names)
    assert "pyproject.toml" in used["coverage_threshold"]
    assert any(path.startswith("src/{{package_name}}") for path in used["package_name"])


def test_embedded_markdown_loses_title_and_repository_links() -> None:
    text = "# Title\n\nSee [the script](deploy/run.sh) and [GitLab](https://gitlab.com).\n\n## Part\n\n```bash\n# comment\n```\n"
    assert embed_markdown(text) == (
        "See the script (`deploy/run.sh`) and [GitLab](https://gitlab.com).\n\n### Part\n\n```bash\n# comment\n```\n"
    )


def test_a_spec_header_before_the_configuration_is_skipped(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "with-spec",
        {".gitlab-ci.yml": "spec:\n  inputs:\n    stage:\n      default: test\n---\njob:\n  script: [x]\n"},
    )
    assert list(gitlab_ci.load(root).jobs) == ["job"]
