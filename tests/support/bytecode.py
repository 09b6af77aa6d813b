"""The generated projects' libraries compiled to bytecode once, not once per project.

uv installs a project's packages as hard links to the files of its cache (`archive-v0/<id>/`,
laid out as site-packages is). Python writes the bytecode of what it imports beside the
project's links, so every bootstrapped project compiled FastAPI, SQLAlchemy, MLflow or
pydantic-ai again at its first run: an agent project's first `pytest -m unit` took 57 s, and
13 s once the bytecode was there. `compile_libraries` compiles the cache entries a project was
just installed from, each entry once per machine, and links the `__pycache__` files of the
entries compiled since the project's environment was made (by this call, or by another
worker's meanwhile) into it. uv links `__pycache__` with the rest of an entry, so every later
project (on any worker, in later runs) imports from bytecode. A .pyc records its source's mtime and size, which
a hard link shares; where uv had to copy instead, Python finds the .pyc stale and compiles the
module itself, as before. The cache entries gain the bytecode `uv sync --compile-bytecode`
would write into each environment; `uv cache clean` removes it with them.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

# What has been compiled: a marker per cache entry (entries are named at random by uv).
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
MARKERS = CACHE_HOME / "playbook-test" / "bytecode"


def compile_libraries(project: Path) -> None:
    """Compile the uv cache entries `project/.venv` links to, if not done yet, and link the
    bytecode into the project's environment."""
    venv = project / ".venv"
    sites = sorted((venv / "lib").glob("python3*/site-packages"))
    cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True)
    archives = Path(cache.stdout.strip()) / "archive-v0"
    if not sites or not archives.is_dir():
        return
    site = sites[0]
    linked = _entries_linked_from(site, archives)
    MARKERS.mkdir(parents=True, exist_ok=True)
    with (MARKERS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compile at a time: workers need the same entries
        todo = [entry for entry in linked if not (MARKERS / entry.name).exists()]
        # The importable part only: uv refuses an entry with a directory among the scripts of
        # its `<name>.data/`, and a .dist-info holds no module.
        modules = [
            str(path) for entry in todo for path in entry.iterdir()
            if not path.name.endswith((".data", ".dist-info"))
        ]
        if modules:
            # The project's own interpreter, so the .pyc files carry the tag it looks for.
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0",
                 "--invalidation-mode", "timestamp", *modules],
                capture_output=True,  # a file that does not compile (test data, a template) stays so
                check=False,
            )
        for entry in todo:  # unmarked if nothing compiled (the interpreter failed): tried again
            if any(entry.rglob("*.pyc")) or not any(entry.rglob("*.py")):
                (MARKERS / entry.name).touch()
    # The entries compiled since uv linked this environment (just now, or by another worker
    # meanwhile): link their bytecode, as uv would have.
    created = (venv / "pyvenv.cfg").stat().st_mtime
    for entry in linked:
        marker = MARKERS / entry.name
        if not marker.exists() or marker.stat().st_mtime < created:
            continue
        for pycache in entry.rglob("__pycache__"):
            target = site / pycache.relative_to(entry)
            if not target.parent.is_dir():
                continue
            target.mkdir(exist_ok=True)
            for pyc in pycache.iterdir():
                if not (target / pyc.name).exists():
                    os.link(pyc, target / pyc.name)


def _entries_linked_from(site: Path, archives: Path) -> list[Path]:
    """The cache entries whose files `site` holds: a distribution's METADATA is a hard link
    to its entry's."""
    by_name: dict[str, list[Path]] = {}
    for entry in archives.iterdir():
        if entry.is_dir():
            for child in entry.iterdir():
                if child.name.endswith(".dist-info"):
                    by_name.setdefault(child.name, []).append(entry)
    linked = []
    for metadata in site.glob("*.dist-info/METADATA"):
        inode = metadata.stat().st_ino
        for entry in by_name.get(metadata.parent.name, []):
            candidate = entry / metadata.parent.name / "METADATA"
            if candidate.is_file() and candidate.stat().st_ino == inode:
                linked.append(entry)
    return linked
