"""A real Prometheus server for the tests, scraping local targets every second."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from .procs import free_port, stop, wait_until_answers

Target = tuple[str, dict[str, str]]  # ("127.0.0.1:8000", {"app": ..., "track": ...})


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    workdir: Path
    url: str

    @classmethod
    def start(
        cls, targets: list[Target], scrape_interval: str = "1s", honor_labels: bool = False,
        rule_files: Sequence[Path] = (),
    ) -> Prometheus:
        """Scrape the targets; honor_labels keeps the targets' own job/instance labels, as a
        Pushgateway must be scraped. rule_files (recording and alerting rules) are evaluated
        at the scrape interval."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus is not installed: `apt-get install prometheus` "
                "(or run `make deps`, which installs what the tests need)"
            )
        workdir = Path(tempfile.mkdtemp(prefix="playbook-prom-"))
        rules = []
        for index, path in enumerate(rule_files):
            rules.append(str(shutil.copy(path, workdir / f"rules-{index}.yaml")))
        config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": scrape_interval},
            "rule_files": rules,
            "scrape_configs": [
                {
                    "job_name": "services",
                    "honor_labels": honor_labels,
                    "static_configs": [
                        {"targets": [address], "labels": labels} for address, labels in targets
                    ],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (workdir / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        server = cls(process=process, workdir=workdir, url=f"http://127.0.0.1:{port}")
        server._wait_ready()
        return server

    def _wait_ready(self, timeout: float = 30) -> None:
        def failure() -> str:
            if self.process.poll() is not None:
                return f"prometheus exited: {self.log()}"
            return f"prometheus not ready after {timeout}s: {self.log()}"

        wait_until_answers(f"{self.url}/-/ready", self.process, timeout, failure)

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-4000:]

    def query(self, promql: str) -> list[dict[str, object]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as answer:
            result: list[dict[str, object]] = json.load(answer)["data"]["result"]
            return result

    def wait_for_targets_up(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len([s for s in self.query("up == 1")]) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"fewer than {count} targets up after {timeout}s: {self.query('up')}")

    def stop(self) -> None:
        stop(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)
