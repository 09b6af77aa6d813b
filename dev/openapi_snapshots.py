"""Regenerate the parts of the OpenAPI contract snapshot of the HTTP service types.

    uv run python -m dev.openapi_snapshots

A generated project's `tests/contract/openapi.json` is its app's OpenAPI document, as
`make openapi` prints it. The template builds it from parts under `includes/tests/openapi/`
(`template/tests/contract/openapi.json.jinja` merges them and fills in the project's name and
description):

- `service.json`: what every HTTP service has (health endpoints);
- `items.json`: what `use_database` adds (the items endpoints);
- `<subpackage>.json`: what a service type's own package adds (`rag.json`, `agent.json`).

This renders every HTTP service type of service-types.yml without and with a database,
installs each project, dumps its OpenAPI document (what `make openapi` does), splits the dumps
into those parts, checks that the parts merge back into every dump, and writes them. Run it
after changing an endpoint, then review the diff.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dev import service_types
from dev.template_repo import render

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "includes" / "tests" / "openapi"
NAME, DESCRIPTION = "Snapshot Service", "SNAPSHOT DESCRIPTION PLACEHOLDER"
Document = dict[str, Any]


def http_types() -> dict[str, str]:
    """Each HTTP service type and its subpackage ("" when it has none)."""
    return {kind.name: kind.subpackage for kind in service_types.load().values() if kind.serves_http}


def dump(service_type: str, database: bool, workdir: Path) -> Document:
    project = workdir / f"{service_type}-{database}"
    render(
        ROOT,
        project,
        {
            "project_name": NAME,
            "description": DESCRIPTION,
            "service_type": service_type,
            "use_database": database,
        },
    )
    subprocess.run(["uv", "sync", "-q"], cwd=project, check=True)
    result = subprocess.run(
        ["uv", "run", "--no-sync", "python", "-m", "snapshot_service.openapi"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    )
    document: Document = json.loads(result.stdout)
    assert document.pop("info") == {"title": NAME, "description": DESCRIPTION}, document
    return document


def merge(*parts: Document) -> Document:
    """The parts in one document: objects merged key by key (what the template's
    `combine(recursive=True)` does); a part may add but never change a value."""
    merged: Document = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            elif key in merged and merged[key] != value:
                raise ValueError(f"two parts give {key!r} different values")
            else:
                merged[key] = value
    return merged


def subtract(document: Document, base: Document) -> Document:
    """What `document` adds to `base` (it must hold all of `base`, unchanged)."""
    if missing := base.keys() - document.keys():
        raise ValueError(f"{sorted(missing)} missing")
    added: Document = {}
    for key, value in document.items():
        if key not in base:
            added[key] = value
        elif value == base[key]:
            continue
        elif isinstance(value, dict) and isinstance(base[key], dict):
            added[key] = subtract(value, base[key])
        else:
            raise ValueError(f"{key!r} changes a value instead of adding one")
    return added


def common(documents: list[Document]) -> Document:
    """What every document has, with the same value."""
    first, *others = documents
    shared: Document = {}
    for key, value in first.items():
        values = [other[key] for other in others if key in other]
        if len(values) < len(others):
            continue
        if all(v == value for v in values):
            shared[key] = value
        elif isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            shared[key] = common([value, *values])
    return {key: value for key, value in shared.items() if value != {} or first[key] == {}}


def split(
    dumps: dict[tuple[str, bool], Document], subpackages: dict[str, str]
) -> dict[str, Document]:
    """The parts of the dumps (keyed by service type and use_database), each checked to merge
    back into its dump."""
    service = common([document for (_, database), document in dumps.items() if not database])
    items = common(
        [subtract(document, service) for (_, database), document in dumps.items() if database]
    )
    parts = {"service": service, "items": items}
    for service_type, subpackage in subpackages.items():
        if subpackage:
            parts[subpackage] = subtract(dumps[service_type, False], service)
    for (service_type, database), document in dumps.items():
        names = ["service", *(["items"] if database else []), subpackages[service_type]]
        if merge(*(parts[name] for name in names if name)) != document:
            raise SystemExit(
                f"the parts do not add up to the document of {service_type} "
                f"(use_database={database}): an endpoint depends on two options"
            )
    return parts


def text(part: Document) -> str:
    """A part as `make openapi` prints a document."""
    return json.dumps(part, indent=2, sort_keys=True) + "\n"


def main() -> None:
    subpackages = http_types()
    with tempfile.TemporaryDirectory() as tmp:
        dumps = {
            (service_type, database): dump(service_type, database, Path(tmp))
            for service_type in subpackages
            for database in (False, True)
        }
    PARTS.mkdir(parents=True, exist_ok=True)
    for name, part in split(dumps, subpackages).items():
        target = PARTS / f"{name}.json"
        target.write_text(text(part), encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
