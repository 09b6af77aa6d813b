#!/usr/bin/env python3
"""Migrations of generated repositories for changes `copier update` cannot express by itself.

Copier runs these from `_migrations` in copier.yml, with the project as working directory,
only when an update crosses the version that needs them (and then with `--trust`).
Standard library and git only; every command is idempotent: running it again changes
nothing.

    rename-file OLD NEW     (after)  the template moved OLD to NEW: carry your edits of OLD
                                     over to NEW with a 3-way merge (conflict markers if your
                                     edits and the template's changes overlap)
    remove-file PATH        (after)  the template dropped PATH: keep your copy if you changed
                                     it (`--keep` keeps it in any case, for team-owned files)
    rename-answer OLD NEW   (before) a question was renamed: rename the stored answer,
                                     optionally mapping old choice values (`--value a=b`)
    retype-answer KEY TYPE  (before) a question changed type: convert the stored answer
                                     (int, float, bool, str, list from "a,b,c")

Why these are needed: on update Copier deletes every file the new template no longer
renders, whether or not you changed it, and it reads answers by question name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ANSWERS_FILE = ".copier-answers.yml"
MARKER = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)
# Labels of Copier's own inline conflicts, so one search finds both.
LABELS = ("before updating", "last update", "after updating")


def say(message: str) -> None:
    print(f"playbook migration: {message}", file=sys.stderr)


def git(*args: str, cwd: Path | str = ".", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=check)


def committed(path: str) -> bytes | None:
    """The project's last committed content of `path` (what the team had before updating)."""
    result = git("show", f"HEAD:./{path}", check=False)
    return result.stdout if result.returncode == 0 else None


def template_source(template: str | None, ref: str | None, subdirectory: str, path: str) -> bytes | None:
    """`path` as the template shipped it at `ref`, when the template file has no Jinja.

    None when unknown: no template clone or ref given, the file did not exist then, or it
    was rendered from a `.jinja` source whose tags change its content.
    """
    if not template or not ref:
        return None
    prefix = f"{subdirectory.strip('/')}/" if subdirectory.strip("/") else ""
    for candidate in (f"{prefix}{path}", f"{prefix}{path}.jinja"):
        result = git("show", f"{ref}:{candidate}", cwd=template, check=False)
        if result.returncode != 0:
            continue
        if candidate.endswith(".jinja") and re.search(rb"\{\{|\{%|\{#", result.stdout):
            return None
        return result.stdout
    return None


def merge(ours: bytes, base: bytes | None, theirs: bytes) -> tuple[bytes, bool]:
    """3-way merge of the team's version (ours) and the template's (theirs); True if clean."""
    with tempfile.TemporaryDirectory(prefix="playbook-merge-") as tmp:
        files = []
        for name, content in (("ours", ours), ("base", base or b""), ("theirs", theirs)):
            file = Path(tmp, name)
            file.write_bytes(content)
            files.append(str(file))
        labels = [arg for label in LABELS for arg in ("-L", label)]
        result = git("merge-file", "-p", *labels, *files, check=False)
    if result.returncode < 0 or result.returncode > 127:
        raise SystemExit(f"git merge-file failed: {result.stderr.decode(errors='replace')}")
    return result.stdout, result.returncode == 0


def rename_file(args: argparse.Namespace) -> None:
    old, new = args.old, args.new
    ours = committed(old)
    target = Path(new)
    if ours is None:
        # Nothing to carry over. If the team had deleted the old file on purpose, the
        # update must not bring it back under its new name.
        base = template_source(args.template, args.from_ref, args.subdirectory, old)
        if base is not None and committed(new) is None and target.exists():
            target.unlink()
            say(f"{old} had been deleted in this repository: not recreating it as {new}")
        return
    if committed(new) is not None:
        if not Path(old).exists():
            Path(old).parent.mkdir(parents=True, exist_ok=True)
            Path(old).write_bytes(ours)
        say(f"both {old} and {new} exist in this repository: kept both, merge them by hand")
        return
    if target.exists() and MARKER.search(target.read_text(encoding="utf-8", errors="replace")):
        say(f"{new} already holds conflict markers from this migration: resolve them")
        return
    base = template_source(args.template, args.from_ref, args.subdirectory, old)
    if not target.exists():
        result, clean = ours, True
    elif ours == base:
        result, clean = target.read_bytes(), True  # unchanged by the team: template's version
    else:
        result, clean = merge(ours, base, target.read_bytes())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(result)
    if Path(old).exists():
        Path(old).unlink()
    if clean:
        say(f"moved {old} to {new}" + (" with your changes" if ours != base else ""))
    else:
        say(
            f"moved {old} to {new}; your changes and the template's overlap: resolve the "
            f"conflict markers in {new} (make check-template-conflicts lists them)"
        )


def remove_file(args: argparse.Namespace) -> None:
    path = Path(args.path)
    ours = committed(args.path)
    if ours is None or path.exists():
        return
    base = template_source(args.template, args.from_ref, args.subdirectory, args.path)
    if args.keep or ours != base:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(ours)
        reason = "it belongs to you" if args.keep else "you had changed it"
        say(
            f"the template no longer ships {args.path}; kept your copy because {reason}. "
            "Delete it when you no longer need it (see the template's CHANGELOG)."
        )
    else:
        say(f"removed {args.path}: the template no longer ships it and you had not changed it")


