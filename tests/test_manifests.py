"""deploy/ of a generated repository: Kustomize overlays that render, validate offline, meet the
hardening and canary contracts, pass checkov with the Dockerfile; alert rules that promtool
checks and unit-tests; a runbook section behind every alert."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .support.procs import run
from .support.project import ROOT
from .support.variants import rendered

KUBERNETES_VERSION = "1.32.0"  # the kubectl of the test machines; GKE/EKS/AKS all serve it
OVERLAYS = ("staging", "production", "canary")
SLUG = "fraud-scoring"
HTTPROUTE_SCHEMA = json.loads((ROOT / "tests" / "schemas" / "httproute-v1.json").read_text())
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CONTRACT_METRICS = {
    "http_requests_total",
    "http_request_errors_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "up",
}

# Answer sets whose manifests and Dockerfiles are checked (the container tests build them).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "database": {"use_database": True},
    "slim-3.13": {"runtime_image": "slim", "python_version": "3.13"},
    "distroless-3.12-gitops": {"python_version": "3.12", "deploy_mode": "gitops"},
}

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    """The tools these tests drive must be there: fail loudly, never skip."""
    hints = {
        "kubectl": "kubectl 1.27+ (built-in Kustomize) is part of the test machine image; install it from your Kubernetes package source",
        "promtool": "promtool comes with Prometheus: `apt-get install prometheus` or `make deps`",
    }
    missing = [f"{tool}: {hint}" for tool, hint in hints.items() if not shutil.which(tool)]
    if missing:
        pytest.fail("missing tools:\n" + "\n".join(missing))


def kustomize(overlay_dir: Path) -> str:
    return run(["kubectl", "kustomize", str(overlay_dir)]).stdout


def documents(text: str) -> Docs:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: Docs, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.fixture(scope="module")
def projects(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: rendered(copier_template, tmp_path_factory, **answers) for name, answers in VARIANTS.items()}


@pytest.fixture(scope="module")
def manifests(projects: dict[str, Path]) -> dict[tuple[str, str], str]:
    """`kubectl kustomize` output of every overlay of every variant."""
    return {
        (variant, overlay): kustomize(project / "deploy" / "overlays" / overlay)
        for variant, project in projects.items()
        for overlay in OVERLAYS
    }


@pytest.fixture(scope="module")
def default(manifests: dict[tuple[str, str], str]) -> dict[str, Docs]:
    return {overlay: documents(manifests["default", overlay]) for overlay in OVERLAYS}


def test_every_overlay_validates_offline_against_the_schemas(manifests: dict[tuple[str, str], str]) -> None:
    kinds: set[str] = set()
    for (variant, overlay), text in manifests.items():
        for doc in documents(text):
            kinds.add(doc["kind"])
            where = f"{variant}/{overlay}: {doc['kind']} {doc['metadata']['name']}"
            try:
                if doc["kind"] == "HTTPRoute":
                    jsonschema.validate(doc, HTTPROUTE_SCHEMA)
                else:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
                pytest.fail(f"{where} is invalid: {error}")
    assert kinds == {
        "ConfigMap", "Deployment", "HTTPRoute", "NetworkPolicy", "PodDisruptionBudget",
        "Service", "ServiceAccount",
    }


def test_httproute_schema_rejects_what_the_gateway_would() -> None:
    """The stand-in schema is not a rubber stamp: bad weights, hosts and unknown fields fail."""
    good = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 5}]}]},
    }
    jsonschema.validate(good, HTTPROUTE_SCHEMA)
    for path, value in [
        (("spec", "rules", 0, "backendRefs", 0, "weight"), -1),
        (("spec", "rules", 0, "backendRefs", 0, "wieght"), 5),
        (("spec", "hostnames"), ["https://a.example.com"]),
    ]:
        bad = copy.deepcopy(good)
        target: Any = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, HTTPROUTE_SCHEMA)


def test_stable_and_canary_follow_the_scripts_ci_contract(default: dict[str, Docs]) -> None:
    staging, production, canary = (default[o] for o in OVERLAYS)
    for overlay, docs in (("staging", staging), ("production", production)):
        namespace = f"{SLUG}-{overlay}"
        assert {doc["metadata"]["namespace"] for doc in docs} == {namespace}
        deployment = by_kind(docs, "Deployment")[SLUG]
        labels = {"app.kubernetes.io/name": SLUG, "track": "stable"}
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        services = by_kind(docs, "Service")
        assert services[SLUG]["spec"]["selector"] == labels
        assert services[f"{SLUG}-canary"]["spec"]["selector"] == {**labels, "track": "canary"}
        route = by_kind(docs, "HTTPRoute")[SLUG]
        refs = route["spec"]["rules"][0]["backendRefs"]
        assert [(ref["name"], ref["weight"]) for ref in refs] == [(SLUG, 100), (f"{SLUG}-canary", 0)]
        assert all(ref["port"] == services[ref["name"]]["spec"]["ports"][0]["port"] for ref in refs)
    assert by_kind(staging, "HTTPRoute")[SLUG]["spec"]["hostnames"] == [f"{SLUG}.staging.example.com"]
    assert by_kind(production, "HTTPRoute")[SLUG]["spec"]["hostnames"] == [f"{SLUG}.example.com"]
    assert by_kind(staging, "Deployment")[SLUG]["spec"]["replicas"] == 1
    assert by_kind(production, "Deployment")[SLUG]["spec"]["replicas"] == 3

    # The canary overlay holds the canary's own objects only: applying it never touches stable.
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in canary) == [
        ("ConfigMap", next(d["metadata"]["name"] for d in canary if d["kind"] == "ConfigMap")),
        ("Deployment", f"{SLUG}-canary"),
    ]
    deployment = by_kind(canary, "Deployment")[f"{SLUG}-canary"]
    assert deployment["metadata"]["namespace"] == f"{SLUG}-production"
    canary_labels = {"app.kubernetes.io/name": SLUG, "track": "canary"}
    assert deployment["spec"]["selector"]["matchLabels"] == canary_labels
    assert canary_labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == SLUG


def test_canary_runs_with_the_production_configuration(default: dict[str, Docs]) -> None:
    production, canary = default["production"], default["canary"]
    stable_pod = by_kind(production, "Deployment")[SLUG]["spec"]["template"]["spec"]
    canary_pod = by_kind(canary, "Deployment")[f"{SLUG}-canary"]["spec"]["template"]["spec"]
    assert canary_pod["containers"][0]["resources"] == stable_pod["containers"][0]["resources"]
    config = {doc["kind"]: doc for doc in canary}["ConfigMap"]
    assert config["data"] == {d["kind"]: d for d in production}["ConfigMap"]["data"]
    assert config["data"]["ENVIRONMENT"] == "production"
    env_from = canary_pod["containers"][0]["envFrom"]
    assert env_from[0]["configMapRef"]["name"] == config["metadata"]["name"]
    assert env_from[1]["secretRef"] == {"name": f"{SLUG}-secrets", "optional": True}


def test_every_pod_is_hardened(manifests: dict[tuple[str, str], str], projects: dict[str, Path]) -> None:
    dockerfile = (projects["default"] / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile, "the image and the manifests must agree on the UID"
    for (variant, overlay), text in manifests.items():
        for name, deployment in by_kind(documents(text), "Deployment").items():
            where = f"{variant}/{overlay}/{name}"
            pod = deployment["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False, where
            assert pod["securityContext"] == {
                "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            }, where
            (container,) = pod["containers"]
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, where
            assert {"cpu", "memory"} == container["resources"]["requests"].keys() == container["resources"]["limits"].keys(), where
            probes = {kind: container[f"{kind}Probe"]["httpGet"]["path"] for kind in ("startup", "liveness", "readiness")}
            assert probes == {"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}, where
            assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}], where
            assert pod["volumes"][0]["emptyDir"]["sizeLimit"], where
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true", where
            assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"]) == "8000", where
        for account in by_kind(documents(text), "ServiceAccount").values():
            assert account["automountServiceAccountToken"] is False


def test_network_policy_and_disruption_budget_cover_the_pods(default: dict[str, Docs], manifests: dict[tuple[str, str], str]) -> None:
    for overlay in ("staging", "production"):
        docs = default[overlay]
        policy = by_kind(docs, "NetworkPolicy")[SLUG]["spec"]
        assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": SLUG}}
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert [port["port"] for rule in policy["ingress"] for port in rule["ports"]] == ["http"]
        budget = by_kind(docs, "PodDisruptionBudget")[SLUG]["spec"]
        assert budget["selector"]["matchLabels"] == {"app.kubernetes.io/name": SLUG, "track": "stable"}
    def egress_ports(variant: str) -> set[int]:
        policy = by_kind(documents(manifests[variant, "production"]), "NetworkPolicy")[SLUG]
        return {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert 5432 not in egress_ports("default")
    assert 5432 in egress_ports("database")


def _images(rendered_text: str) -> set[str]:
    return {
        container["image"]
        for deployment in by_kind(documents(rendered_text), "Deployment").values()
        for container in deployment["spec"]["template"]["spec"]["containers"]
    }


def test_the_pipeline_sets_image_and_namespace_on_top_of_each_overlay(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    """scripts-ci renders an overlay through a kustomization on top of it that sets `images`
    (by the logical name) and `namespace`; `kustomize edit set image` in the overlay is the
    other way. Both must end up running IMAGE, and the unset placeholder must be explicit."""
    deploy = tmp_path / "deploy"
    shutil.copytree(projects["default"] / "deploy", deploy)
    image = f"registry.example.com/acme/{SLUG}"
    for overlay in OVERLAYS:
        assert _images(kustomize(deploy / "overlays" / overlay)) == {f"{SLUG}:set-by-pipeline"}
        on_top = deploy / f".render-{overlay}"
        on_top.mkdir()
        (on_top / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [f"../overlays/{overlay}"], "namespace": "team-ns",
            "images": [{"name": SLUG, "newName": image, "newTag": "0123abc"}],
        }))
        text = kustomize(on_top)
        assert _images(text) == {f"{image}:0123abc"}, overlay
        assert {doc["metadata"]["namespace"] for doc in documents(text)} == {"team-ns"}

        path = deploy / "overlays" / overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(path.read_text())
        (entry,) = kustomization["images"]
        assert entry == {"name": SLUG, "newTag": "set-by-pipeline"}
        entry.update(newName=image, digest="sha256:" + "a" * 64)
        del entry["newTag"]
        path.write_text(yaml.safe_dump(kustomization))
        assert _images(kustomize(path.parent)) == {f"{image}@sha256:{'a' * 64}"}


def _skips_with_reasons(config: Path, key: str) -> dict[str, str]:
    """`- RULE` entries under `key:` mapped to the comment block right above each."""
    reasons: dict[str, str] = {}
    comment: list[str] = []
    inside = False
    for line in config.read_text().splitlines():
        stripped = line.strip()
        if not line.startswith(" ") and stripped.endswith(":"):
            inside = stripped == f"{key}:"
        elif inside and stripped.startswith("#"):
            comment.append(stripped.lstrip("# "))
        elif inside and stripped.startswith("- "):
            reasons[stripped[2:]] = " ".join(comment)
            comment = []
    return reasons


def test_every_skipped_lint_rule_says_why(projects: dict[str, Path]) -> None:
    project = projects["default"]
    for name, key in ((".checkov.yaml", "skip-check"), (".hadolint.yaml", "ignored")):
        skips = _skips_with_reasons(project / name, key)
        assert skips, f"{name}: no skipped rule found under {key}"
        loaded = yaml.safe_load((project / name).read_text())[key]
        assert sorted(skips) == sorted(loaded), f"{name}: every entry of {key} needs its comment block"
        for rule, reason in skips.items():
            assert reason.startswith(rule) and len(reason) > 80, f"{name}: {rule} lacks a reason"


def test_checkov_passes_the_dockerfiles_and_rendered_manifests(
    projects: dict[str, Path], manifests: dict[tuple[str, str], str], tmp_path: Path
) -> None:
    """One checkov run (about 10 s) over every variant's Dockerfile and every overlay."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is missing at {CHECKOV}: run `make deps` (dev/install-test-deps.sh)")
    files: list[str] = []
    for variant, project in projects.items():
        (tmp_path / variant).mkdir()
        shutil.copy(project / "Dockerfile", tmp_path / variant / "Dockerfile")
        files.append(f"{variant}/Dockerfile")
        for overlay in OVERLAYS:
            (tmp_path / variant / f"{overlay}.yaml").write_text(manifests[variant, overlay])
            files.append(f"{variant}/{overlay}.yaml")
    config = projects["default"] / ".checkov.yaml"
    args = [str(CHECKOV), "--skip-download", "--config-file", str(config), "--output", "json"]
    for name in files:
        args += ["--file", name]
    result = run(args, cwd=tmp_path, check=False)
    start = min(i for i in (result.stdout.find("["), result.stdout.find("{")) if i >= 0)
    reports = json.loads(result.stdout[start:])
    reports = reports if isinstance(reports, list) else [reports]
    summary = {report["check_type"]: report["summary"] for report in reports}
    failed = [
        f"{check['check_id']} {check['file_path']} {check['resource']}: {check['check_name']}"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    assert summary["dockerfile"]["resource_count"] == len(VARIANTS)
    assert summary["kubernetes"]["passed"] > 200 and summary["kubernetes"]["parsing_errors"] == 0
    assert summary["dockerfile"]["passed"] > 50 and summary["dockerfile"]["parsing_errors"] == 0
    assert result.returncode == 0, result.stdout[-2000:]


def test_alert_rules_pass_promtool_check_and_unit_tests(projects: dict[str, Path]) -> None:
    monitoring = projects["default"] / "deploy" / "monitoring"
    checked = run(["promtool", "check", "rules", str(monitoring / "alerts.yaml")])
    assert "SUCCESS" in checked.stdout
    tested = run(["promtool", "test", "rules", str(monitoring / "alerts.test.yaml")])
    assert "SUCCESS" in tested.stdout


def test_a_broken_alert_fails_its_unit_test(projects: dict[str, Path], tmp_path: Path) -> None:
    """The promtool tests catch a wrong threshold, so they are not a rubber stamp."""
    monitoring = projects["default"] / "deploy" / "monitoring"
    shutil.copy(monitoring / "alerts.test.yaml", tmp_path)
    rules = (monitoring / "alerts.yaml").read_text()
    assert "> 0.05\n" in rules
    (tmp_path / "alerts.yaml").write_text(rules.replace("> 0.05\n", "> 0.5\n", 1))
    result = run(["promtool", "test", "rules", str(tmp_path / "alerts.test.yaml")], check=False)
    assert result.returncode != 0 and "HighErrorRate" in result.stdout


def test_prometheus_scrape_job_is_valid(projects: dict[str, Path], tmp_path: Path) -> None:
    """`promtool check config` on the documented job. Debian's Prometheus is built without
    Kubernetes discovery, so the job's pod discovery is swapped for a static target here;
    the relabelings, the rule files and everything else are checked as written."""
    monitoring = projects["default"] / "deploy" / "monitoring"
    config = yaml.safe_load((monitoring / "prometheus.yaml").read_text())
    (job,) = config["scrape_configs"]
    namespaces = job.pop("kubernetes_sd_configs")[0]["namespaces"]["names"]
    assert namespaces == [f"{SLUG}-staging", f"{SLUG}-production"]
    job["static_configs"] = [{"targets": ["127.0.0.1:8000"]}]
    targets = {rule.get("target_label") for rule in job["relabel_configs"]}
    assert {"app", "track", "namespace", "pod", "__metrics_path__", "__address__"} <= targets
    shutil.copy(monitoring / "alerts.yaml", tmp_path)
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config))
    result = run(["promtool", "check", "config", str(tmp_path / "prometheus.yaml")])
    assert "SUCCESS: 1 rule files found" in result.stdout


