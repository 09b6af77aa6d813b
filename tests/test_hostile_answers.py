"""Answers never become code: a hostile answer is refused, or it lands as inert text.

Every answer that reaches a file is validated to a charset that is safe where it lands, or
encoded for that file (docs/questions.md, "Where answers land"). Each payload below tries to
run `touch MARKER` (shell, Python, Jinja, Dockerfile) or to break the file it lands in
(quotes, backslashes, line breaks, YAML keywords). The refused ones must name the question
and leave no files; the accepted ones are combined into two projects that must pass
`make bootstrap && make check`, be imported, have every scripts-ci library sourced and every
script run with --help, and hold each answer back unchanged, while the marker never appears.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support.containers import engine_env
from .support.procs import run
from .support.project import bootstrap, project_env, render
from .test_backstage import _validate as backstage_validate

# `{m}` is replaced by the marker file: a short absolute path, so payloads fit the limits.
SHELL = ["$(touch {m})", "`touch {m}`", "'; touch {m}; '", '"; touch {m}; "', "; touch {m}"]
PYTHON = "__import__('os').system('touch {m}')"
JINJA = "{{ cycler.__init__.__globals__.os.system('touch {m}') }}"

# question -> hostile values that must be refused (extra answers needed to ask it, if any)
REFUSED: dict[str, list[Any]] = {
    "project_name": [
        'My "Service"',
        "My Service\n",
        "My Service\r",
        "My\tService",
        "Svc " + SHELL[0],
        "Svc " + SHELL[1],
        "Svc'; x",
        "Svc\\",
        "Servizio è",
        "S" * 64,
        JINJA,
    ],
    "project_slug": [
        "svc\n",
        "svc" + SHELL[0],
        "svc'",
        "null",
        "yes",
        "a" * 51,
        "svc\r",
    ],
    "package_name": ["pkg\n", "pkg;import os", "pkg" + SHELL[1], "p" * 51],
    "description": [
        "Scores fraud\n",
        "Scores fraud\r",
        "Scores\nfraud " + SHELL[0],
        "Scores\tfraud well",
        "Scores fraud\u2028" + PYTHON,
        "bidi \u202e" + SHELL[0],
        "\x1b[31mred terminal\x1b[0m",
        "NUL \x00 inside text",
        "x" * 201,
        " leading space",
        "trailing space ",
        "too short",
        "ends in a backslash\\",
        'a backslash \\" before a quote',
    ],
    "gitlab_host": [
        "gitlab.com\n",
        "gitlab.com" + SHELL[4],
        SHELL[0] + ".com",
        "gitlab.com'",
        "h" * 250 + ".com",
    ],
    "gitlab_group": ["acme\n", "acme/" + SHELL[0], "acme/" + SHELL[1], "acme/'x'", 'acme"/x'],
    "owners": ["@alice\n", "@alice " + SHELL[0], "@alice\r", "@al`x`", "@" + "a" * 1000],
    "gitops_repo": ["acme/manifests\n", "acme/" + SHELL[0]],
    "canary_steps": ["5,25,100\n", "5,25," + SHELL[0], "08,25,100"],
    "canary_pause_minutes": ["10,20,30\n", "010,20,30"],
    "staging_url": [
        "https://staging.example.com\n",
        "https://staging.example.com/" + SHELL[0],
        "https://staging.example.com/" + SHELL[1],
        'https://staging.example.com/"',
        "https://staging.example.com/'x'",
        "https://staging.example.com/?q=1&r=$HOME",
        "https://user:secret@staging.example.com",
        "https://localhost",
        "https://1.5",
        "https://staging.example.com/" + "p" * 500,
    ],
    "production_url": [
        "https://example.com\r",
        "https://example.com/${HOME}",
        "https://exa mple.com",
    ],
    "oidc_issuer": [
        "https://sso.example.com/realms/main\n",
        "https://sso.example.com/" + SHELL[0],
        "https://sso.example.com/" + SHELL[1],
        'https://sso.example.com/"x"',
        "http://sso.example.com",
        "https://sso.example.com/?next=$HOME",
    ],
    "oidc_audience": ["my-service\n", "my-service" + SHELL[0], "my 'service'", "a" * 201],
    "coverage_threshold": ["-1", "101"],
    "eval_threshold": ["nan", "inf", "-0.1"],
    "service_type": ["microservice\n", "rag; touch {m}"],
    "python_version": ["3.11\n", "3.11" + SHELL[0]],
}
# Not a number at all: Copier's own type check refuses them before any validator runs; its
# message quotes the value but not the question (a Copier limitation, docs/questions.md).
REFUSED_BY_TYPE = [
    ("coverage_threshold", "70; touch {m}"),
    ("coverage_threshold", "nan"),
    ("eval_threshold", "0.8; touch {m}"),
]
NEEDS = {
    "gitops_repo": {"deploy_mode": "gitops"},
    "eval_threshold": {"service_type": "rag"},
}
# Computed values: set from outside, each is refused with a message that says why.
COMPUTED = [
    ("serves_http", False, "microservice"),
    ("serves_http", True, "data-pipeline"),
    ("uses_llm", True, "microservice"),
    ("uses_llm", False, "rag"),
    ("uses_llm", True, "data-pipeline"),
    ("has_vector_store", True, "agent"),
    ("runs_agent", True, "rag"),
    ("trains_model", False, "data-pipeline"),
    ("trains_model", True, "microservice"),
    ("serves_model", True, "microservice"),
    ("serves_model", False, "model-serving"),
    ("capabilities", {"serves_http": False}, "microservice"),
    ("canary_percents", [100], "microservice"),
    ("canary_pauses", [0, 0, 0], "rag"),
]


@pytest.fixture(scope="module")
def marker() -> Iterator[Path]:
    """Where a payload that ran would leave its mark (a short path, so answers stay short)."""
    directory = Path(tempfile.mkdtemp(prefix="pb-", dir="/tmp"))
    yield directory / "m"
    shutil.rmtree(directory, ignore_errors=True)


def _fill(value: Any, marker: Path) -> Any:
    return value.replace("{m}", str(marker)) if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("question", "value"),
    [
        pytest.param(question, value, id=f"{question}={value[:24]!r}")
        for question, values in REFUSED.items()
        for value in values
    ],
)
def test_hostile_answer_is_refused_naming_the_question(
    copier_template: Path, tmp_path: Path, marker: Path, question: str, value: str
) -> None:
    dest = tmp_path / "p"
    with pytest.raises(ValueError) as raised:
        render(copier_template, dest, {**NEEDS.get(question, {}), question: _fill(value, marker)})
    assert f"'{question}'" in str(raised.value), str(raised.value)
    assert not dest.exists(), "a refused answer must leave no files"
    assert not marker.exists()


def test_every_question_of_the_template_has_hostile_answers() -> None:
    """A question added to copier.yml without hostile cases here fails this test."""
    questions = yaml.safe_load(
        (Path(__file__).parents[1] / "copier.yml").read_text(encoding="utf-8")
    )
    asked = {
        name
        for name, spec in questions.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }
    booleans = {name for name in asked if questions[name].get("type") == "bool"}
    with_choices = {name for name in asked if questions[name].get("choices")}
    covered = set(REFUSED) | {name for name, _ in REFUSED_BY_TYPE}
    missing = asked - booleans - covered - (with_choices - {"service_type", "python_version"})
    assert not missing, f"questions without hostile answers in REFUSED: {sorted(missing)}"
    computed = {
        name
        for name, spec in questions.items()
        if isinstance(spec, dict) and spec.get("when") is False
    }
    assert computed - {name for name, _, _ in COMPUTED} == {
        "template_migrations",
        "migrations_check",
    }


@pytest.mark.parametrize(("question", "value"), REFUSED_BY_TYPE)
def test_answer_of_the_wrong_type_is_refused(
    copier_template: Path, tmp_path: Path, marker: Path, question: str, value: str
) -> None:
    dest = tmp_path / "p"
    with pytest.raises(ValueError, match=r"could not convert|invalid literal") as raised:
        render(copier_template, dest, {**NEEDS.get(question, {}), question: _fill(value, marker)})
    assert _fill(value, marker) in str(raised.value)
    assert not dest.exists()
    assert not marker.exists()


@pytest.mark.parametrize(("name", "value", "service_type"), COMPUTED, ids=str)
def test_computed_value_set_from_outside_is_refused(
    copier_template: Path, tmp_path: Path, name: str, value: bool, service_type: str
) -> None:
    dest = tmp_path / "p"
    with pytest.raises(ValueError, match=f"{name} (is|are) computed from .*cannot be set"):
        render(copier_template, dest, {"service_type": service_type, name: value})
    assert not dest.exists()


def test_computed_value_agreeing_with_service_type_is_accepted(
    copier_template: Path, tmp_path: Path
) -> None:
    project = render(copier_template, tmp_path / "p", {"service_type": "rag", "uses_llm": True})
    assert (project / "src" / "my_service" / "llm").is_dir()
    assert "uses_llm" not in (project / ".copier-answers.yml").read_text()  # never stored


def _copier_copy_cli(
    template: Path, dest: Path, *options: str, env: dict[str, str] | None = None
) -> Any:
    """`copier copy --defaults --vcs-ref HEAD [OPTIONS] TEMPLATE DEST`, as users type it."""
    command = [sys.executable, "-m", "copier", "copy", "--defaults", "--vcs-ref", "HEAD", *options]
    return run([*command, str(template), str(dest)], env=env, check=False)


@pytest.mark.parametrize(
    "defaults", ["serves_http: false", "trains_model: true", "capabilities: {serves_http: false}"]
)
def test_computed_value_from_the_users_copier_settings_stops_the_render(
    copier_template: Path, tmp_path: Path, defaults: str
) -> None:
    """Copier does not validate a computed value that comes from the user's defaults."""
    settings = tmp_path / "settings.yml"
    settings.write_text(f"defaults:\n  {defaults}\n")
    dest = tmp_path / "p"
    result = _copier_copy_cli(copier_template, dest, env={"COPIER_SETTINGS_PATH": str(settings)})
    assert result.returncode != 0, result.stdout
    assert "are computed from service_type and cannot be set" in result.stdout
    assert not dest.exists()


