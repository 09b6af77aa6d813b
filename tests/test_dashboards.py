"""The generated Grafana dashboards: shipped as a ConfigMap for Grafana's sidecar, valid
against the dashboard schema the generated project carries, and every panel's query answered
by a real Prometheus that scrapes the running generated service under load (HTTP types, a
stable and a canary instance) or the Pushgateway the batch's runs push to.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from .conftest import Render
from .support.procs import run
from .support.project import project_env
from .support.prometheus import Prometheus
from .support.pushgateway import pushgateway
from .support.service import api_token, running_service

Bootstrapped = Callable[..., Path]
MONITORING = Path("deploy") / "monitoring"
# What Grafana puts in place of its own variables; the dashboards' variables come from
# their templating list (constants) or from here.
GRAFANA = {
    "$__rate_interval": "1m",
    "$__range": "10m",
    "$environment": "staging",
    "$namespace": "my-service-production",
}


# The labels Prometheus's relabeling gives a production pod (deploy/monitoring/prometheus.yaml).
PRODUCTION = {"app": "my-service", "namespace": "my-service-production"}


def dashboards(project: Path) -> dict[str, dict[str, Any]]:
    folder = project / MONITORING / "dashboards"
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, with the dashboard's variables filled in."""
    values = dict(GRAFANA)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "constant":
            values["$" + variable["name"]] = variable["query"]
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(values, key=len, reverse=True):
                expr = expr.replace(name, values[name])
            assert "$" not in expr, f"{panel['title']}: a variable the test does not know: {expr}"
            found.append((panel["title"], expr))
    return found


def schema_errors(project: Path, dashboard: dict[str, Any]) -> list[str]:
    schema = json.loads((project / "tests/unit/grafana-dashboard.schema.json").read_text())
    return [error.message for error in Draft202012Validator(schema).iter_errors(dashboard)]


