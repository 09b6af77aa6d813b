"""Bearer-token authentication of the generated HTTP services, from the template's side.

- the oidc_issuer / oidc_audience answers are validated and land where the deployed service
  and scripts-ci read them (the overlays' config.env, scripts-ci/lib/project.sh);
- scripts-ci's tests send a token: given as API_TOKEN or fetched with the client-credentials
  grant from a real local OIDC issuer (tests/support/oidc.py), and fail saying why without one.

The generated project's own tests (tests/unit/test_auth.py there) prove every protected
endpoint refuses no token, a wrong audience or issuer and an expired token; `make check` of
each service type runs them (tests/test_service_types.py, tests/test_microservice.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support.oidc import CLIENT_ID, CLIENT_SECRET, shared_issuer
from .support.procs import run
from .support.project import SERVICE_TYPES, first_type_with, render
from .support.service import running_service

Bootstrapped = Callable[..., Path]


# ----------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("question", "value", "message"),
    [
        ("oidc_issuer", "http://sso.example.com", "must be an https URL"),
        ("oidc_issuer", "https://sso.example.com/realms/main\n", "must be an https URL"),
        ("oidc_issuer", "https://sso.example.com/?realm=main", "without query"),
        ("oidc_issuer", "https://sso.example.com/realms/my realm", "spaces"),
        ("oidc_issuer", "https://sso.example.com#x", "fragment"),
        ("oidc_issuer", "sso.example.com", "must be an https URL"),
        ("oidc_audience", "my service", "1-200 letters"),
        ("oidc_audience", "my-service\n", "1-200 letters"),
        ("oidc_audience", "x" * 201, "1-200 letters"),
        ("oidc_audience", "-flag", "starting with a letter or digit"),
    ],
    ids=lambda value: repr(value)[:30] if isinstance(value, str) else None,
)
def test_bad_issuer_or_audience_is_refused(
    copier_template: Path, tmp_path: Path, question: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        render(copier_template, tmp_path / "p", {question: value})
    assert message in str(raised.value) and question in str(raised.value), str(raised.value)
    assert not (tmp_path / "p").exists()


@pytest.mark.skipif(first_type_with(serves_http=True, uses_llm=True) is None,
                    reason="PLAYBOOK_SERVICE_TYPES leaves no HTTP type with an LLM")
def test_issuer_and_audience_reach_the_deployed_service_and_the_scripts(
    copier_template: Path, tmp_path: Path
) -> None:
    answers = {"oidc_issuer": "https://acme.eu.auth0.com/", "oidc_audience": "api://fraud-scoring",
               "service_type": first_type_with(serves_http=True, uses_llm=True)}
    project = render(copier_template, tmp_path / "p", answers)
    for config in ("deploy/overlays/staging/config.env", "deploy/components/production/config.env"):
        lines = (project / config).read_text().splitlines()
        assert "OIDC_ISSUER=https://acme.eu.auth0.com/" in lines, config
        assert "OIDC_AUDIENCE=api://fraud-scoring" in lines, config
    project_sh = (project / "scripts-ci" / "lib" / "project.sh").read_text()
    assert ': "${OIDC_ISSUER:=https://acme.eu.auth0.com/}"' in project_sh
    assert 'oidc_audience: str = Field(default="api://fraud-scoring", min_length=1)' in (
        project / "src" / "my_service" / "settings.py").read_text()


@pytest.mark.skipif(first_type_with(serves_http=False) is None,
                    reason="PLAYBOOK_SERVICE_TYPES leaves no batch type (serves_http false)")
def test_the_batch_pipeline_has_no_token_settings(copier_template: Path, tmp_path: Path) -> None:
    project = render(copier_template, tmp_path / "p", {"service_type": first_type_with(serves_http=False)})
    assert "OIDC_" not in (project / "deploy/components/production/config.env").read_text()
    assert "oidc_issuer" not in (project / ".copier-answers.yml").read_text()


# ----------------------------------------------------------------- scripts-ci sends a token


@pytest.fixture(scope="module")
def rag_service(bootstrapped: Bootstrapped) -> Iterator[tuple[Path, str]]:
    if "rag" not in SERVICE_TYPES:
        pytest.skip("rag is not among the selected service types")
    project = bootstrapped(service_type="rag")
    with running_service(project) as url:
        yield project, url


def sanity(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """sanity-test.sh with only the variables given (no API_TOKEN nor OIDC_* of the caller)."""
    clean = {"API_TOKEN": "", "OIDC_CLIENT_ID": "", "OIDC_CLIENT_SECRET": "", "OIDC_TOKEN_URL": "",
             "OIDC_TOKEN_SCOPE": "", "CI_JOB_ID": ""}
    return run([str(project / "scripts-ci" / "test" / "sanity-test.sh")], cwd=project,
               env={**clean, **env}, check=False, timeout=120)


@pytest.mark.slow
def test_sanity_gets_a_token_with_the_client_credentials_grant(rag_service: tuple[Path, str]) -> None:
    project, url = rag_service
    issuer = shared_issuer()
    before = len(issuer.token_requests)
    result = sanity(project, SERVICE_URL=url, OIDC_ISSUER=issuer.url, OIDC_AUDIENCE="my-service",
                    OIDC_CLIENT_ID=CLIENT_ID, OIDC_CLIENT_SECRET=CLIENT_SECRET)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"bearer token of client {CLIENT_ID} from {issuer.url}/token" in result.stdout
    assert "ok   ingest a document: POST /documents -> 201" in result.stdout
    (request,) = issuer.token_requests[before:]
    assert request["grant_type"] == "client_credentials"
    assert request["audience"] == "my-service"
    assert CLIENT_SECRET not in result.stdout


@pytest.mark.slow
def test_sanity_without_a_token_fails_at_the_first_protected_step_and_says_why(
    rag_service: tuple[Path, str],
) -> None:
    project, url = rag_service
    result = sanity(project, SERVICE_URL=url)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAIL ingest a document: POST /documents -> HTTP 401, expected 201" in result.stdout
    assert "API_TOKEN is not set" in result.stdout


@pytest.mark.slow
def test_sanity_with_a_token_for_another_audience_is_refused(rag_service: tuple[Path, str]) -> None:
    project, url = rag_service
    result = sanity(project, SERVICE_URL=url, API_TOKEN=shared_issuer().token(audience="other"))
    assert result.returncode == 1, result.stdout[-3000:]
    assert "HTTP 401" in result.stdout and "API_TOKEN was refused" in result.stdout
    assert "the token is not for this service" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ({"API_TOKEN": "two\nlines"}, 2, "API_TOKEN is not a bearer token"),
        ({"OIDC_CLIENT_ID": CLIENT_ID}, 2, "OIDC_CLIENT_SECRET is not"),
        ({"OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": "wrong"}, 1,
         f"the issuer gave no access token to client {CLIENT_ID}"),
        ({"OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": "x", "OIDC_ISSUER": "http://127.0.0.1:9"},
         1, "no token endpoint in the discovery document"),
    ],
    ids=["token-with-newline", "client-without-secret", "wrong-secret", "issuer-down"],
)
def test_a_token_that_cannot_be_had_stops_the_test_before_any_call(
    rag_service: tuple[Path, str], env: dict[str, str], code: int, message: str
) -> None:
    project, url = rag_service
    result = sanity(project, **{"SERVICE_URL": url, "OIDC_ISSUER": shared_issuer().url, **env})
    assert result.returncode == code, result.stdout[-3000:]
    assert message in result.stdout
    assert "POST /documents" not in result.stdout


@pytest.mark.parametrize("name", ["smoke-test.sh", "performance-test.sh"])
def test_smoke_and_load_tests_refuse_a_malformed_token_before_calling(
    copier_template: Path, tmp_path: Path, name: str
) -> None:
    project = render(copier_template, tmp_path / "p", {})
    result = run([str(project / "scripts-ci" / "test" / name)], cwd=project, check=False,
                 env={"API_TOKEN": "Bearer eyJ.two words", "OIDC_CLIENT_ID": "",
                      "SERVICE_URL": "http://127.0.0.1:9"}, timeout=60)
    assert result.returncode == 2, result.stdout
    assert "API_TOKEN is not a bearer token" in result.stdout