def test_computed_value_in_cli_data_is_refused(copier_template: Path, tmp_path: Path) -> None:
    """The command line users and Backstage run: `copier copy --data serves_http=false`."""
    dest = tmp_path / "p"
    result = _copier_copy_cli(copier_template, dest, "--data", "serves_http=false")
    assert result.returncode != 0, result.stdout
    assert "serves_http is computed from service_type (microservice gives True)" in result.stdout
    assert not dest.exists()


# --------------------------------------------------------------------------- accepted, inert
def _microservice(m: Path) -> dict[str, Any]:
    return {
        "service_type": "microservice",
        "use_database": True,
        "project_name": "On",  # a YAML boolean, were it not quoted
        "project_slug": "hostile-svc",
        "package_name": "hostile_svc",
        "description": (
            f'It\'s "q" $(touch {m}) `touch {m}` ${{HOME}} \\$HOME \\ """; {_fill(PYTHON, m)} '
            "#{{ 7*7 }}{% raw %}<b>&amp;</b>'"
        ),
        "gitlab_host": "gitlab.example.org:8443",
        "gitlab_group": "true/1.5",  # a YAML boolean and float as catalog `system`
        "owners": "@yes  @123 @acme/ml-team  ",
        "staging_url": "https://staging.example.com:8443/a_b/~c%20d+e-f.",
        "production_url": "http://PROD.Example.com/api/v1/",
        "canary_steps": " 1 , 50 ,100 ",
        "canary_pause_minutes": "0, 5",
    }


