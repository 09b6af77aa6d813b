"""deploy/ of a generated repository: Kustomize overlays that render, validate offline, meet the
hardening and canary contracts, pass checkov with the Dockerfile; alert rules that promtool
checks and unit-tests; a runbook section behind every alert. The HTTP types get a Deployment
behind a Gateway API route; the data pipeline a CronJob and alerts on its pushed metrics."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from itertools import product
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .support.procs import run
from .support.project import ROOT, capabilities, first_type_with
from .support.variants import rendered

KUBERNETES_VERSION = "1.32.0"  # the kubectl of the test machines; GKE/EKS/AKS all serve it
OVERLAYS = ("staging", "production", "canary")
SLUG = "fraud-scoring"
HTTPROUTE_SCHEMA = json.loads((ROOT / "tests" / "schemas" / "httproute-v1.json").read_text())
EXTERNALSECRET_SCHEMA = json.loads((ROOT / "tests" / "schemas" / "externalsecret-v1.json").read_text())
CRD_SCHEMAS = {"HTTPRoute": HTTPROUTE_SCHEMA, "ExternalSecret": EXTERNALSECRET_SCHEMA}
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
# What the batch pushes to the Pushgateway (pipeline/telemetry.py).
PUSHED_METRICS = {
    "pipeline_last_success_timestamp_seconds",
    "pipeline_last_failure_timestamp_seconds",
    "pipeline_stage_duration_seconds",
    "pipeline_rows",
    "pipeline_model_metric",
}

# Answer sets whose manifests and Dockerfiles are checked (the container tests build them).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "database": {"use_database": True},
    "slim-3.13": {"runtime_image": "slim", "python_version": "3.13"},
    "distroless-3.12-gitops": {"python_version": "3.12", "deploy_mode": "gitops"},
}
# A batch type (serves_http false: a CronJob; gitops is refused for it), the first under test:
# tracking on by default, and without tracking but with a database.
BATCH_TYPE = first_type_with(serves_http=False)
BATCH_VARIANTS: dict[str, dict[str, Any]] = {
    "pipeline": {"service_type": BATCH_TYPE},
    "pipeline-db": {"service_type": BATCH_TYPE, "use_database": True, "use_ml_tracking": False},
} if BATCH_TYPE else {}
VARIANTS.update(BATCH_VARIANTS)
# A type that calls a model (uses_llm): provider settings in the ConfigMap, its key from Vault.
LLM_TYPE = first_type_with(uses_llm=True)
LLM_VARIANTS: dict[str, dict[str, Any]] = {"llm": {"service_type": LLM_TYPE}} if LLM_TYPE else {}
VARIANTS.update(LLM_VARIANTS)
needs_llm = pytest.mark.skipif(LLM_TYPE is None, reason="PLAYBOOK_SERVICE_TYPES leaves no type with uses_llm")
needs_batch = pytest.mark.skipif(
    BATCH_TYPE is None, reason="PLAYBOOK_SERVICE_TYPES leaves no batch type (serves_http false)"
)
HTTP_KINDS = {"ConfigMap", "Deployment", "HTTPRoute", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"}
BATCH_KINDS = {"ConfigMap", "CronJob", "NetworkPolicy", "ServiceAccount"}

Docs = list[dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    """The tools these tests drive must be there: fail loudly, never skip."""
    hints = {
        "kubectl": "kubectl 1.27+ (built-in Kustomize) is part of the test machine image; install it from your Kubernetes package source",
        "promtool": "promtool comes with Prometheus: `apt-get install prometheus` or `make deps`",
        "amtool": "amtool comes with Alertmanager: `apt-get install prometheus-alertmanager` (dev/install-test-deps.sh)",
        "prometheus-alertmanager": "Debian's Alertmanager: `apt-get install prometheus-alertmanager` (dev/install-test-deps.sh)",
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


@pytest.fixture(scope="module")
def batch(manifests: dict[tuple[str, str], str]) -> dict[str, Docs]:
    """The batch type's overlays (ML tracking on, no database)."""
    return {overlay: documents(manifests["pipeline", overlay]) for overlay in OVERLAYS}


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment or a CronJob."""
    spec = workload["spec"]
    return spec["jobTemplate"]["spec"]["template"] if workload["kind"] == "CronJob" else spec["template"]


def test_every_overlay_validates_offline_against_the_schemas(manifests: dict[tuple[str, str], str]) -> None:
    kinds: dict[bool, set[str]] = {False: set(), True: set()}
    for (variant, overlay), text in manifests.items():
        for doc in documents(text):
            kinds[not capabilities(VARIANTS[variant]).serves_http].add(doc["kind"])
            where = f"{variant}/{overlay}: {doc['kind']} {doc['metadata']['name']}"
            try:
                if doc["kind"] in CRD_SCHEMAS:
                    jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
                else:
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
                pytest.fail(f"{where} is invalid: {error}")
    assert kinds[False] == HTTP_KINDS | ({"ExternalSecret"} if LLM_VARIANTS else set())
    if BATCH_VARIANTS:
        assert kinds[True] == BATCH_KINDS


def _changed(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of `document` with the value at `path` replaced (None: the key removed)."""
    changed = copy.deepcopy(document)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


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
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(_changed(good, path, value), HTTPROUTE_SCHEMA)


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


