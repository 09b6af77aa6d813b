"""Regenerate the OpenAPI contract snapshots of the HTTP service types.

    uv run python dev/openapi_snapshots.py [rag agent microservice]

For each type it renders a project without and with a database, installs it, dumps its
OpenAPI schema (what `make openapi` does in a generated project) and merges the two dumps
into `template/tests/contract/{% if service_type == '<type>' %}openapi.json{% endif %}.jinja`:
lines only the database variant has go inside `{% if use_database %}` blocks, and the
project's name and description become Jinja expressions. Run it after changing an endpoint,
then review the diff.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

import copier

ROOT = Path(__file__).resolve().parents[1]
NAME, DESCRIPTION = "Snapshot Service", "SNAPSHOT DESCRIPTION PLACEHOLDER"


def dump(service_type: str, database: bool, workdir: Path) -> list[str]:
    project = workdir / f"{service_type}-{database}"
    copier.run_copy(
        str(ROOT), project, defaults=True, unsafe=False, quiet=True, vcs_ref="HEAD",
        data={"project_name": NAME, "description": DESCRIPTION, "service_type": service_type,
              "use_database": database},
    )
    subprocess.run(["uv", "sync", "-q"], cwd=project, check=True)
    result = subprocess.run(
        ["uv", "run", "--no-sync", "python", "-m", "snapshot_service.openapi"],
        cwd=project, check=True, capture_output=True, text=True,
    )
    return result.stdout.splitlines()


def merge(without: list[str], with_database: list[str]) -> str:
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(None, without, with_database, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            lines += without[i1:i2]
        elif op == "insert":
            lines += ["{% if use_database %}", *with_database[j1:j2], "{% endif %}"]
        else:
            raise SystemExit(f"the database variant changes lines instead of adding: {without[i1:i2]}")
    text = "\n".join(lines) + "\n"
    text = text.replace(f'"description": "{DESCRIPTION}"', '"description": {{ description | tojson }}')
    return text.replace(f'"title": "{NAME}"', '"title": {{ project_name | tojson }}')


def main(types: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for service_type in types:
            text = merge(dump(service_type, False, Path(tmp)), dump(service_type, True, Path(tmp)))
            target = (
                ROOT / "template" / "tests" / "contract"
                / f"{{% if service_type == '{service_type}' %}}openapi.json{{% endif %}}.jinja"
            )
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["rag", "agent"])
