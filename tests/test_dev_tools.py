"""The dev scripts that later refactors of the template rely on run (as modules, from the
repository root, the way the docs show them) and say what they measure."""

from __future__ import annotations

import sys

from dev import render_diff, service_types

from .support.procs import run
from .support.project import ROOT, TEMPLATE_PATHS


def test_render_diff_finds_the_working_tree_identical_to_itself() -> None:
    result = run(
        [sys.executable, "-m", "dev.render_diff", "HEAD", "--answers", "microservice-db1-ml0-direct"],
        cwd=ROOT,
        check=False,
    )
    # The working tree may hold uncommitted template edits while developing: then it differs.
    dirty = run(["git", "status", "--porcelain", "--", *TEMPLATE_PATHS], cwd=ROOT)
    if not dirty.stdout.strip():
        assert result.returncode == 0, result.stdout
        assert "microservice-db1-ml0-direct: identical" in result.stdout


def test_render_diff_refuses_an_unknown_ref() -> None:
    result = run([sys.executable, "-m", "dev.render_diff", "no-such-ref"], cwd=ROOT, check=False)
    assert result.returncode == 2
    assert "'no-such-ref' is not a commit of this repository" in result.stdout


def test_template_metrics_prints_every_figure() -> None:
    result = run([sys.executable, "-m", "dev.template_metrics"], cwd=ROOT)
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == [
        "template_files",
        "fragment_files",
        "jinja_paths",
        "hidden_extensions",
        "twins",
        "template_lines",
        "jinja_line_percent",
        "logic_line_percent",
        "max_nesting",
    ]


def test_the_template_tree_keeps_its_readability_limits() -> None:
    """Real names, one file per rendered path, at most 5% of lines with Jinja (the goal of
    issue 13), nesting at most 2: the limits `dev.template_metrics --check` enforces."""
    from dev import template_metrics

    figures = template_metrics.measure()
    for name in ("jinja_paths", "hidden_extensions", "twins", "jinja_line_percent", "max_nesting"):
        assert figures[name] <= template_metrics.LIMITS[name], (name, figures[name])
    assert template_metrics.LIMITS["jinja_line_percent"] == 5.0


def test_render_diff_answer_sets_follow_service_types_yml() -> None:
    """Every row of service-types.yml, each with and without a database and ML tracking;
    gitops only where the type serves HTTP (copier.yml refuses it otherwise)."""
    sets = render_diff.answer_sets()
    for kind in service_types.load().values():
        modes = {answers["deploy_mode"] for answers in sets.values() if answers.get("service_type") == kind.name}
        assert modes == ({"direct", "gitops"} if kind.serves_http else {"direct"}), kind.name
    assert len(sets) == 1 + sum(8 if kind.serves_http else 4 for kind in service_types.load().values())


def test_openapi_snapshots_splits_each_document_back_into_the_parts_it_is_merged_from() -> None:
    """dev/openapi_snapshots.py splits the dumped documents into includes/tests/openapi/: the
    parts the template merges must come back unchanged (the dumps themselves take minutes)."""
    import json

    import pytest

    from dev import openapi_snapshots as snapshots

    subpackages = snapshots.http_types()
    parts = {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in snapshots.PARTS.glob("*.json")
    }
    assert sorted(parts) == sorted(["service", "items", *filter(None, subpackages.values())])
    for name, part in parts.items():
        assert snapshots.text(part) == (snapshots.PARTS / f"{name}.json").read_text(
            encoding="utf-8"
        )
    dumps = {
        (service_type, database): snapshots.merge(
            parts["service"], *([parts["items"]] if database else []), parts.get(subpackage, {})
        )
        for service_type, subpackage in subpackages.items()
        for database in (False, True)
    }
    assert snapshots.split(dumps, subpackages) == parts
    with pytest.raises(ValueError, match="changes a value"):
        snapshots.subtract({"openapi": "3.2.0"}, {"openapi": "3.1.0"})
