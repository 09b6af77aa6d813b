"""The database's migration state: recorded before `alembic upgrade head`, repaired from
that record after a failed upgrade (never by `alembic downgrade -1`).

Used by migrate-db.sh (`record`) and repair-migration.sh (`repair`); runs in the project's
virtualenv (Alembic, SQLAlchemy and the migrations' own imports), from the repository root.

    record --file F   writes F (JSON): the Alembic revision the database is at and its
                      schema (tables, columns, indexes with their validity, constraints,
                      sequences, views, types, extensions), before anything changes
    repair --file F   after a failed upgrade, compares the database with F and decides:
      - the revision is the recorded one and the revision that failed ran in a transaction:
        PostgreSQL rolled it back, nothing to do (a downgrade here would undo the last
        GOOD revision, the one the running release reads);
      - the revision that failed has non-transactional steps (`autocommit_block`, e.g.
        CREATE INDEX CONCURRENTLY): part of it may be applied; its own downgrade runs
        (stamp that revision, downgrade to the one before), so it must cope with a partial
        upgrade (IF EXISTS);
      - revisions of this run were committed (an autocommit block commits what ran before
        it): downgrade to exactly the recorded revision, which only removes what this run
        added;
      then checks that the revision and the schema are the recorded ones again.
    repair --dry-run  only says what it would do

Exit codes: 0 the database is at the recorded revision with the recorded schema (nothing
to do, or repaired); 1 it is not, after the repair: a maintainer decides (fix forward, or
restore the backup, which loses the rows written since); 2 usage error; 4 no record to
decide from (refused: never guess).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import create_engine, pool, text

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_DATA = 0, 1, 2, 4
# One line per schema object, so two states compare as sets of lines.
SCHEMA_QUERIES = [
    """SELECT 'relation ' || n.nspname || '.' || c.relname || ' kind=' || c.relkind::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I')""",
    """SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' '
               || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped""",
    """SELECT 'index ' || pg_get_indexdef(i.indexrelid)
               || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'""",
    """SELECT 'constraint ' || n.nspname || '.' || c.relname || '.' || k.conname || ' '
               || pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')""",
    """SELECT 'type ' || n.nspname || '.' || t.typname || ' ' || t.typtype::text
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          AND t.typtype IN ('e', 'd', 'r')""",
    "SELECT 'extension ' || extname FROM pg_extension",
]


class _Log:
    """Plain lines on stderr. (Not the logging module: Alembic's env.py runs fileConfig,
    which disables the loggers that exist before it.)"""

    @staticmethod
    def _say(level: str, message: str, *args: object) -> None:
        print(f"{level:<5} {message % args if args else message}", file=sys.stderr, flush=True)

    def info(self, message: str, *args: object) -> None:
        self._say("INFO", message, *args)

    def error(self, message: str, *args: object) -> None:
        self._say("ERROR", message, *args)


log = _Log()


class RefusedError(Exception):
    """Not enough to decide on: nothing was changed."""


def database_url() -> str:
    """DATABASE_URL with psycopg 3 as the driver, as the service's settings read it."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise RefusedError("DATABASE_URL is not set")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def current_state() -> dict[str, Any]:
    """The database's Alembic revision(s) and schema, read in one snapshot."""
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            revisions = sorted(MigrationContext.configure(connection).get_current_heads())
            schema: set[str] = set()
            for query in SCHEMA_QUERIES:
                schema.update(row[0] for row in connection.execute(text(query)))
    finally:
        engine.dispose()
    return {"revisions": revisions, "schema": sorted(schema)}


