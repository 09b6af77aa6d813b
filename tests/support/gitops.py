"""A GitOps repository and a stand-in for Argo CD's API, for the tests of
scripts-ci/deploy/gitops-promote.sh (Argo CD itself cannot run here: no cluster).

`gitops_repository` is a bare Git repository laid out as the docs describe (one Kustomize
app per environment, with the `pipeline` component the script writes). `FakeArgoCD` answers
GET /api/v1/applications/<name> as Argo CD does, with the fields the script reads
(status.sync, status.health, status.operationState), from the repository's branch head:
Argo CD "syncs" whatever the branch holds, and a per-application `verdict` decides what
that sync looks like (healthy, degraded, failing, never synced). It checks the bearer
token and records every request.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

from .json_api import JsonHandler, start_serving
from .procs import free_port, run
from .project import git_commit_all

TOKEN = "argocd-test-token"


def gitops_repository(tmp_path: Path, app: str) -> Path:
    """A GitOps repository as the docs describe it: one Kustomize app per environment."""
    seed = tmp_path / "seed"

    def deployment(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                **spec,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": f"registry.example.com/{app}:bootstrap"}
                        ]
                    },
                },
            },
        }

    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": app},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": app, "port": 80, "weight": 100},
                        {"name": f"{app}-canary", "port": 80, "weight": 0},
                    ]
                }
            ]
        },
    }
    for env, objects in {
        # Staging also runs a second Deployment of the service (its replicas in the manifest)
        # and one of another application, which a stop of the service leaves alone.
        "staging": [
            deployment(app),
            deployment(f"{app}-worker", replicas=2),
            deployment("other-app"),
        ],
        "production": [deployment(app), deployment(f"{app}-canary"), route],
    }.items():
        base = seed / "apps" / app / env
        (base / "pipeline").mkdir(parents=True)
        (base / "all.yaml").write_text(yaml.safe_dump_all(objects))
        (base / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": ["all.yaml"],
                    "components": ["pipeline"],
                }
            )
        )
        (base / "pipeline" / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        )
    git_commit_all(seed, "chore: seed")
    bare = tmp_path / "gitops.git"
    run(["git", "clone", "--quiet", "--bare", str(seed), str(bare)])
    return bare


def objects(bare: Path, tmp_path: Path, app: str, env: str) -> list[dict[str, Any]]:
    """What the branch head renders to for `env` (kubectl kustomize, as Argo CD would)."""
    check = tmp_path / "check"
    shutil.rmtree(check, ignore_errors=True)
    run(["git", "clone", "--quiet", str(bare), str(check)])
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: it renders the GitOps repository (kubectl kustomize)"
    return list(
        yaml.safe_load_all(run([kubectl, "kustomize", f"apps/{app}/{env}"], cwd=check).stdout)
    )


def running(bare: Path, tmp_path: Path, app: str, env: str) -> dict[str, tuple[str, int | None]]:
    """Each Deployment the branch head renders to: its image and replicas (None: not set)."""
    return {
        d["metadata"]["name"]: (
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            d["spec"].get("replicas"),
        )
        for d in objects(bare, tmp_path, app, env)
        if d["kind"] == "Deployment"
    }


def rendered(bare: Path, tmp_path: Path, app: str, env: str) -> tuple[list[str], list[int]]:
    """The images of the Deployments and the HTTPRoute weights the branch head renders to."""
    docs = objects(bare, tmp_path, app, env)
    images = [
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    weights = [
        ref["weight"]
        for d in docs
        if d["kind"] == "HTTPRoute"
        for ref in d["spec"]["rules"][0]["backendRefs"]
    ]
    return images, weights


@dataclass
class Sync:
    """What Argo CD reports for one application at the branch head: `polls` is how many times
    this revision was asked about (the first answers are still the previous revision)."""

    revision: str
    component: str  # the environment's pipeline/kustomization.yaml at that revision
    polls: int


def healthy(sync: Sync) -> dict[str, Any]:
    """Sees the commit at the second look, Progressing at the third, then Synced and Healthy."""
    if sync.polls == 1:
        return {"sync": "OutOfSync", "health": "Healthy", "revision": None}
    if sync.polls == 2:
        return {
            "sync": "Synced",
            "health": "Progressing",
            "message": "Waiting for rollout to finish",
        }
    return {"sync": "Synced", "health": "Healthy"}


def degraded_when(image: str) -> Callable[[Sync], dict[str, Any]]:
    """Healthy, except a revision that deploys `image`: its pods never get ready."""

    def verdict(sync: Sync) -> dict[str, Any]:
        if image in sync.component and sync.polls >= 2:
            return {
                "sync": "Synced",
                "health": "Degraded",
                "message": 'Deployment "my-service" exceeded its progress deadline',
            }
        return healthy(sync)

    return verdict


def sync_fails_when(image: str) -> Callable[[Sync], dict[str, Any]]:
    def verdict(sync: Sync) -> dict[str, Any]:
        if image in sync.component:
            return {
                "sync": "OutOfSync",
                "health": "Healthy",
                "phase": "Failed",
                "operation_message": "one or more objects failed to apply: admission webhook denied the image",
            }
        return healthy(sync)

    return verdict


def never_synced(sync: Sync) -> dict[str, Any]:
    """Argo CD never picks up a new commit (e.g. the repository credentials expired)."""
    return {"sync": "OutOfSync", "health": "Healthy", "revision": None}


@dataclass
class FakeArgoCD:
    bare: Path
    slug: str = "my-service"
    branch: str = "main"
    verdicts: dict[str, Callable[[Sync], dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    _polls: dict[tuple[str, str], int] = field(default_factory=dict)
    _synced: dict[str, str] = field(default_factory=dict)  # the last revision each app reported

    def head(self) -> str:
        return run(["git", "--git-dir", str(self.bare), "rev-parse", self.branch]).stdout.strip()

    def component(self, revision: str, env: str) -> str:
        path = f"apps/{self.slug}/{env}/pipeline/kustomization.yaml"
        return run(
            ["git", "--git-dir", str(self.bare), "show", f"{revision}:{path}"], check=False
        ).stdout

    def application(self, name: str) -> dict[str, Any] | None:
        env = name.removeprefix(f"{self.slug}-")
        if name not in {f"{self.slug}-staging", f"{self.slug}-production"}:
            return None
        head = self.head()
        polls = self._polls[name, head] = self._polls.get((name, head), 0) + 1
        verdict = self.verdicts.get(name, healthy)(Sync(head, self.component(head, env), polls))
        previous = self._synced.setdefault(name, head)
        revision = head if verdict.get("revision", head) else previous
        if revision == head:
            self._synced[name] = head
        status: dict[str, Any] = {
            "sync": {"status": verdict["sync"], "revision": revision},
            "health": {
                "status": verdict["health"],
                **({"message": verdict["message"]} if "message" in verdict else {}),
            },
        }
        if "phase" in verdict:
            status["operationState"] = {
                "phase": verdict["phase"],
                "message": verdict["operation_message"],
                "syncResult": {"revision": head},
            }
        return {
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": self.slug, "source": {"path": f"apps/{self.slug}/{env}"}},
            "status": status,
        }

    @property
    def env(self) -> dict[str, str]:
        return {
            "ARGOCD_SERVER": self.url,
            "ARGOCD_AUTH_TOKEN": TOKEN,
            "ARGOCD_POLL_INTERVAL": "0",
            "ARGOCD_WAIT_TIMEOUT": "20s",
        }


@contextmanager
def fake_argocd(bare: Path, **kwargs: Any) -> Iterator[FakeArgoCD]:
    argocd = FakeArgoCD(bare, **kwargs)

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            argocd.requests.append(
                {
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.reply(
                    401, {"error": "invalid session: token signature is invalid", "code": 16}
                )
            name = url.path.removeprefix("/api/v1/applications/")
            app = argocd.application(name) if url.path.startswith("/api/v1/applications/") else None
            if app is None:
                return self.reply(
                    404 if url.path.startswith("/api/v1/applications/") else 400,
                    {"error": f'applications.argoproj.io "{name}" not found', "code": 5},
                )
            return self.reply(200, app)

    # Before the first question, each application runs what the branch holds now.
    argocd._synced = {f"{argocd.slug}-{env}": argocd.head() for env in ("staging", "production")}
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    argocd.url = f"http://127.0.0.1:{server.server_address[1]}"
    start_serving(server)
    try:
        yield argocd
    finally:
        server.shutdown()
        server.server_close()