def test_production_keeps_one_new_trace_in_ten_and_staging_all(default: dict[str, Docs]) -> None:
    """Tracing every request costs about a third of a light request's throughput
    (docs/performance.md): production and its canary sample, staging traces everything."""
    configs = {overlay: _settings(default[overlay]) for overlay in OVERLAYS}
    assert {overlay: data["OTEL_TRACES_EXPORTER"] for overlay, data in configs.items()} == dict.fromkeys(OVERLAYS, "otlp")
    assert configs["production"]["OTEL_TRACES_SAMPLER_ARG"] == configs["canary"]["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert "OTEL_TRACES_SAMPLER_ARG" not in configs["staging"]  # the service's default: 1.0


@needs_llm
def test_a_model_calling_service_gets_its_provider_from_config_and_its_key_from_vault(
    manifests: dict[tuple[str, str], str],
) -> None:
    """Every overlay configures the OpenAI-compatible provider (never the offline model, which
    refuses staging and production); the key is an ExternalSecret from Vault's path of the
    environment, created by staging and production, and read by stable and canary alike."""
    docs = {overlay: documents(manifests["llm", overlay]) for overlay in OVERLAYS}
    for overlay, overlay_docs in docs.items():
        config = _settings(overlay_docs)
        assert config["LLM_PROVIDER"] == "openai", overlay
        assert config["LLM_BASE_URL"].startswith("https://") and config["LLM_MODEL"], overlay
        assert float(config["LLM_TIMEOUT_SECONDS"]) > 0 and int(config["LLM_MAX_RETRIES"]) >= 0, overlay
        assert float(config["LLM_OUTPUT_COST_PER_1K_TOKENS"]) > 0, overlay
        (deployment,) = by_kind(overlay_docs, "Deployment").values()
        env_from = pod_template(deployment)["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": f"{SLUG}-llm"}} in env_from, overlay
        assert "LLM_API_KEY" not in json.dumps(deployment), overlay
    for overlay in ("staging", "production"):
        (secret,) = by_kind(docs[overlay], "ExternalSecret").values()
        assert secret["metadata"]["namespace"] == f"{SLUG}-{overlay}"
        assert secret["metadata"]["name"] == f"{SLUG}-llm" and "name" not in secret["spec"]["target"]
        (item,) = secret["spec"]["data"]
        assert item == {
            "secretKey": "LLM_API_KEY",
            "remoteRef": {"key": f"{SLUG}/{overlay}", "property": "llm_api_key"},
        }
    assert not by_kind(docs["canary"], "ExternalSecret"), "the canary reads production's Secret"
    assert _settings(docs["canary"]) == _settings(docs["production"])


def _settings(docs: Docs) -> dict[str, str]:
    """The service's settings ConfigMap (not the feature flags' one)."""
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and not d["metadata"]["name"].endswith("-flags")]
    return dict(config["data"])


