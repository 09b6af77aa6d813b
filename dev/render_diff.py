"""Render every answer set the tests use at a git ref and at the working tree; show what differs.

    uv run python -m dev.render_diff REF [--answers NAME ...] [--diff] [--keep DIR]

A refactor of the template (renamed template files, fragments, an `_exclude` table) must not
change what users get: this renders each combination of service type and the main options
twice — the template as it was at REF, and the working tree as it is now (uncommitted edits
included) — and compares the generated trees byte for byte. `.copier-answers.yml` is compared
without `_commit` and `_src_path`, which name the template version. Exit 0 when every tree is
identical, 1 when any differs (each differing, added or missing file is listed; `--diff`
prints unified diffs), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import io
import itertools
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dev import service_types
from dev.template_repo import GIT_ENV, ROOT, archive_at, copy_worktree, render


def answer_sets() -> dict[str, dict[str, Any]]:
    """Every service type of service-types.yml with and without a database and ML tracking,
    in both deploy modes where the type allows gitops (serves_http), plus the slim runtime
    image: the combinations the tests use."""
    sets: dict[str, dict[str, Any]] = {}
    for kind, database, tracking in itertools.product(
        service_types.load().values(), [False, True], [False, True]
    ):
        service_type = kind.name
        modes = ["direct", "gitops"] if kind.serves_http else ["direct"]
        for mode in modes:
            name = f"{service_type}-db{int(database)}-ml{int(tracking)}-{mode}"
            sets[name] = {
                "project_name": "Fraud Scoring",
                "service_type": service_type,
                "use_database": database,
                "use_ml_tracking": tracking,
                "deploy_mode": mode,
            }
    sets["microservice-slim"] = {"project_name": "Fraud Scoring", "runtime_image": "slim"}
    return sets


def _git(*args: str, cwd: Path) -> str:
    env = {**GIT_ENV, "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def template_at(ref: str | None, into: Path) -> Path:
    """A git repository holding the template files at REF (None: the working tree)."""
    into.mkdir(parents=True)
    if ref is None:
        copy_worktree(into)
    else:
        with tarfile.open(fileobj=io.BytesIO(archive_at(ref))) as tar:
            tar.extractall(into, filter="data")
    _git("init", "-q", "-b", "main", cwd=into)
    _git("add", "-A", cwd=into)
    _git("commit", "-q", "--no-verify", "-m", f"template at {ref or 'working tree'}", cwd=into)
    return into


def _comparable(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    if path.name == ".copier-answers.yml":
        lines = [line for line in lines if not line.startswith(("_commit:", "_src_path:"))]
    return lines


def files(tree: Path) -> set[str]:
    return {
        str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts
    }


def compare(before: Path, after: Path) -> Iterator[tuple[str, str]]:
    """(status, path) for every file that is not the same in both trees."""
    old, new = files(before), files(after)
    for name in sorted(old - new):
        yield "missing", name
    for name in sorted(new - old):
        yield "added", name
    for name in sorted(old & new):
        a, b = before / name, after / name
        if filecmp.cmp(a, b, shallow=False):
            if (a.stat().st_mode & 0o111) != (b.stat().st_mode & 0o111):
                yield "mode", name
            continue
        if _comparable(a) != _comparable(b):
            yield "differs", name


def main(argv: list[str] | None = None) -> int:
    sets = answer_sets()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the git ref to compare with (e.g. main, a tag, HEAD~3)")
    parser.add_argument("--answers", nargs="*", choices=sorted(sets), help="only these answer sets")
    parser.add_argument(
        "--diff", action="store_true", help="print a unified diff of each differing file"
    )
    parser.add_argument("--keep", type=Path, help="keep the rendered trees in this directory")
    args = parser.parse_args(argv)
    try:
        _git("rev-parse", "--verify", f"{args.ref}^{{commit}}", cwd=ROOT)
    except subprocess.CalledProcessError:
        parser.error(f"{args.ref!r} is not a commit of this repository")

    work = Path(args.keep or tempfile.mkdtemp(prefix="render-diff-"))
    differing = 0
    try:
        before_template = template_at(args.ref, work / "template-before")
        after_template = template_at(None, work / "template-after")
        for name in args.answers or sorted(sets):
            before = render(before_template, work / "before" / name, sets[name])
            after = render(after_template, work / "after" / name, sets[name])
            changes = list(compare(before, after))
            print(f"{name}: {'identical' if not changes else f'{len(changes)} file(s) differ'}")
            for status, path in changes:
                differing += 1
                print(f"  {status:8} {path}")
                if args.diff and status == "differs":
                    sys.stdout.writelines(
                        difflib.unified_diff(
                            _comparable(before / path),
                            _comparable(after / path),
                            f"{args.ref}/{path}",
                            f"HEAD/{path}",
                        )
                    )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"{len(args.answers or sets)} answer sets, {differing} differing file(s) against {args.ref}"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
