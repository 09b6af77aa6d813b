"""Image size and build time: the generated Dockerfile against a naive single-stage one.

    uv run python -m benchmarks.image_size [--service-type TYPE] [--runtime-image distroless]

Renders a project from the working tree, locks it, and builds with buildah (cold: no layer
cache, uv's download cache warm after the first build) twice:

- generated: the project's own Dockerfile (`make image`), base images replaced by the same
  local stand-ins the tests use (debootstrap'ed Debian 12, a shell-less Python 3.11 runtime);
- naive: one stage on the Debian base, Python from apt, the whole context copied, `uv sync`
  with the dev dependencies, run as root: what a first Dockerfile usually looks like.

Needs root, buildah, podman, runc and debootstrap (`make deps`). Prints a table; a benchmark,
not a test: nothing fails on the numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from dev import service_types
from tests.support import containers
from tests.support.procs import run
from tests.support.project import GIT_ENV, ROOT, git_commit_all, render

NAIVE = """\
FROM {debian}
RUN apt-get update && apt-get install -y python3.11
COPY --from={uv} /uv /usr/local/bin/uv
WORKDIR /app
COPY . .
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \\
    SSL_CERT_FILE=/run/secrets/ca-bundle UV_PYTHON=/usr/bin/python3.11 uv sync --locked
ENV HOST=0.0.0.0
CMD ["/app/.venv/bin/python", "-m", "{package}"]
"""


def size_mb(tag: str, env: dict[str, str]) -> float:
    image = json.loads(run(["podman", "image", "inspect", tag], env=env).stdout)[0]
    return int(image["Size"]) / 1_000_000


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    run(cmd, cwd=cwd, env=env, timeout=1800)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--service-type", default=service_types.default_type(), choices=service_types.names()
    )
    parser.add_argument("--runtime-image", default="distroless", choices=["distroless", "slim"])
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="playbook-bench-") as tmp:
        work = Path(tmp)
        env = {**GIT_ENV, **containers.engine_env(work)}
        print("preparing the local base images (cached after the first run)...", file=sys.stderr)
        bases = containers.base_images(env)
        project = render(ROOT, work / "project", {
            "project_name": "Bench Service",
            "service_type": options.service_type,
            "runtime_image": options.runtime_image,
        })
        run(["uv", "lock", "--quiet"], cwd=project)
        git_commit_all(project)
        package = next(p.name for p in (project / "src").iterdir() if p.is_dir())
        (work / "Naive.Dockerfile").write_text(NAIVE.format(debian=bases.debian, uv=bases.uv, package=package))
        (work / "empty.ignore").write_text("")

        flags = ["--isolation", "chroot", *containers.build_secrets(), *bases.build_args(options.runtime_image)]
        generated, naive = "localhost/playbook-bench/generated:latest", "localhost/playbook-bench/naive:latest"
        results = []
        try:
            print("building the generated Dockerfile...", file=sys.stderr)
            seconds = timed(["make", "image", "CONTAINER_ENGINE=buildah", f"IMAGE={generated}",
                             f"BUILD_FLAGS={shlex.join(flags)}"], project, env)
            results.append((f"generated ({options.runtime_image})", size_mb(generated, env), seconds))
            print("building the naive single-stage Dockerfile...", file=sys.stderr)
            seconds = timed(["buildah", "build", "--isolation", "chroot", "--format", "docker",
                             *containers.build_secrets(), "--ignorefile", str(work / "empty.ignore"),
                             "--file", str(work / "Naive.Dockerfile"), "--tag", naive, "."], project, env)
            results.append(("naive single-stage", size_mb(naive, env), seconds))
        finally:
            for tag in (generated, naive):
                containers.remove_image(tag, env)
            containers.remove_working_containers(bases.uv, env)

    print(f"\n{options.service_type}: image size and cold build time (buildah, 2 cores)\n")
    print(f"{'Dockerfile':<28} {'size (MB)':>10} {'build (s)':>10}")
    for name, size, seconds in results:
        print(f"{name:<28} {size:>10.1f} {seconds:>10.1f}")
    (_, ours, _), (_, theirs, _) = results
    print(f"\nthe generated image is {100 * (1 - ours / theirs):.0f}% smaller than the naive one")


if __name__ == "__main__":
    main()