def describe(revisions: list[str] | tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "none (empty database)"


def record(path: Path, env: str) -> int:
    state = current_state()
    state |= {
        "environment": env,
        "pipeline": os.environ.get("CI_PIPELINE_ID", ""),
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(path)
    log.info(
        "recorded before the migration: revision %s, %d schema objects, in %s",
        describe(state["revisions"]),
        len(state["schema"]),
        path,
    )
    return EXIT_OK


def _single(revisions: list[str] | tuple[str, ...], what: str) -> str | None:
    if len(revisions) > 1:
        raise RefusedError(
            f"{what} has several heads ({', '.join(revisions)}): merge the branches "
            "(alembic merge) and decide this repair by hand"
        )
    return revisions[0] if revisions else None


def _children(script: ScriptDirectory, revision: str | None) -> list[Script]:
    if revision is None:
        return [script.get_revision(base) for base in script.get_bases()]
    return [script.get_revision(child) for child in sorted(script.get_revision(revision).nextrev)]


def non_transactional(revision: Script) -> bool:
    """A revision with an autocommit block commits part of itself as it goes."""
    return "autocommit_block" in Path(revision.path).read_text(encoding="utf-8")


def plan(
    script: ScriptDirectory, recorded: str | None, current: str | None
) -> list[tuple[str, str]]:
    """The steps that bring the database from `current` back to `recorded`, with reasons."""
    steps: list[tuple[str, str]] = []
    if current != recorded:
        if recorded is not None and current is not None:
            ancestors = {rev.revision for rev in script.iterate_revisions(current, "base")}
            if recorded not in ancestors:
                raise RefusedError(
                    f"the database is at {current}, which does not come after the "
                    f"recorded {recorded}: something else changed it; decide by hand"
                )
        elif current is None:
            raise RefusedError(
                f"the database has no revision, but {recorded} was recorded: decide by hand"
            )
    children = _children(script, current)
    if len(children) > 1:
        raise RefusedError(f"{current} has several next revisions: decide this repair by hand")
    failed = children[0] if children else None
    if failed is not None and non_transactional(failed):
        steps.append(
            (
                f"downgrade {failed.revision}",
                f"revision {failed.revision} has non-transactional steps (autocommit_block): the "
                "failed upgrade may have left part of it applied; running its own downgrade",
            )
        )
    if current != recorded:
        committed = [rev.revision for rev in script.iterate_revisions(current, recorded or "base")]
        committed = [rev for rev in committed if rev != recorded]
        steps.append(
            (
                f"downgrade to {recorded or 'base'}",
                f"revisions {', '.join(reversed(committed))} of this run were committed before the "
                f"failure: downgrading to exactly the recorded revision {describe([recorded] if recorded else [])}",
            )
        )
    return steps


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    differences = []
    if before["revisions"] != after["revisions"]:
        differences.append(
            f"revision: recorded {describe(before['revisions'])}, now "
            f"{describe(after['revisions'])}"
        )
    old, new = set(before["schema"]), set(after["schema"])
    differences += [f"- {line}" for line in sorted(old - new)]
    differences += [f"+ {line}" for line in sorted(new - old)]
    return differences


def repair(path: Path, config_file: Path, dry_run: bool) -> int:
    if not path.is_file():
        raise RefusedError(
            f"no record of the state before the migration ({path}): not guessing what "
            "to undo; compare `alembic current` and the schema with the backup by hand"
        )
    before = json.loads(path.read_text())
    pipeline = os.environ.get("CI_PIPELINE_ID", "")
    if pipeline and before.get("pipeline") and before["pipeline"] != pipeline:
        raise RefusedError(
            f"{path} was recorded by pipeline {before['pipeline']}, not by this one ({pipeline}): "
            "an older record says nothing about this migration; not guessing what to undo"
        )
    config = Config(str(config_file))
    script = ScriptDirectory.from_config(config)
    recorded = _single(before["revisions"], "the recorded state")
    now = current_state()
    current = _single(now["revisions"], "the database")
    log.info(
        "recorded before the migration: revision %s (%s); the database is now at %s",
        describe(before["revisions"]),
        before.get("recorded_at", "?"),
        describe(now["revisions"]),
    )
    steps = plan(script, recorded, current)
    if not steps and not compare(before, now):
        log.info(
            "nothing to do: the failed migration ran in a transaction and PostgreSQL "
            "rolled it back; the database is at the recorded revision with the "
            "recorded schema. Fix the migration and run the pipeline again."
        )
        return EXIT_OK
    for step, reason in steps:
        log.info("%s: %s", step, reason)
    if dry_run:
        log.info("dry-run: nothing was changed")
        return EXIT_OK
    for step, _ in steps:
        try:
            if step.startswith("downgrade to "):
                command.downgrade(config, recorded or "base")
            else:
                failed = step.removeprefix("downgrade ")
                command.stamp(config, failed)
                try:
                    command.downgrade(config, current or "base")
                except Exception:
                    command.stamp(config, current or "base", purge=current is None)
                    raise
        except Exception as exc:  # the migration's own code: anything can go wrong
            log.error("%s failed: %s: %s", step, type(exc).__name__, exc)
            break
    differences = compare(before, current_state())
    if not differences:
        log.info(
            "repaired: the database is back at revision %s with the recorded schema",
            describe(before["revisions"]),
        )
        return EXIT_OK
    log.error("the database is NOT as recorded before the migration:")
    for line in differences:
        log.error("  %s", line)
    log.error(
        "a maintainer decides: fix forward with a new migration (the running release "
        "was built for the recorded schema, an extra object rarely hurts it), or restore "
        "the backup taken before the migration (the manual restore job), which loses "
        "every row written since that backup"
    )
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="record the revision and schema before migrating")
    rec.add_argument("--file", type=Path, required=True)
    rec.add_argument("--env", default="")
    rep = sub.add_parser("repair", help="after a failed upgrade, bring the recorded state back")
    rep.add_argument("--file", type=Path, required=True)
    rep.add_argument("--config", type=Path, default=Path("alembic.ini"))
    rep.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.action == "record":
            return record(args.file, args.env)
        return repair(args.file, args.config, args.dry_run)
    except RefusedError as exc:
        log.error("refused: %s", exc)
        return EXIT_NO_DATA


if __name__ == "__main__":
    sys.exit(main())