def _rag(m: Path) -> dict[str, Any]:
    text = (
        f"Servizio RAG \u2013 \u201crisposte\u201d \u00e8 \u00fc \u65e5\u672c\u8a9e \U0001f680 "
        f"\u00abx\u00bb \u2014 \u00bd \u00d7 \u2019s '; touch {m}; ' \"; touch {m}; \" | touch {m} & "
    )
    return {
        "service_type": "rag",
        "project_name": "Null",
        "project_slug": "hostile-rag",
        "description": (text + "C:\\Users\\x \\n " + "x" * 200)[:200],  # the longest allowed
        "deploy_mode": "gitops",
        "gitops_repo": "acme/k8s.manifests-x",
        "eval_threshold": 1e-05,
        "owners": "@acme/ml_team.x",
    }


@pytest.fixture(scope="module")
def hostile_projects(
    copier_template: Path, tmp_path_factory: pytest.TempPathFactory, marker: Path
) -> Iterator[dict[str, tuple[Path, dict[str, Any]]]]:
    projects = {}
    for name, answers in (("microservice", _microservice(marker)), ("rag", _rag(marker))):
        assert len(answers["description"]) <= 200, len(answers["description"])
        dest = tmp_path_factory.mktemp(f"hostile-{name}") / "project"
        projects[name] = (bootstrap(render(copier_template, dest, answers)), answers)
    yield projects
    assert not marker.exists(), "a planted command ran"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["microservice", "rag"])
