"""A `kubectl` stand-in for the deploy-script tests: records every call and keeps a cluster state.

No Kubernetes cluster can run on the test machines, so the deploy, canary and rollback
scripts run against this program, installed as `kubectl` on PATH by `FakeKubectl.install`.
It implements the subset of kubectl those scripts use, with the semantics that matter for
them: `apply -f` as a client-side three-way merge (the manifest's fields win over live
changes, fields it dropped since the last apply go, fields only the cluster set stay), `patch --type merge`
with resourceVersion conflicts, `get -o json|name` with `--ignore-not-found`, `scale`,
`annotate`, `set image`, `rollout status`, `config use-context` (fails for images listed as unhealthy), `diff`.
`kustomize` is delegated to the real kubectl, so rendering is real.

Batch (CronJob/Job): `create job NAME --from=cronjob/CRON --dry-run=client -o json` prints the
Job kubectl would build from the live CronJob; `create -f -` creates it. A created Job is
running at the first `get job NAME` and finished at the next one: Failed when its image is
in FAKE_KUBECTL_UNHEALTHY or its PIPELINE_SHARE (container env, else the ConfigMaps of its
envFrom, else 1) is above FAKE_KUBECTL_FAIL_ABOVE_SHARE, never finished when its image is in
FAKE_KUBECTL_PENDING, Complete otherwise. `logs job/NAME` prints what the run did,
`delete job`, `get jobs -o json` (a List) and `get pods -l job-name=NAME` work too.

Environment: FAKE_KUBECTL_DIR (state.json, calls.jsonl, applied/), FAKE_KUBECTL_REAL (the
real kubectl), FAKE_KUBECTL_SITE (where PyYAML is), FAKE_KUBECTL_UNHEALTHY (comma-separated
images whose pods never get ready, or whose Jobs fail), FAKE_KUBECTL_PENDING,
FAKE_KUBECTL_FAIL_ABOVE_SHARE (see above).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = {
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "httproute": "HTTPRoute", "httproutes": "HTTPRoute",
    "service": "Service", "services": "Service", "svc": "Service",
    "pods": "Pod", "pod": "Pod", "events": "Event",
    "cronjob": "CronJob", "cronjobs": "CronJob", "cj": "CronJob",
    "job": "Job", "jobs": "Job",
}
VALUE_FLAGS = {
    "--context", "--namespace", "-n", "-o", "--output", "-f", "--filename", "--type", "-p",
    "--patch", "--replicas", "--timeout", "-l", "--selector", "--sort-by", "--from",
}


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    flags: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg.startswith("-") and "=" in arg:
            key, value = arg.split("=", 1)
            flags[key] = value
        elif arg in VALUE_FLAGS:
            flags[arg] = next(args)
        elif arg.startswith("-"):
            flags[arg] = "true"
        else:
            positional.append(arg)
    for short, long in (("-n", "--namespace"), ("-o", "--output"), ("-f", "--filename"),
                        ("-p", "--patch"), ("-l", "--selector")):
        if short in flags:
            flags[long] = flags.pop(short)
    return positional, flags


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(last: Any, new: Any, live: Any) -> Any:
    """The patch client-side `kubectl apply` sends (a three-way merge): every field the
    manifest sets takes the manifest's value, undoing live changes to it (`kubectl scale`,
    `set image`); fields dropped from the manifest since the last apply are deleted; fields
    only the cluster or another client set survive. Lists are replaced whole (kubectl merges
    some by key, e.g. containers by name: the same result for these manifests)."""
    if not isinstance(new, dict):
        return copy.deepcopy(new)
    last = last if isinstance(last, dict) else {}
    live = live if isinstance(live, dict) else {}
    patch: dict[str, Any] = {key: None for key in last if key not in new and key in live}
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            nested = apply_patch(last.get(key), value, live[key])
            if nested:
                patch[key] = nested
        elif key not in live or live[key] != value:
            patch[key] = copy.deepcopy(value)
    return patch


@dataclass
class Cluster:
    directory: Path

    def __post_init__(self) -> None:
        path = self.directory / "state.json"
        self.state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def save(self) -> None:
        (self.directory / "state.json").write_text(json.dumps(self.state, indent=2))

    @staticmethod
    def key(kind: str, namespace: str, name: str) -> str:
        return f"{namespace}/{kind}/{name}"

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        entry = self.state.get(self.key(kind, namespace, name))
        return entry["live"] if entry else None

    def put(self, kind: str, namespace: str, name: str, live: dict[str, Any]) -> None:
        entry = self.state.setdefault(self.key(kind, namespace, name), {"last": None})
        metadata = live.setdefault("metadata", {})
        metadata["resourceVersion"] = str(int(metadata.get("resourceVersion", "0")) + 1)
        metadata["namespace"] = namespace
        entry["live"] = live


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a Deployment, a Job or a CronJob."""
    spec = obj["spec"]
    if obj.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


