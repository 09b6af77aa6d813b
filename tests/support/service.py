"""Run a generated project's service for real: `python -m <package>` on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from .oidc import shared_issuer
from .procs import free_port, stop, wait_until_answers
from .project import project_env


def package_of(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return str(answers["package_name"])


@contextmanager
def running_service(project: Path, timeout: float = 60, **env: str) -> Iterator[str]:
    """Start the service from the project's virtualenv; yield its base URL; stop it.

    It trusts the tests' local OIDC issuer: send `Bearer {api_token()}` to its protected endpoints.
    """
    port = free_port()
    base = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    environment = {
        **base, **project_env(project), "HOST": "127.0.0.1", "PORT": str(port),
        "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", **shared_issuer().service_env(), **env,
    }
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [str(project / ".venv" / "bin" / "python"), "-m", package_of(project)],
        cwd=project, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def failure() -> str:
        log.seek(0)
        return (f"the service did not start (exit {process.poll()}):\n"
                + log.read().decode(errors="replace")[-4000:])

    try:
        wait_until_answers(f"{url}/healthz", process, timeout, failure)
        yield url
    finally:
        stop(process)
        log.close()


def api_token() -> str:
    """A valid bearer token for the services `running_service` starts."""
    return shared_issuer().token()