def test_hostile_but_valid_answers_render_a_working_project_that_runs_nothing(
    hostile_projects: dict[str, tuple[Path, dict[str, Any]]], marker: Path, kind: str
) -> None:
    project, answers = hostile_projects[kind]
    env = project_env(project)
    package = answers.get("package_name", answers["project_slug"].replace("-", "_"))
    run(["make", "check"], cwd=project, env=env)
    run(["make", "test-contract"], cwd=project, env=env)  # the snapshot holds the description
    hooks = ["check-yaml", "check-toml", "check-json", "trailing-whitespace", "end-of-file-fixer"]
    for hook in hooks:
        run(
            ["uv", "run", "--no-sync", "pre-commit", "run", "--all-files", hook],
            cwd=project,
            env=env,
        )

    # Import the package and build the app: the answers come back as text.
    document = json.loads(
        run(
            ["uv", "run", "--no-sync", "python", "-m", f"{package}.openapi"], cwd=project, env=env
        ).stdout
    )
    assert document["info"] == {
        "title": answers["project_name"],
        "description": answers["description"],
    }
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == answers["description"]
    component = next(
        yaml.safe_load_all((project / "catalog-info.yaml").read_text(encoding="utf-8"))
    )
    assert component["metadata"]["title"] == answers["project_name"]
    assert component["metadata"]["description"] == answers["description"]
    assert component["spec"]["owner"] == answers["owners"].split()[0][1:].replace("/", "-")
    assert isinstance(component["spec"]["system"], str)
    code, output = backstage_validate(project / "catalog-info.yaml")
    assert code == 0, output
    assert answers["description"] in (project / "README.md").read_text(encoding="utf-8")
    owners = " ".join(answers["owners"].split())
    assert f"* {owners}\n" in (project / ".gitlab" / "CODEOWNERS").read_text(encoding="utf-8")

    # Source every library of scripts-ci (as the scripts do), run every script with --help.
    scripts = project / "scripts-ci"
    slug = answers["project_slug"]
    urls = (
        answers.get("staging_url", f"https://{slug}.staging.example.com"),
        answers.get("production_url", f"https://{slug}.example.com"),
    )
    for library in sorted((scripts / "lib").glob("*.sh")):
        sources = " ".join(
            dict.fromkeys(["scripts-ci/lib/common.sh", f"scripts-ci/lib/{library.name}"])
        )
        shown = run(
            [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                f'for f in {sources}; do source "$f"; done; echo "$STAGING_URL|$PRODUCTION_URL"',
            ],
            cwd=project,
            env=env,
        ).stdout
        assert shown.strip().splitlines()[-1] == f"{urls[0]}|{urls[1]}", library.name
    executables = [p for p in sorted(scripts.rglob("*")) if p.is_file() and os.access(p, os.X_OK)]
    assert len(executables) >= 8
    for script in executables:
        run([str(script), "--help"], cwd=project, env=env)
    assert not marker.exists(), "a planted command ran"


@pytest.mark.slow
def test_hostile_description_is_the_image_label_exactly(
    hostile_projects: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path
) -> None:
    """The Dockerfile's LABEL lines, built by buildah on an empty image: escapes, no expansion."""
    if not shutil.which("buildah"):
        raise AssertionError("buildah is missing: `apt-get install buildah` or run `make deps`")
    env = engine_env(tmp_path)
    for kind, (project, answers) in hostile_projects.items():
        lines = (project / "Dockerfile").read_text(encoding="utf-8").splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("LABEL "))
        end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
        args = [line for line in lines if line.startswith("ARG SOURCE=")]
        context = tmp_path / kind
        context.mkdir()
        (context / "Dockerfile").write_text(
            "\n".join(["FROM scratch", *args, *lines[start : end + 1]]) + "\n"
        )
        tag = f"localhost/playbook-label-test-{kind}:{os.getpid()}"
        run(["buildah", "build", "--isolation", "chroot", "-q", "-t", tag, str(context)], env=env)
        try:
            inspected = json.loads(
                run(["buildah", "inspect", "--type", "image", tag], env=env).stdout
            )
        finally:
            run(["buildah", "rmi", tag], env=env, check=False)
        labels = inspected["Docker"]["config"]["Labels"]
        assert labels["org.opencontainers.image.description"] == answers["description"], kind