def images_of(env: str) -> set[str]:
    return set(filter(None, os.environ.get(env, "").split(",")))


def job_share(cluster: Cluster, namespace: str, job: dict[str, Any]) -> float:
    """PIPELINE_SHARE of the Job's container: its env, else its envFrom ConfigMaps, else 1."""
    container = pod_spec(job)["containers"][0]
    for variable in container.get("env", []):
        if variable["name"] == "PIPELINE_SHARE":
            return float(variable["value"])
    for source in container.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        config = cluster.get("ConfigMap", namespace, name) if name else None
        if config and "PIPELINE_SHARE" in config.get("data", {}):
            return float(config["data"]["PIPELINE_SHARE"])
    return 1.0


def job_outcome(cluster: Cluster, namespace: str, job: dict[str, Any]) -> str:
    image = pod_spec(job)["containers"][0]["image"]
    if image in images_of("FAKE_KUBECTL_PENDING"):
        return "pending"
    limit = os.environ.get("FAKE_KUBECTL_FAIL_ABOVE_SHARE")
    if image in images_of("FAKE_KUBECTL_UNHEALTHY") or (
        limit and job_share(cluster, namespace, job) > float(limit)
    ):
        return "Failed"
    return "Complete"


def job_from_cronjob(cron: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """What `kubectl create job NAME --from=cronjob/CRON` builds."""
    template = cron["spec"]["jobTemplate"]
    metadata = template.get("metadata", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": None,
            "labels": copy.deepcopy(metadata.get("labels", {})),
            "annotations": {**metadata.get("annotations", {}),
                            "cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                 "name": cron["metadata"]["name"], "controller": True}],
        },
        "spec": copy.deepcopy(template["spec"]),
        "status": {},
    }


def advance_job(cluster: Cluster, namespace: str, name: str) -> None:
    """One more look at a Job: running the first time, finished the next (see the docstring)."""
    entry = cluster.state[cluster.key("Job", namespace, name)]
    job = entry["live"]
    if job["status"].get("conditions") or entry["outcome"] == "pending":
        return
    if entry["looks"] == 0:
        job["status"] = {"active": 1}
    else:
        outcome = entry["outcome"]
        condition = {"type": outcome, "status": "True"}
        if outcome == "Failed":
            condition |= {"reason": "BackoffLimitExceeded",
                          "message": "Job has reached the specified backoff limit"}
        job["status"] = {"conditions": [condition], ("succeeded" if outcome == "Complete" else "failed"): 1}
    entry["looks"] += 1
    cluster.save()


def job_logs(cluster: Cluster, namespace: str, job: dict[str, Any], outcome: str) -> str:
    container = pod_spec(job)["containers"][0]
    track = job["spec"]["template"].get("metadata", {}).get("labels", {}).get("track", "")
    share = job_share(cluster, namespace, job)
    lines = [json.dumps({"level": "INFO", "message": "run started", "args": container.get("args", []),
                         "image": container["image"], "track": track}),
             json.dumps({"level": "INFO", "message": f"PIPELINE_SHARE={share:g}"})]
    if outcome == "Failed":
        lines.append(json.dumps({"level": "ERROR", "message": "check failed: accuracy 0.41 is below 0.80"}))
    elif outcome == "Complete":
        lines.append(json.dumps({"level": "INFO", "message": "run succeeded"}))
    return "\n".join(lines)


def fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def resource(positional: list[str]) -> tuple[str, str]:
    """("Deployment", "x") from ["deployment", "x"] or ["deployment/x"]."""
    if "/" in positional[0]:
        kind, name = positional[0].split("/", 1)
    else:
        kind, name = positional[0], positional[1]
    return KINDS[kind.lower()], name


def main(argv: list[str]) -> int:
    directory = Path(os.environ["FAKE_KUBECTL_DIR"])
    with (directory / "calls.jsonl").open("a") as log:
        log.write(json.dumps(argv) + "\n")
    if argv[:1] == ["--context"]:  # the deploy scripts' KUBE_CONTEXT: one fake cluster
        argv = argv[2:]
    if argv and argv[0] == "kustomize":
        real = os.environ["FAKE_KUBECTL_REAL"]
        os.execv(real, [real, *argv])
    if argv[:2] == ["config", "use-context"] and len(argv) == 3:
        # The pipeline's .kubernetes before_script: one context, named by the GitLab agent.
        (directory / "context").write_text(argv[2])
        print(f'Switched to context "{argv[2]}".')
        return 0
    positional, flags = parse(argv)
    cluster = Cluster(directory)
    namespace = flags.get("--namespace", "default")
    verb, rest = positional[0], positional[1:]

    if verb == "apply":
        # Started with `python -S` (fast): the YAML parser comes from the tests' virtualenv.
        sys.path.append(os.environ["FAKE_KUBECTL_SITE"])
        import yaml

        source = Path(flags["--filename"])
        applied = directory / "applied"
        applied.mkdir(exist_ok=True)
        shutil.copy(source, applied / f"{len(list(applied.iterdir())):03d}-{namespace}.yaml")
        for document in yaml.safe_load_all(source.read_text()):
            if not document:
                continue
            kind, name = document["kind"], document["metadata"]["name"]
            own = document["metadata"].get("namespace", namespace)
            if own != namespace:
                return fail(f"error: the namespace from the provided object \"{own}\" does not "
                            f"match the namespace \"{namespace}\". You must pass '--namespace={own}'")
            key = cluster.key(kind, namespace, name)
            entry = cluster.state.get(key)
            live = entry["live"] if entry else {}
            last = entry["last"] if entry else {}
            cluster.put(kind, namespace, name, merge_patch(live, apply_patch(last, document, live)))
            cluster.state[key]["last"] = document
            print(f"{kind.lower()}/{name} {'configured' if entry else 'created'}")
        cluster.save()
        return 0

    if verb == "diff":
        return 0

    if verb == "create" and rest[:1] == ["job"]:
        source, cron_name = flags["--from"].split("/", 1)
        assert source == "cronjob" and flags.get("--dry-run") == "client", flags
        assert flags.get("--output") == "json", flags
        cron = cluster.get("CronJob", namespace, cron_name)
        if cron is None:
            return fail(f'Error from server (NotFound): cronjobs.batch "{cron_name}" not found')
        print(json.dumps(job_from_cronjob(cron, rest[1], namespace), indent=2))
        return 0

    if verb == "create":
        assert flags.get("--filename") == "-", "the scripts create from stdin"
        job = json.loads(sys.stdin.read())
        assert job["kind"] == "Job", job["kind"]
        name = job["metadata"]["name"]
        if cluster.get("Job", namespace, name) is not None:
            return fail(f'Error from server (AlreadyExists): error when creating "STDIN": '
                        f'jobs.batch "{name}" already exists')
        job["status"] = {}
        cluster.put("Job", namespace, name, job)
        cluster.state[cluster.key("Job", namespace, name)] |= {
            "outcome": job_outcome(cluster, namespace, job), "looks": 0}
        cluster.save()
        print(f"job.batch/{name} created")
        return 0

    if verb == "delete":
        kind, name = resource(rest)
        if cluster.state.pop(cluster.key(kind, namespace, name), None) is None:
            if flags.get("--ignore-not-found") == "true":
                return 0
            return fail(f'Error from server (NotFound): {kind.lower()}s.batch "{name}" not found')
        cluster.save()
        print(f'{kind.lower()}.batch "{name}" deleted')
        return 0

    if verb == "logs":
        kind, name = resource(rest)
        entry = cluster.state.get(cluster.key(kind, namespace, name))
        if entry is None:
            return fail(f'error: error from server (NotFound): jobs.batch "{name}" not found in namespace "{namespace}"')
        print(job_logs(cluster, namespace, entry["live"], entry["outcome"]))
        return 0

    if verb == "get":
        kind = KINDS[rest[0].lower()]
        selector = flags.get("--selector", "")
        if kind == "Pod" and selector.startswith("job-name="):
            entry = cluster.state.get(cluster.key("Job", namespace, selector.split("=", 1)[1]))
            if entry is not None:
                status = {"Complete": "Completed", "Failed": "Error"}.get(entry["outcome"], "Running")
                print(f"NAME{' ' * 30}READY   STATUS\n{entry['live']['metadata']['name']}-x7k2p"
                      f"{' ' * 8}0/1     {status}")
                return 0
        if kind in {"Pod", "Event"}:
            print(f"No resources found in {namespace} namespace.")
            return 0
        if len(rest) == 1:
            assert flags.get("--output") == "json" and not selector, "lists: -o json, no selector"
            items = [entry["live"] for key, entry in sorted(cluster.state.items())
                     if key.startswith(f"{namespace}/{kind}/")]
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
            return 0
        if kind == "Job" and cluster.get(kind, namespace, rest[1]) is not None:
            advance_job(cluster, namespace, rest[1])
        obj = cluster.get(kind, namespace, rest[1])
        if obj is None:
            if flags.get("--ignore-not-found") == "true":
                return 0
            return fail(f'Error from server (NotFound): {rest[0]} "{rest[1]}" not found')
        output = flags.get("--output", "")
        if output == "json":
            print(json.dumps(obj, indent=2))
        elif output == "name":
            print(f"{kind.lower()}/{rest[1]}")
        else:
            print(rest[1])
        return 0

    if verb in {"patch", "scale", "annotate", "set", "rollout"}:
        if verb in {"set", "rollout"}:
            action, rest = rest[0], rest[1:]
        kind, name = resource(rest)
        obj = cluster.get(kind, namespace, name)
        if obj is None:
            return fail(f'Error from server (NotFound): {kind.lower()}s "{name}" not found')
        args = rest[1:] if "/" in rest[0] else rest[2:]
        if verb == "patch":
            assert flags.get("--type") == "merge", "the scripts send merge patches"
            patch = json.loads(flags["--patch"])
            wanted = patch.get("metadata", {}).get("resourceVersion")
            if wanted and wanted != obj["metadata"]["resourceVersion"]:
                return fail(f"Error from server (Conflict): Operation cannot be fulfilled on "
                            f"{kind.lower()}s \"{name}\": the object has been modified")
            patch.get("metadata", {}).pop("resourceVersion", None)
            obj = merge_patch(obj, patch)
        elif verb == "scale":
            obj["spec"]["replicas"] = int(flags["--replicas"])
        elif verb == "annotate":
            annotations = obj["metadata"].setdefault("annotations", {})
            for pair in args:
                key, value = pair.split("=", 1)
                if key in annotations and flags.get("--overwrite") != "true":
                    return fail(f"error: --overwrite is false but found the annotation {key}")
                annotations[key] = value
        elif verb == "set":
            assert action == "image", action
            containers = pod_spec(obj)["containers"]
            for pair in args:
                container, image = pair.split("=", 1)
                matched = [c for c in containers if container in {"*", c["name"]}]
                if not matched:
                    return fail(f'error: unable to find container named "{container}"')
                for item in matched:
                    item["image"] = image
        else:
            assert action == "status", action
            unhealthy = set(filter(None, os.environ.get("FAKE_KUBECTL_UNHEALTHY", "").split(",")))
            images = {c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}
            if obj["spec"].get("replicas", 1) > 0 and images & unhealthy:
                return fail(f'error: deployment "{name}" exceeded its progress deadline')
            print(f'deployment "{name}" successfully rolled out')
            return 0
        cluster.put(kind, namespace, name, obj)
        cluster.save()
        done = {"patch": "patched", "scale": "scaled", "annotate": "annotated", "set": "image updated"}
        print(f"{kind.lower()}/{name} {done[verb]}")
        return 0

    return fail(f"fake kubectl: unsupported command {argv}")


class FakeKubectl:
    """Test-side handle: installs the fake as `kubectl` in a directory and reads what it did."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bin = directory / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        real = shutil.which("kubectl")
        if real is None:
            raise RuntimeError("kubectl is not installed: the fake delegates `kustomize` to it")
        launcher = self.bin / "kubectl"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{Path(__file__).resolve()}" "$@"\n')
        launcher.chmod(0o755)
        import yaml

        self.env = {
            "FAKE_KUBECTL_SITE": str(Path(yaml.__file__).parent.parent),
            "FAKE_KUBECTL_DIR": str(directory),
            "FAKE_KUBECTL_REAL": real,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
        }

    def calls(self) -> list[list[str]]:
        """Every call so far, as argv lists, and forget them (the next step starts clean)."""
        path = self.directory / "calls.jsonl"
        if not path.exists():
            return []
        calls = [json.loads(line) for line in path.read_text().splitlines()]
        path.unlink()
        return calls

    def object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return Cluster(self.directory).get(kind, namespace, name)

    def applied(self) -> list[Path]:
        folder = self.directory / "applied"
        return sorted(folder.iterdir()) if folder.exists() else []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
