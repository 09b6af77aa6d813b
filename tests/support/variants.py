"""Projects rendered once per answer set and shared by the container and manifest tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .project import render

_RENDERED: dict[tuple[tuple[str, Any], ...], Path] = {}


def rendered(template: Path, tmp_path_factory: pytest.TempPathFactory, **answers: Any) -> Path:
    """A project rendered with these answers, shared by the session: do not modify it."""
    key = tuple(sorted(answers.items()))
    if key not in _RENDERED:
        name = re.sub(r"[^a-z0-9]+", "-", "-".join(f"{k}-{v}" for k, v in key).lower()) or "defaults"
        dest = tmp_path_factory.mktemp(f"variant-{name}") / "project"
        _RENDERED[key] = render(template, dest, {"project_name": "Fraud Scoring", **answers})
    return _RENDERED[key]
