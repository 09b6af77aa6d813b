"""A real Prometheus Pushgateway for the tests (Debian's prometheus-pushgateway)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from .procs import free_port, stop, wait_until_answers


@contextmanager
def pushgateway() -> Iterator[str]:
    """A Pushgateway on a free local port, in memory only; yields its URL. (Debian's build
    persists to /var/lib/prometheus/pushgateway.data by default: a test would start with
    the series of an earlier one.)"""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        raise RuntimeError(
            "prometheus-pushgateway is not installed: `apt-get install prometheus-pushgateway` "
            "(or run `make deps`, which installs what the tests need)"
        )
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    def failure() -> str:
        if process.poll() is not None:
            return f"pushgateway exited: {process.stderr.read().decode() if process.stderr else ''}"
        return f"pushgateway not ready at {url} after 30s"

    try:
        wait_until_answers(f"{url}/-/ready", process, 30, failure)
        yield url
    finally:
        stop(process)
