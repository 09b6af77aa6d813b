#!/usr/bin/env python3
"""Print the CHANGELOG.md section of one release: the description of its GitLab release.

    python3 dev/changelog_section.py 1.2.0 > release-notes.md

A release section is a level-2 heading that starts with the version, optionally in
brackets or with a date: `## 1.2.0`, `## [1.2.0] - 2025-06-30`, `## 1.2.0 (2025-06-30)`.
It runs to the next level-2 heading. Exits 1 when the section is missing or empty, 2 when
the version is not a PEP 440 release or the file is missing. Standard library only: the
release job runs it on a bare Python image.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# PEP 440 public versions in canonical form (appendix B of the PEP, without epochs' leniency).
PEP440 = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
    r"((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?$"
)
HEADING = re.compile(r"^## +(.*?)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def sections(text: str) -> dict[str, tuple[str, str]]:
    """Level-2 sections by the version (or name) they start with: {key: (heading, body)}."""
    found: dict[str, tuple[str, str]] = {}
    heading: str | None = None
    body: list[str] = []
    in_fence = False

    def close() -> None:
        if heading is not None:
            key = re.split(r"[\s(]", heading.replace("[", "").replace("]", ""), maxsplit=1)[0]
            key = key[1:] if re.match(r"v[0-9]", key) else key
            found.setdefault(key, (heading, "\n".join(body).strip("\n")))

    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            close()
            heading, body = match.group(1), []
        elif heading is not None:
            body.append(line)
    close()
    return found


def section(text: str, version: str) -> str:
    found = sections(text)
    if version not in found:
        names = ", ".join(found) or "none"
        raise LookupError(
            f"CHANGELOG.md has no section for {version} (sections: {names}). "
            f"Add '## {version} - YYYY-MM-DD' with what changes in generated repositories "
            "and what service teams must do, then tag again."
        )
    heading, body = found[version]
    if not body.strip():
        raise LookupError(f"the CHANGELOG.md section '## {heading}' is empty: describe the release.")
    return body + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="release version, PEP 440 (e.g. 1.2.0); the git tag")
    parser.add_argument(
        "--changelog",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "CHANGELOG.md",
        help="path to the changelog (default: CHANGELOG.md of this repository)",
    )
    args = parser.parse_args(argv)
    if not PEP440.match(args.version):
        print(
            f"error: '{args.version}' is not a PEP 440 release version such as 1.2.0, 1.2.0rc1 or "
            "1.2.0.post1 (template releases are tagged without a 'v')",
            file=sys.stderr,
        )
        return 2
    if not args.changelog.is_file():
        print(f"error: {args.changelog} does not exist", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(section(args.changelog.read_text(encoding="utf-8"), args.version))
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