# ---------------------------------------------------------------- files and ConfigMap


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"service_type": "microservice"}, {"service.json", "canary.json"}),
        ({"service_type": "rag"}, {"service.json", "canary.json"}),
        ({"service_type": "data-pipeline"}, {"batch.json"}),
    ],
)
def test_the_configmap_ships_the_dashboards_to_grafanas_sidecar(
    render_project: Render, answers: dict[str, str], expected: set[str]
) -> None:
    project = render_project(**answers)
    files = dashboards(project)
    assert set(files) == expected
    rendered = yaml.safe_load(run(["kubectl", "kustomize", str(project / MONITORING)]).stdout)
    assert rendered["kind"] == "ConfigMap"
    assert rendered["metadata"]["name"] == "my-service-dashboards"
    assert rendered["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {name: json.loads(text) for name, text in rendered["data"].items()} == files
    for dashboard in files.values():
        assert schema_errors(project, dashboard) == []


def test_llm_panels_only_for_types_that_call_a_model(render_project: Render) -> None:
    def titles(service_type: str) -> set[str]:
        panels = dashboards(render_project(service_type=service_type))["service.json"]["panels"]
        return {panel["title"] for panel in panels}

    assert {"Tokens per second", "Cost per hour (USD)", "Latency per output token"} <= titles(
        "agent"
    )
    assert "Tokens per second" not in titles("microservice")


def test_the_schema_refuses_what_grafana_would_not_show(render_project: Render) -> None:
    """The generated schema check has teeth: each of these edits is an error."""
    project = render_project(project_slug="a" * 20 + "-" + "b" * 29)  # 50 characters
    dashboard = dashboards(project)["service.json"]
    assert schema_errors(project, dashboard) == []
    assert len(dashboard["uid"]) <= 40  # Grafana's limit, whatever the slug's length

    def broken(edit: Callable[[dict[str, Any]], None]) -> list[str]:
        changed = copy.deepcopy(dashboard)
        edit(changed)
        return schema_errors(project, changed)

    panel = next(i for i, p in enumerate(dashboard["panels"]) if p["type"] != "row")
    assert broken(lambda d: d["panels"][panel]["targets"][0].pop("expr"))
    assert broken(lambda d: d["panels"][panel]["targets"][0]["datasource"].update(uid="prom-1"))
    assert broken(lambda d: d["panels"][panel]["gridPos"].update(w=25))
    assert broken(lambda d: d["panels"][panel].pop("targets"))
    assert broken(lambda d: d.update(uid="x" * 41))
    assert broken(lambda d: d["panels"][panel].update(typo=1))


# ---------------------------------------------------------------- every query, for real


@contextmanager
def load(requests: Callable[[httpx.Client], None]) -> Iterator[None]:
    """Send requests in a loop until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                requests(client)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def assert_every_query_answers(prometheus: Prometheus, project: Path, timeout: float = 90) -> int:
    """Every target of every dashboard returns at least one series (waiting for the rate
    windows and the recording rules to fill)."""
    pending = [
        (name, title, expr)
        for name, dashboard in dashboards(project).items()
        for title, expr in queries(dashboard)
    ]
    total = len(pending)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [query for query in pending if not prometheus.query(query[2])]
        if pending:
            time.sleep(1)
    assert not pending, "queries without a series:\n" + "\n".join(
        f"{name} / {title}: {expr}" for name, title, expr in pending
    )
    return total


@pytest.mark.slow
@pytest.mark.parametrize("service_type", ["microservice", "rag"])
def test_every_http_panel_query_answers_against_the_running_service(
    bootstrapped: Bootstrapped, service_type: str
) -> None:
    project = bootstrapped(service_type=service_type)
    token = api_token()

    def requests(base: str) -> Callable[[httpx.Client], None]:
        def send(client: httpx.Client) -> None:
            client.get(f"{base}/healthz")
            client.get(f"{base}/no-such-route")  # a 404: the 4xx series
            if service_type == "rag":
                question = {"question": "How often must secrets be rotated?"}
                client.post(
                    f"{base}/query", json=question, headers={"Authorization": f"Bearer {token}"}
                )
                client.post(f"{base}/query", json=question)  # a 401
            else:
                client.get(f"{base}/openapi.json")
            time.sleep(0.02)

        return send

    with running_service(project) as stable, running_service(project) as canary:
        targets = [
            (
                stable.removeprefix("http://"),
                {**PRODUCTION, "track": "stable", "pod": "my-service-0"},
            ),
            (
                canary.removeprefix("http://"),
                {**PRODUCTION, "track": "canary", "pod": "my-service-canary-0"},
            ),
        ]
        prometheus = Prometheus.start(targets, rule_files=[project / MONITORING / "alerts.yaml"])
        try:
            with load(requests(stable)), load(requests(canary)):
                prometheus.wait_for_targets_up(2)
                count = assert_every_query_answers(prometheus, project)
            assert count >= (28 if service_type == "rag" else 20)  # the LLM row adds 8
        finally:
            prometheus.stop()


@pytest.mark.slow
def test_every_batch_panel_query_answers_against_the_pushgateway(
    bootstrapped: Bootstrapped, tmp_path: Path
) -> None:
    """A stable run that succeeds and a canary run that fails its checks (it still pushes
    its stages, rows and model metrics) give every panel of the batch dashboard a series."""
    project = bootstrapped(service_type="data-pipeline", use_ml_tracking=False)
    python = str(project / ".venv" / "bin" / "python")
    strict = tmp_path / "params.yaml"
    strict.write_text(
        (project / "params.yaml").read_text().replace("min_roc_auc: 0.95", "min_roc_auc: 0.9999")
    )
    with pushgateway() as gateway:
        prometheus = Prometheus.start([(gateway.removeprefix("http://"), {})], honor_labels=True)
        try:
            env = project_env(
                project,
                PIPELINE_WORKDIR=str(tmp_path / "work"),
                PUSHGATEWAY_URL=gateway,
                ENVIRONMENT="staging",
            )
            batch = [python, "-m", "my_service", "run", "--share", "0.25"]
            assert run(batch, cwd=project, env=env, check=False).returncode == 0
            canary = {**env, "TRACK": "canary", "PIPELINE_PARAMS": str(strict)}
            assert run(batch, cwd=project, env=canary, check=False).returncode == 1
            assert assert_every_query_answers(prometheus, project) >= 10
        finally:
            prometheus.stop()
