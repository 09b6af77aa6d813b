"""Build and run container images without Docker or a registry: buildah, podman, debootstrap.

No registry is reachable from the test machines, so the generated Dockerfile's base images
are replaced through its build args by local stand-ins:

- `debian`: a debootstrap'ed Debian 12 (minbase), standing in for `debian:12.11-slim`
  (the builder, and the runtime of the `slim` variant);
- `distroless`: Python 3.11 and the libraries it needs, without a shell, coreutils or a
  package manager, standing in for `gcr.io/distroless/python3-debian12:nonroot`
  (built from `images/distroless-python.Containerfile`);
- `uv`: the uv binary of the test environment, standing in for `ghcr.io/astral-sh/uv`.

debootstrap takes about 40 s, so every stand-in is kept in podman's storage under a tag
keyed by a hash of its recipe, and saved to CACHE_DIR so that a wiped storage reloads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .procs import run

CACHE_DIR = Path(os.environ.get("PLAYBOOK_IMAGE_CACHE", "/var/tmp/playbook-test-images"))
IMAGES = Path(__file__).parent / "images"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("PLAYBOOK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def require_tools() -> None:
    missing = [tool for tool in ("buildah", "podman", "runc", "debootstrap") if not shutil.which(tool)]
    if missing:
        raise RuntimeError(
            f"container tools missing: {', '.join(missing)}; install them with "
            "`apt-get install buildah podman runc debootstrap` or run `make deps`"
        )


def engine_env(directory: Path) -> dict[str, str]:
    """Environment for podman/buildah on these machines: runc, cgroupfs, file events, ulimits."""
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {"CONTAINERS_CONF": str(conf)}


def image_exists(tag: str, env: dict[str, str]) -> bool:
    return run(["podman", "image", "exists", tag], env=env, check=False).returncode == 0


def remove_image(tag: str, env: dict[str, str]) -> None:
    run(["podman", "rmi", "--force", tag], env=env, check=False)


def remove_working_containers(image: str, env: dict[str, str]) -> None:
    """buildah (1.28) leaves the working container of a stage that is only a FROM (the
    Dockerfile's `uv` stage) behind after every build: remove those made from `image`."""
    listed = run(["buildah", "containers", "--json"], env=env, check=False)
    if listed.returncode != 0 or not listed.stdout.strip():
        return
    leftovers = [c["id"] for c in json.loads(listed.stdout) or [] if c.get("imagename") == image]
    if leftovers:
        run(["buildah", "rm", *leftovers], env=env, check=False)


@dataclass(frozen=True)
class BaseImages:
    debian: str
    distroless: str
    uv: str

    def build_args(self, runtime_image: str) -> list[str]:
        """`--build-arg`s that point the generated Dockerfile at the local stand-ins."""
        runtime = self.distroless if runtime_image == "distroless" else self.debian
        return [
            "--build-arg", f"UV_IMAGE={self.uv}",
            "--build-arg", f"BUILDER_IMAGE={self.debian}",
            "--build-arg", f"RUNTIME_IMAGE={runtime}",
        ]


def build_secrets() -> list[str]:
    """The machine's CA bundle as the Dockerfile's `ca-bundle` build secret.

    The test machines reach PyPI through a TLS-inspecting proxy whose CA only the machine
    trusts; the generated Dockerfile takes such a bundle as a secret, never into a layer.
    """
    return ["--secret", f"id=ca-bundle,src={CA_BUNDLE}"] if CA_BUNDLE.exists() else []


def _key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time per image (pytest-xdist workers share podman's storage)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _cached(tag: str, env: dict[str, str], build: Callable[[], None]) -> str:
    archive = CACHE_DIR / (tag.split("/", 1)[1].replace("/", "_").replace(":", "-") + ".tar")
    with _locked(archive.stem):
        if image_exists(tag, env):
            return tag
        if archive.exists():
            loaded = run(["podman", "load", "--input", str(archive)], env=env, check=False)
            if loaded.returncode == 0 and image_exists(tag, env):
                return tag
            archive.unlink()
        build()
        partial = archive.with_suffix(".partial")
        run(["podman", "save", "--format", "docker-archive", "--output", str(partial), tag], env=env)
        partial.rename(archive)
    return tag


def _debootstrap(tag: str, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="playbook-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR], timeout=900)
        # Like the registry's slim image: no package cache, no package lists.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        run(f"tar -C {rootfs} -c . | podman import --change 'CMD [\"/bin/bash\"]' - {tag}", env=env)


def debian_image(env: dict[str, str]) -> str:
    recipe = inspect.getsource(_debootstrap)
    tag = f"localhost/playbook-test/debian:{DEBIAN_SUITE}-{_key(recipe, DEBIAN_SUITE, DEBIAN_MIRROR)}"
    return _cached(tag, env, lambda: _debootstrap(tag, env))


def distroless_image(debian: str, env: dict[str, str]) -> str:
    containerfile = IMAGES / "distroless-python.Containerfile"
    tag = f"localhost/playbook-test/distroless-python:{_key(containerfile.read_bytes(), debian)}"

    def build() -> None:
        run(["buildah", "build", "--isolation", "chroot", "--format", "docker",
             "--build-arg", f"BASE_IMAGE={debian}", "--file", str(containerfile),
             "--tag", tag, str(IMAGES)], env=env, timeout=900)

    return _cached(tag, env, build)


def _uv_binary() -> Path:
    """The uv executable itself (not a shim script), to copy into an image."""
    try:
        from uv import find_uv_bin  # the uv wheel of the test environment (via pre-commit-uv)

        candidate = Path(find_uv_bin()).resolve()
    except ImportError:
        candidate = Path(shutil.which("uv") or "uv").resolve()
    if not candidate.is_file() or candidate.read_bytes()[:4] != b"\x7fELF":
        raise RuntimeError(f"no uv binary to put in the test image (found {candidate}): run `uv sync`")
    return candidate


def uv_image(env: dict[str, str]) -> str:
    binary = _uv_binary()
    tag = f"localhost/playbook-test/uv:{_key(binary.read_bytes())}"

    def build() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy2(binary, Path(tmp) / "uv")
            run(f"tar -C {tmp} -c --owner=0 --group=0 uv | podman import - {tag}", env=env)

    return _cached(tag, env, build)


def base_images(env: dict[str, str]) -> BaseImages:
    require_tools()
    debian = debian_image(env)
    return BaseImages(debian=debian, distroless=distroless_image(debian, env), uv=uv_image(env))