def _alerts(project: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load((project / "deploy" / "monitoring" / "alerts.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _gitlab_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_its_runbook_section(projects: dict[str, Path]) -> None:
    for variant, project in projects.items():
        runbook = (project / "docs" / "runbook.md").read_text()
        anchors = {_gitlab_anchor(line.lstrip("#")) for line in runbook.splitlines() if line.startswith("#")}
        for link in re.findall(r"\]\(#([\w-]+)\)", runbook):
            assert link in anchors, f"{variant}: docs/runbook.md links #{link}, which is no heading"
        alerts = [rule for rule in _alerts(project) if "alert" in rule]
        assert len(alerts) >= 8
        for rule in alerts:
            url = rule["annotations"]["runbook_url"]
            page, _, anchor = url.partition("#")
            assert page == f"https://gitlab.com/acme/ai-services/{SLUG}/-/blob/main/docs/runbook.md"
            assert anchor == rule["alert"].lower() and anchor in anchors, f"{variant}: {rule['alert']}"
            assert rule["labels"]["severity"] in {"critical", "warning"}


def test_alerts_cover_the_golden_signals_with_the_contract_metrics(projects: dict[str, Path]) -> None:
    rules = _alerts(projects["default"])
    recorded = {rule["record"] for rule in rules if "record" in rule}
    used: set[str] = set()
    for rule in rules:
        expr = re.sub(r'"[^"]*"', "", rule["expr"])  # label values are not metric names
        expr = re.sub(r"\[[^\]]*\]|\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)
        used |= {name for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if name in CONTRACT_METRICS or "_" in name or ":" in name}
    used -= recorded | {"histogram_quantile"}
    assert used == CONTRACT_METRICS - {"http_request_duration_seconds_sum", "http_request_duration_seconds_count"}
    names = {rule["alert"] for rule in rules if "alert" in rule}
    signals = {  # traffic, errors, latency, saturation
        "NoTraffic", "HighErrorRate", "HighLatencyP95", "HighLatencyP99", "HighCpuUsage", "HighMemoryUsage",
    }
    assert signals <= names


def test_saturation_thresholds_follow_the_container_limits(default: dict[str, Docs], projects: dict[str, Path]) -> None:
    limits = [
        by_kind(default[overlay], "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        for overlay, name in (("staging", SLUG), ("production", SLUG), ("canary", f"{SLUG}-canary"))
    ]
    assert all(limit == {"cpu": "1", "memory": "512Mi"} for limit in limits), limits
    alerts = {rule["alert"]: rule["expr"] for rule in _alerts(projects["default"]) if "alert" in rule}
    assert alerts["HighCpuUsage"].rstrip().endswith("> 0.8")  # 80% of 1 CPU
    assert alerts["HighMemoryUsage"].rstrip().endswith("> 0.9 * 512 * 1024 * 1024")  # 90% of 512Mi


def test_make_manifests_renders_every_overlay(projects: dict[str, Path], tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(projects["default"], project)
    result = run(["make", "manifests"], cwd=project)
    written = sorted(path.name for path in (project / "build" / "manifests").iterdir())
    assert written == sorted(f"{overlay}.yaml" for overlay in OVERLAYS), result.stdout
    for overlay in OVERLAYS:
        text = (project / "build" / "manifests" / f"{overlay}.yaml").read_text()
        assert text == kustomize(project / "deploy" / "overlays" / overlay)
    assert "build/" in (project / ".gitignore").read_text().split()