def test_the_external_secret_schema_rejects_what_the_operator_would() -> None:
    good = {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "s"},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "vault"},
            "target": {"name": "s"},
            "data": [{"secretKey": "K", "remoteRef": {"key": "a/b", "property": "k"}}],
        },
    }
    jsonschema.validate(good, EXTERNALSECRET_SCHEMA)
    for path, value in [
        (("spec", "secretStoreRef", "kind"), "VaultStore"),
        (("spec", "data", 0, "remoteRef", "propery"), "k"),
        (("spec", "data"), []),
        (("apiVersion",), "external-secrets.io/v1beta2"),
    ]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(_changed(good, path, value), EXTERNALSECRET_SCHEMA)


@needs_batch
def test_the_batch_follows_the_scripts_ci_contract(batch: dict[str, Docs]) -> None:
    """A CronJob per environment, nothing that serves; the canary CronJob is suspended (only a
    template for the canary's Jobs); staging runs on a 5% share; the canary runs like production."""
    staging, production, canary = (batch[o] for o in OVERLAYS)
    stable = {"app.kubernetes.io/name": SLUG, "track": "stable"}
    for overlay, docs in (("staging", staging), ("production", production)):
        assert {doc["kind"] for doc in docs} == BATCH_KINDS, overlay
        assert {doc["metadata"]["namespace"] for doc in docs} == {f"{SLUG}-{overlay}"}
        (cronjob,) = by_kind(docs, "CronJob").values()
        assert cronjob["metadata"]["name"] == SLUG
        for labels in (cronjob["metadata"]["labels"], cronjob["spec"]["jobTemplate"]["metadata"]["labels"], pod_template(cronjob)["metadata"]["labels"]):
            assert stable.items() <= labels.items(), overlay
        assert "suspend" not in cronjob["spec"] or cronjob["spec"]["suspend"] is False, overlay
        assert pod_template(cronjob)["spec"]["containers"][0]["image"] == f"{SLUG}:set-by-pipeline"
    configs = {overlay: {d["kind"]: d for d in batch[overlay]}["ConfigMap"]["data"] for overlay in OVERLAYS}
    assert configs["staging"]["PIPELINE_SHARE"] == "0.05"
    assert "PIPELINE_SHARE" not in configs["production"]
    assert configs["staging"]["ENVIRONMENT"] == "staging" and configs["production"]["ENVIRONMENT"] == "production"
    for data in configs.values():
        assert data["PUSHGATEWAY_URL"].endswith(":9091") and data["MLFLOW_TRACKING_URI"]

    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in canary) == [
        ("ConfigMap", next(d["metadata"]["name"] for d in canary if d["kind"] == "ConfigMap")),
        ("CronJob", f"{SLUG}-canary"),
    ]
    cronjob = by_kind(canary, "CronJob")[f"{SLUG}-canary"]
    assert cronjob["metadata"]["namespace"] == f"{SLUG}-production"
    assert cronjob["spec"]["suspend"] is True
    canary_labels = {**stable, "track": "canary"}
    for labels in (cronjob["metadata"]["labels"], cronjob["spec"]["jobTemplate"]["metadata"]["labels"], pod_template(cronjob)["metadata"]["labels"]):
        assert canary_labels.items() <= labels.items()
    assert configs["canary"] == configs["production"]
    pod = pod_template(cronjob)["spec"]
    assert pod["serviceAccountName"] == SLUG
    assert pod["containers"][0]["envFrom"][1]["secretRef"] == {"name": f"{SLUG}-secrets", "optional": True}

    # components/production sizes the batch's container (its path differs from a Deployment's).
    resources = {
        overlay: pod_template(next(iter(by_kind(batch[overlay], "CronJob").values())))["spec"]["containers"][0]["resources"]
        for overlay in OVERLAYS
    }
    assert resources["production"] == resources["canary"] != resources["staging"]
    assert resources["production"]["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_every_pod_is_hardened(manifests: dict[tuple[str, str], str], projects: dict[str, Path]) -> None:
    dockerfile = (projects["default"] / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile, "the image and the manifests must agree on the UID"
    for (variant, overlay), text in manifests.items():
        workloads = {**by_kind(documents(text), "Deployment"), **by_kind(documents(text), "CronJob")}
        assert len(workloads) == 1, f"{variant}/{overlay}: one workload per overlay, got {sorted(workloads)}"
        for name, workload in workloads.items():
            where = f"{variant}/{overlay}/{workload['kind']} {name}"
            assert workload["kind"] == ("Deployment" if capabilities(VARIANTS[variant]).serves_http else "CronJob"), where
            pod = pod_template(workload)["spec"]
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
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert {"cpu", "memory"} == container["resources"]["requests"].keys() == container["resources"]["limits"].keys(), where
            # /tmp is the only writable place; anything else (the feature flags) is read-only.
            mounts = container["volumeMounts"]
            assert mounts[0] == {"name": "tmp", "mountPath": "/tmp"}, where
            assert all(mount.get("readOnly") is True for mount in mounts[1:]), where
            assert pod["volumes"][0]["emptyDir"]["sizeLimit"], where
            if workload["kind"] == "CronJob":
                _assert_batch_pod(workload, where)
                continue
            probes = {kind: container[f"{kind}Probe"]["httpGet"]["path"] for kind in ("startup", "liveness", "readiness")}
            assert probes == {"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}, where
            annotations = workload["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true", where
            assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"]) == "8000", where
        for account in by_kind(documents(text), "ServiceAccount").values():
            assert account["automountServiceAccountToken"] is False


def _assert_batch_pod(cronjob: dict[str, Any], where: str) -> None:
    """A run is one try to completion, never two at once, and serves nothing."""
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["concurrencyPolicy"] == "Forbid", where
    assert (spec["schedule"], spec["timeZone"]) == ("0 3 * * *", "Etc/UTC"), where
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0 and job["ttlSecondsAfterFinished"] > 0, where
    assert pod["restartPolicy"] == "Never", where
    assert pod["enableServiceLinks"] is False, where
    assert not {"ports", "startupProbe", "livenessProbe", "readinessProbe"} & container.keys(), where
    assert container["name"] == "app" and container["args"] == ["run"], where
    assert container["env"] == [
        {"name": "TRACK", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['track']"}}}
    ], where
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}], where


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
    if not BATCH_VARIANTS:
        return
    # The batch serves nothing: no ingress rule at all (deny all in), egress to what a run uses.
    for variant, overlay in product(BATCH_VARIANTS, OVERLAYS):
        docs = documents(manifests[variant, overlay])
        assert "PodDisruptionBudget" not in {doc["kind"] for doc in docs}
        if overlay == "canary":
            continue
        policy = by_kind(docs, "NetworkPolicy")[SLUG]["spec"]
        assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": SLUG}}
        assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
    assert {53, 4317, 4318, 9091, 5000, 443} <= egress_ports("pipeline") and 5432 not in egress_ports("pipeline")
    assert {53, 9091, 5432} <= egress_ports("pipeline-db") and 5000 not in egress_ports("pipeline-db")


def _images(rendered_text: str) -> set[str]:
    docs = documents(rendered_text)
    return {
        container["image"]
        for workload in [*by_kind(docs, "Deployment").values(), *by_kind(docs, "CronJob").values()]
        for container in pod_template(workload)["spec"]["containers"]
    }


@pytest.mark.parametrize("variant", ["default", pytest.param("pipeline", marks=needs_batch)])
def test_the_pipeline_sets_image_and_namespace_on_top_of_each_overlay(
    projects: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    """scripts-ci renders an overlay through a kustomization on top of it that sets `images`
    (by the logical name) and `namespace`; `kustomize edit set image` in the overlay is the
    other way. Both must end up running IMAGE, and the unset placeholder must be explicit."""
    deploy = tmp_path / "deploy"
    shutil.copytree(projects[variant] / "deploy", deploy)
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


@pytest.mark.parametrize(
    "variant", ["default", pytest.param("pipeline", marks=needs_batch), pytest.param("llm", marks=needs_llm)]
)
def test_alert_rules_pass_promtool_check_and_unit_tests(projects: dict[str, Path], variant: str) -> None:
    """`make test-alerts` of the generated project: `promtool check rules` on alerts.yaml, then
    `promtool test rules` on alerts.test.yaml with the project's name and runbook filled in."""
    monitoring = projects[variant] / "deploy" / "monitoring"
    assert "$SERVICE" in (monitoring / "alerts.test.yaml").read_text()
    tested = run(["make", "-C", str(projects[variant]), "test-alerts"])
    assert tested.stdout.count("SUCCESS") == 2, tested.stdout


@pytest.mark.parametrize(
    ("variant", "alert", "right", "wrong"),
    [
        ("default", "HighErrorRate", "> 0.05\n", "> 0.5\n"),
        pytest.param("pipeline", "PipelineStale", "> 26 * 3600", "> 24 * 3600", marks=needs_batch),
        pytest.param("pipeline", "PipelineCanaryFailed", 'track="canary"})\n            >', 'track="stable"})\n            >', marks=needs_batch),
        pytest.param("pipeline", "PipelineFailed", "\n               or 0 * max", "\n               and 0 * max", marks=needs_batch),
        pytest.param("llm", "CanaryLLMCostPerRequestAboveStable", "> on (app) 1.25 *", "> on (app) 2.5 *", marks=needs_llm),
        pytest.param("llm", "CanaryLLMErrorRateAboveStable", 'or app_track:llm_requests:rate5m{track="stable"} * 0', "", marks=needs_llm),
    ],
    ids=["http-threshold", "batch-staleness", "batch-canary-track", "batch-never-succeeded", "llm-cost-ratio", "llm-stable-without-errors"],
)
def test_a_broken_alert_fails_its_unit_test(
    projects: dict[str, Path], tmp_path: Path, variant: str, alert: str, right: str, wrong: str
) -> None:
    """The promtool tests catch a wrong threshold or selector, so they are not a rubber stamp."""
    monitoring = projects[variant] / "deploy" / "monitoring"
    shutil.copy(monitoring / "alerts.test.yaml", tmp_path)
    rules = (monitoring / "alerts.yaml").read_text()
    assert right in rules
    (tmp_path / "alerts.yaml").write_text(rules.replace(right, wrong, 1))
    test_alerts = ["make", "-C", str(projects[variant]), "test-alerts", f"ALERTS_DIR={tmp_path}"]
    result = run(test_alerts, check=False)
    assert result.returncode != 0 and alert in result.stdout, result.stdout


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


@needs_batch
def test_prometheus_scrapes_the_pushgateway_for_the_batch(projects: dict[str, Path]) -> None:
    """The batch's Jobs push; Prometheus scrapes the Pushgateway and keeps the pushed labels
    (job, environment, track) with honor_labels."""
    monitoring = projects["pipeline"] / "deploy" / "monitoring"
    config = yaml.safe_load((monitoring / "prometheus.yaml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "pushgateway" and job["honor_labels"] is True
    assert job["static_configs"][0]["targets"][0].endswith(":9091")
    result = run(["promtool", "check", "config", str(monitoring / "prometheus.yaml")])
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
        assert len(alerts) >= (8 if capabilities(VARIANTS[variant]).serves_http else 5), variant
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


@needs_batch
def test_batch_alerts_watch_the_pushed_metrics_on_the_schedule(projects: dict[str, Path], batch: dict[str, Docs]) -> None:
    """Batch rules instead of golden signals, on the metrics the pipeline pushes, with
    thresholds that follow the CronJob (daily schedule, activeDeadlineSeconds)."""
    rules = _alerts(projects["pipeline"])
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert set(alerts) == {"PipelineFailed", "PipelineCanaryFailed", "PipelineStale", "PipelineMetricsMissing", "PipelineRunNearDeadline"}
    used: set[str] = set()
    for rule in rules:
        assert f'job="{SLUG}"' in rule["expr"], rule["alert"]
        used |= set(re.findall(r"\b(pipeline_[a-z_]+)\{", rule["expr"]))
    assert used <= PUSHED_METRICS and "http_requests_total" not in str(rules)
    assert {"pipeline_last_success_timestamp_seconds", "pipeline_last_failure_timestamp_seconds"} <= used
    assert 'track="canary"' in alerts["PipelineCanaryFailed"]["expr"]
    assert 'track="stable"' in alerts["PipelineFailed"]["expr"] and 'track="stable"' in alerts["PipelineStale"]["expr"]
    cronjob = by_kind(batch["production"], "CronJob")[SLUG]["spec"]
    assert cronjob["schedule"] == "0 3 * * *"  # daily: 24h + 2h of margin
    assert alerts["PipelineStale"]["expr"].rstrip().endswith("> 26 * 3600")
    deadline = cronjob["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert alerts["PipelineRunNearDeadline"]["expr"].rstrip().endswith(f"> 0.8 * {deadline}")


def test_saturation_thresholds_follow_the_container_limits(default: dict[str, Docs], projects: dict[str, Path]) -> None:
    limits = [
        by_kind(default[overlay], "Deployment")[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        for overlay, name in (("staging", SLUG), ("production", SLUG), ("canary", f"{SLUG}-canary"))
    ]
    assert all(limit == {"cpu": "1", "memory": "512Mi"} for limit in limits), limits
    alerts = {rule["alert"]: rule["expr"] for rule in _alerts(projects["default"]) if "alert" in rule}
    assert alerts["HighCpuUsage"].rstrip().endswith("> 0.8")  # 80% of 1 CPU
    assert alerts["HighMemoryUsage"].rstrip().endswith("> 0.9 * 512 * 1024 * 1024")  # 90% of 512Mi


@pytest.mark.parametrize("variant", ["default", pytest.param("pipeline", marks=needs_batch)])
def test_make_manifests_renders_every_overlay(projects: dict[str, Path], tmp_path: Path, variant: str) -> None:
    project = tmp_path / "project"
    shutil.copytree(projects[variant], project)
    result = run(["make", "manifests"], cwd=project)
    written = sorted(path.name for path in (project / "build" / "manifests").iterdir())
    assert written == sorted(f"{overlay}.yaml" for overlay in OVERLAYS), result.stdout
    for overlay in OVERLAYS:
        text = (project / "build" / "manifests" / f"{overlay}.yaml").read_text()
        assert text == kustomize(project / "deploy" / "overlays" / overlay)
    assert "build/" in (project / ".gitignore").read_text().split()


# ---------------------------------------------------------------- Argo CD (deploy_mode gitops)
ARGOCD_CRDS = ROOT / "tests" / "schemas" / "argocd"  # vendored from argoproj/argo-cd (README.md there)
GITOPS_VARIANT = "distroless-3.12-gitops"


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as a JSON schema that refuses unknown fields, as
    `kubectl apply --validate=strict` does (the API server would silently prune them)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (strict.get("type") == "object" and "properties" in strict and "additionalProperties" not in strict
            and not strict.get("x-kubernetes-preserve-unknown-fields")):
        strict["additionalProperties"] = False
    return strict


def _crd_schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((ARGOCD_CRDS / file).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema["properties"]["apiVersion"] = {"const": f"{group}/v1alpha1"}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {
        "type": "object", "required": ["name", "namespace"],
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
                       "namespace": {"type": "string"}, "labels": {"type": "object"},
                       "finalizers": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False,
    }
    return schema


ARGOCD_SCHEMAS = {"Application": _crd_schema("application-crd.yaml"), "AppProject": _crd_schema("appproject-crd.yaml")}


@pytest.fixture(scope="module")
def argocd(projects: dict[str, Path]) -> Docs:
    """`kubectl kustomize deploy/argocd` of the GitOps variant: what the platform team applies."""
    return documents(kustomize(projects[GITOPS_VARIANT] / "deploy" / "argocd"))


def test_argocd_manifests_exist_only_in_gitops_mode(projects: dict[str, Path]) -> None:
    for variant, project in projects.items():
        gitops = VARIANTS[variant].get("deploy_mode") == "gitops"
        assert (project / "deploy" / "argocd").is_dir() == gitops, variant
        assert (project / "scripts-ci" / "lib" / "argocd.sh").is_file() == gitops, variant


def test_argocd_manifests_validate_against_argo_cds_crds(argocd: Docs) -> None:
    assert sorted(doc["kind"] for doc in argocd) == ["AppProject", "Application", "Application"]
    for doc in argocd:
        try:
            jsonschema.validate(doc, ARGOCD_SCHEMAS[doc["kind"]])
        except jsonschema.ValidationError as error:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} is invalid: {error.message} at {list(error.absolute_path)}")


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Application", ("spec", "syncPolicy", "automated", "prun"), True),  # a typo
        ("Application", ("spec", "source", "repoURL"), None),  # a required field
        ("Application", ("spec", "syncPolicy", "retry", "limit"), "three"),
        ("AppProject", ("spec", "destinations", 0, "namespce"), "x"),
        ("Application", ("apiVersion",), "argoproj.io/v1"),
    ],
    ids=["unknown-field", "missing-required", "wrong-type", "project-unknown-field", "api-version"],
)
def test_argo_cd_schemas_reject_what_argo_cd_would(argocd: Docs, kind: str, path: tuple[Any, ...], value: Any) -> None:
    """The vendored CRD schemas are not a rubber stamp."""
    bad = _changed(next(doc for doc in argocd if doc["kind"] == kind), path, value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ARGOCD_SCHEMAS[kind])


def test_argocd_applications_deploy_what_the_pipeline_promotes(argocd: Docs, projects: dict[str, Path]) -> None:
    """Each environment's Application follows the directory gitops-promote.sh writes, into the
    namespace of the overlays, within its AppProject, which allows every kind deploy/ renders."""
    project = projects[GITOPS_VARIANT]
    (app_project,) = [doc for doc in argocd if doc["kind"] == "AppProject"]
    applications = by_kind(argocd, "Application")
    assert set(applications) == {f"{SLUG}-staging", f"{SLUG}-production"}
    repo_url = "https://gitlab.com/acme/k8s-manifests.git"
    assert app_project["spec"]["sourceRepos"] == [repo_url]
    allowed = {(entry["group"], entry["kind"]) for entry in app_project["spec"]["namespaceResourceWhitelist"]}
    ci = (project / ".gitlab" / "ci" / "templates.yml").read_text()
    assert f"GITOPS_PATH: apps/{SLUG}\n" in ci
    for env in ("staging", "production"):
        spec = applications[f"{SLUG}-{env}"]["spec"]
        assert spec["project"] == app_project["metadata"]["name"] == SLUG
        assert spec["source"] == {"repoURL": repo_url, "targetRevision": "main", "path": f"apps/{SLUG}/{env}"}
        rendered_docs = documents(kustomize(project / "deploy" / "overlays" / env))
        assert {doc["metadata"]["namespace"] for doc in rendered_docs} == {spec["destination"]["namespace"]}
        assert spec["destination"]["namespace"] == f"{SLUG}-{env}"
        assert spec["destination"] in app_project["spec"]["destinations"]
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        for doc in rendered_docs:
            group = doc["apiVersion"].rpartition("/")[0]
            assert (group, doc["kind"]) in allowed, f"{env}: the AppProject refuses {doc['kind']}"
    assert app_project["spec"]["clusterResourceWhitelist"] == []
    (policy,) = next(role for role in app_project["spec"]["roles"] if role["name"] == "ci")["policies"]
    assert policy == f"p, proj:{SLUG}:ci, applications, get, {SLUG}/*, allow"


# ---------------------------------------------------------------- alerts open GitLab incidents
AUTHORIZATION_KEY = "gitlab-alert-integration-key"


@pytest.mark.parametrize("variant", ["default", pytest.param("pipeline", marks=needs_batch)])
def test_alertmanager_config_passes_amtool(projects: dict[str, Path], tmp_path: Path, variant: str) -> None:
    """`amtool check-config` on deploy/monitoring/alertmanager.yaml. Debian's Alertmanager (0.25)
    predates the webhook's url_file (0.26): the URL is written in for the check."""
    config = yaml.safe_load((projects[variant] / "deploy" / "monitoring" / "alertmanager.yaml").read_text())
    (webhook,) = config["receivers"][0]["webhook_configs"]
    assert webhook["url_file"].startswith("/etc/alertmanager/secrets/")
    assert webhook["http_config"]["authorization"]["credentials_file"].startswith("/etc/alertmanager/secrets/")
    assert webhook["send_resolved"] is True  # a resolved alert closes the incident
    assert "gitlab_environment_name" in config["route"]["group_by"]
    webhook["url"] = "https://gitlab.example.com/acme/ai-services/fraud-scoring/alerts/notify/prometheus/1.json"
    del webhook["url_file"]
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(config))
    result = run(["amtool", "check-config", str(tmp_path / "alertmanager.yaml")], check=False)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_a_firing_production_alert_reaches_gitlab_as_an_incident_of_production(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    """Real Prometheus and Alertmanager with the generated configuration: an alert of the
    production namespace is relabelled gitlab_environment_name=production and posted to a
    stand-in of GitLab's alert endpoint with the integration's key as bearer token."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from .support.json_api import start_serving
    from .support.procs import free_port, stop, wait_until_answers

    received: list[tuple[str, str | None, dict[str, Any]]] = []

    class GitLab(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers.get("Authorization"), body))
            self.send_response(200)
            self.end_headers()

    gitlab = ThreadingHTTPServer(("127.0.0.1", free_port()), GitLab)
    start_serving(gitlab)
    monitoring = projects["default"] / "deploy" / "monitoring"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    endpoint = f"http://127.0.0.1:{gitlab.server_address[1]}/acme/fraud-scoring/alerts/notify/prometheus/1.json"
    (secrets / "authorization-key").write_text(AUTHORIZATION_KEY)
    am_config = yaml.safe_load((monitoring / "alertmanager.yaml").read_text())
    (webhook,) = am_config["receivers"][0]["webhook_configs"]
    del webhook["url_file"]  # Debian's Alertmanager 0.25: see test_alertmanager_config_passes_amtool
    webhook["url"] = endpoint
    webhook["http_config"]["authorization"]["credentials_file"] = str(secrets / "authorization-key")
    am_config["route"]["group_wait"] = "1s"  # the test does not wait 30 s
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(am_config))
    am_port = free_port()
    am_log = (tmp_path / "alertmanager.log").open("wb")
    alertmanager = subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yaml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
         "--cluster.listen-address="], stdout=am_log, stderr=subprocess.STDOUT)
    prometheus = None
    try:
        wait_until_answers(f"http://127.0.0.1:{am_port}/-/ready", alertmanager, 30,
                           lambda: (tmp_path / "alertmanager.log").read_text())
        # Prometheus with the generated alerting section; the scrape job is not needed here:
        # one rule that fires at once, with the labels the golden-signal alerts carry.
        config = yaml.safe_load((monitoring / "prometheus.yaml").read_text())
        config["scrape_configs"] = []
        config["global"]["evaluation_interval"] = "1s"
        config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
        config["rule_files"] = ["rules.yaml"]
        (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": [
            {"alert": "HighErrorRate", "expr": f'label_replace(vector(1), "namespace", "{SLUG}-production", "", "")',
             "labels": {"severity": "critical"}}]}]}))
        port = free_port()
        prom_log = (tmp_path / "prometheus.log").open("wb")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yaml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}",
             # The first send may come before Alertmanager is discovered: send again each second.
             "--rules.alert.resend-delay=1s"], stdout=prom_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert received, "no alert reached the GitLab stand-in in 60 s:\n" + (tmp_path / "alertmanager.log").read_text()[-3000:]
    finally:
        if prometheus is not None:
            stop(prometheus)
        stop(alertmanager)
        gitlab.shutdown()
        gitlab.server_close()
    path, authorization, payload = received[0]
    assert path == "/acme/fraud-scoring/alerts/notify/prometheus/1.json"
    assert authorization == f"Bearer {AUTHORIZATION_KEY}"
    (alert,) = payload["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"]["gitlab_environment_name"] == "production"
    assert alert["labels"]["alertname"] == "HighErrorRate"