def answers_lines(answers: Path) -> list[str]:
    if not answers.exists():
        raise SystemExit(f"{answers} not found: run this from the project's root directory")
    return answers.read_text(encoding="utf-8").splitlines(keepends=True)


def find_key(lines: list[str], key: str) -> tuple[int, int] | None:
    """Line span [start, end) of top-level `key:` and its continuation lines."""
    pattern = re.compile(rf"^{re.escape(key)}:(\s|$)")
    for start, line in enumerate(lines):
        if pattern.match(line):
            end = start + 1
            while end < len(lines) and lines[end][:1] in (" ", "\t", "-") and lines[end].strip():
                end += 1
            return start, end
    return None


def scalar(lines: list[str], span: tuple[int, int], key: str) -> str | bool | int | float | None:
    """The value of a one-line scalar answer, as YAML reads it (quotes removed)."""
    start, end = span
    if end - start != 1:
        raise SystemExit(f"answer {key!r} spans several lines: convert it by hand in {ANSWERS_FILE}")
    raw = lines[start].split(":", 1)[1].strip()
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return str(json.loads(raw))
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw in ("", "null", "~"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def rename_answer(args: argparse.Namespace) -> None:
    answers = Path(args.answers_file)
    lines = answers_lines(answers)
    old, new = find_key(lines, args.old), find_key(lines, args.new)
    if old is None:
        return  # already migrated, or never answered
    if new is not None:
        del lines[old[0] : old[1]]
        say(f"dropped the stale answer {args.old!r}: {args.new!r} is already set")
    else:
        mapping = dict(item.split("=", 1) for item in args.value)
        value = scalar(lines, old, args.old) if mapping else None
        if mapping and isinstance(value, str) and value in mapping:
            lines[old[0] : old[1]] = [f"{args.new}: {json.dumps(mapping[value])}\n"]
        else:
            lines[old[0]] = re.sub(rf"^{re.escape(args.old)}:", f"{args.new}:", lines[old[0]])
        say(f"renamed the answer {args.old!r} to {args.new!r}")
    answers.write_text("".join(lines), encoding="utf-8")


def convert(value: object, kind: str) -> object:
    if kind == "list":
        if isinstance(value, list):
            return value
        items = [item.strip() for item in str(value if value is not None else "").split(",")]
        return [scalar([f"item: {item}\n"], (0, 1), "item") for item in items if item]
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    if kind == "str":
        return "" if value is None else str(value)
    return {"int": int, "float": float}[kind](str(value).strip())


def retype_answer(args: argparse.Namespace) -> None:
    answers = Path(args.answers_file)
    lines = answers_lines(answers)
    span = find_key(lines, args.key)
    if span is None:
        return
    if span[1] - span[0] > 1 and args.type == "list":
        return  # a block list already
    raw = lines[span[0]].split(":", 1)[1].strip()
    if args.type == "list" and raw.startswith("["):
        return  # a flow list already
    value = scalar(lines, span, args.key)
    try:
        converted = convert(value, args.type)
    except ValueError as error:
        raise SystemExit(
            f"cannot convert the answer {args.key}={value!r} to {args.type}: {error}; "
            f"edit {ANSWERS_FILE} by hand, then run copier update again"
        ) from error
    line = f"{args.key}: {json.dumps(converted)}\n"
    if lines[span[0]] == line:
        return
    lines[span[0] : span[1]] = [line]
    answers.write_text("".join(lines), encoding="utf-8")
    say(f"converted the answer {args.key!r} to {args.type}")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = main.add_subparsers(dest="command", required=True)

    def file_command(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--template", default=os.environ.get("PLAYBOOK_TEMPLATE"),
                             help="local clone of the template (Copier: {{ _copier_conf.src_path }})")
        command.add_argument("--from-ref", default=os.environ.get("VERSION_FROM"),
                             help="template version the project had (Copier: {{ _version_from }})")
        command.add_argument("--subdirectory", default="template",
                             help="the template's _subdirectory at that version")
        return command

    rename = file_command("rename-file", "carry the team's edits from OLD to NEW")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(run=rename_file)

    remove = file_command("remove-file", "keep a file the template dropped if the team changed it")
    remove.add_argument("path")
    remove.add_argument("--keep", action="store_true", help="keep it even if unchanged (team-owned files)")
    remove.set_defaults(run=remove_file)

    answer = sub.add_parser("rename-answer", help="rename a stored answer")
    answer.add_argument("old")
    answer.add_argument("new")
    answer.add_argument("--value", action="append", default=[], metavar="OLD=NEW",
                        help="map an old choice value to a new one (repeatable)")
    answer.add_argument("--answers-file", default=ANSWERS_FILE)
    answer.set_defaults(run=rename_answer)

    retype = sub.add_parser("retype-answer", help="convert a stored answer to a new type")
    retype.add_argument("key")
    retype.add_argument("type", choices=["str", "int", "float", "bool", "list"])
    retype.add_argument("--answers-file", default=ANSWERS_FILE)
    retype.set_defaults(run=retype_answer)
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
