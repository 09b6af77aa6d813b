"""Benchmark a fleet update: N repositories of mixed service types, options and team edits
are generated from one release and updated to the next; prints the time per copy and per
update and how many repositories kept every edit.

    uv run python -m benchmarks.update_fleet --repos 20              # head -> a later release
    uv run python -m benchmarks.update_fleet --repos 10 --from-earliest   # oldest release -> head (--trust)
    uv run python -m benchmarks.update_fleet --repos 40 --jobs 2     # two updates at a time

Every fifth repository also edits lines the template changes: its conflict must be reported
by `make check-template-conflicts` (counted apart). Not a test: nothing is asserted, numbers
are printed. The releases are built like tests/test_update.py builds them.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import copier

from tests.support.edits import Edit, conflicting_edit, plan_edits
from tests.support.procs import run
from tests.support.project import GIT_ENV, git_commit_all, render
from tests.support.versions import (
    TemplateRepo,
    earlier_releases,
    head_version,
    next_version,
    plain_release_change,
)


@dataclass
class Result:
    name: str
    answers: dict[str, Any]
    copy_seconds: float
    update_seconds: float = 0.0
    edits: int = 0
    lost: list[str] | None = None
    conflict_expected: bool = False
    conflict_reported: bool = False


def build_releases(workdir: Path, from_earliest: bool) -> tuple[TemplateRepo, str, str, bool]:
    repo = TemplateRepo(workdir / "playbook")
    earlier = [repo.release_from_commit(release) for release in earlier_releases()] if from_earliest else []
    head = repo.release_from_worktree(head_version())
    if from_earliest:
        return repo, earlier[0], head, True
    return repo, head, repo.release_with_change(next_version(head), plain_release_change), False


def mix(index: int, service_types: list[str]) -> dict[str, Any]:
    return {
        "project_name": f"Fleet Service {index:03d}",
        "service_type": service_types[index % len(service_types)],
        "use_database": index % 2 == 1,
        "use_ml_tracking": index % 3 == 2,
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--repos", type=int, default=12, help="how many repositories (default 12)")
    options.add_argument("--jobs", type=int, default=1, help="updates run in parallel (default 1)")
    options.add_argument("--from-earliest", action="store_true",
                         help="update from the oldest release of tests/update_baseline.txt to the working tree")
    options.add_argument("--keep", action="store_true", help="keep the generated repositories")
    args = options.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="playbook-fleet-"))
    started = time.perf_counter()
    repo, old, new, trust = build_releases(workdir, args.from_earliest)
    service_types = repo.service_types(old)
    print(f"fleet of {args.repos} repositories, template {old} -> {new}"
          f"{' (--trust: crosses a migration)' if trust else ''}, service types {service_types}")

    # Where the edits go depends on both releases: they are planned on a render of the new
    # release with the same answers, which is not timed.
    results: list[Result] = []
    repos: list[tuple[Path, Result, list[Edit]]] = []
    for index in range(args.repos):
        answers = mix(index, service_types)
        dest = workdir / "fleet" / f"repo-{index:03d}"
        began = time.perf_counter()
        render(str(repo.path), dest, answers, vcs_ref=old)
        git_commit_all(dest, f"feat: generated from {old}")
        result = Result(dest.name, answers, time.perf_counter() - began)
        fresh = render(str(repo.path), workdir / "plans" / dest.name, answers, vcs_ref=new)
        package = f"fleet_service_{index:03d}"
        planned, conflict = plan_edits(dest, fresh, package), conflicting_edit(dest, fresh)
        chosen = [edit for number, edit in enumerate(planned) if (number + index) % 3 != 0 or index % 2 == 0]
        if index % 5 == 4:
            chosen.append(conflict)
            result.conflict_expected = True
        for edit in chosen:
            edit.apply(dest)
        git_commit_all(dest, "feat: our changes")
        result.edits = len(chosen)
        results.append(result)
        repos.append((dest, result, chosen))

    def update(item: tuple[Path, Result, list[Edit]]) -> None:
        dest, result, chosen = item
        began = time.perf_counter()
        copier.run_update(dest, vcs_ref=new, defaults=True, overwrite=True, unsafe=trust, quiet=True)
        result.update_seconds = time.perf_counter() - began
        result.lost = [edit.name for edit in chosen if not edit.present(dest)]
        check = run(["make", "-s", "check-template-conflicts"], cwd=dest, env=GIT_ENV, check=False)
        result.conflict_reported = check.returncode != 0

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(update, repos))

    copies = [r.copy_seconds for r in results]
    updates = [r.update_seconds for r in results]
    kept = [r for r in results if not r.lost]
    clean = [r for r in results if not r.conflict_expected]
    print()
    print(f"{'repository':<10} {'type':<14} {'db':<5} {'edits':>5} {'copy s':>7} {'update s':>8}  result")
    for r in results:
        if r.lost:
            verdict = f"LOST {r.lost}"
        elif r.conflict_expected:
            verdict = "kept all, conflict reported" if r.conflict_reported else "kept all, CONFLICT NOT REPORTED"
        else:
            verdict = "kept all" if not r.conflict_reported else "kept all, UNEXPECTED CONFLICT"
        print(f"{r.name:<10} {r.answers['service_type']:<14} {r.answers['use_database']!s:<5} "
              f"{r.edits:>5} {r.copy_seconds:>7.2f} {r.update_seconds:>8.2f}  {verdict}")
    print()
    print(f"copy:   mean {statistics.mean(copies):.2f} s, median {statistics.median(copies):.2f} s, "
          f"max {max(copies):.2f} s")
    print(f"update: mean {statistics.mean(updates):.2f} s, median {statistics.median(updates):.2f} s, "
          f"max {max(updates):.2f} s (jobs={args.jobs})")
    print(f"kept every edit: {len(kept)}/{len(results)}; "
          f"clean updates without conflicts: {sum(not r.conflict_reported for r in clean)}/{len(clean)}; "
          f"expected conflicts reported: {sum(r.conflict_reported for r in results if r.conflict_expected)}"
          f"/{sum(r.conflict_expected for r in results)}")
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.keep:
        print(f"repositories kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
