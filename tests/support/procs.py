"""Running commands in tests with output that explains a failure."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class CommandFailed(AssertionError):
    pass


def run(
    cmd: Sequence[str] | str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with the command, exit code and its whole output."""
    shell = isinstance(cmd, str)
    # The template's own virtualenv must not leak into a generated project's tools.
    base = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env={**base, **(env or {})},
        shell=shell,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        input=input,
    )
    if check and result.returncode != 0:
        shown = cmd if shell else " ".join(map(str, cmd))
        raise CommandFailed(
            f"`{shown}` exited {result.returncode} in {cwd}:\n{result.stdout[-12000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(
    url: str, process: subprocess.Popen[bytes], timeout: float, failure: Callable[[], str]
) -> None:
    """Poll URL until it answers 200; raise RuntimeError(failure()) when the process exits or
    the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure())
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server the tests started; kill it when it does not stop in 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
